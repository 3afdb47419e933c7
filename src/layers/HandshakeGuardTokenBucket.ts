import { Clock, Effect, Layer } from "effect"
import {
  defaultGuardConfig,
  HandshakeGuard,
  type HandshakeGuardApi,
  type HandshakeGuardConfig,
  type Refusal
} from "../services/HandshakeGuard.js"

/** Above this many tracked IPs, forget the ones whose bucket has refilled (and the oldest if need be). */
export const MAX_TRACKED_HOSTS = 4096

interface Bucket {
  tokens: number
  updatedMs: number
}

/** The service plus counters for tests and diagnostics. */
export interface Api extends HandshakeGuardApi {
  readonly trackedHosts: () => number
  readonly inProgress: () => number
}

export const make = (config: HandshakeGuardConfig = defaultGuardConfig, maxTracked = MAX_TRACKED_HOSTS): Effect.Effect<Api> =>
  Effect.sync(() => {
    // Plain mutable state is safe: each check-and-update below runs synchronously, in one step.
    const buckets = new Map<string, Bucket>()
    let inProgress = 0

    const refilled = (bucket: Bucket, nowMs: number) =>
      Math.min(config.burst, bucket.tokens + ((nowMs - bucket.updatedMs) / 1000) * config.refillPerSecond)

    const prune = (nowMs: number) => {
      for (const [host, bucket] of buckets) if (refilled(bucket, nowMs) >= config.burst) buckets.delete(host)
      // Still too many (a flood from many addresses): drop the oldest; they merely get a fresh bucket.
      for (const host of buckets.keys()) {
        if (buckets.size < maxTracked) break
        buckets.delete(host)
      }
    }

    const takeToken = (host: string, nowMs: number): boolean => {
      let bucket = buckets.get(host)
      if (bucket === undefined) {
        if (buckets.size >= maxTracked) prune(nowMs)
        bucket = { tokens: config.burst, updatedMs: nowMs }
        buckets.set(host, bucket)
      }
      bucket.tokens = refilled(bucket, nowMs)
      bucket.updatedMs = nowMs
      if (bucket.tokens < 1) return false
      bucket.tokens -= 1
      return true
    }

    const guard: HandshakeGuardApi["guard"] = <A, E, R>(host: string, handshake: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Clock.currentTimeMillis, (nowMs): Effect.Effect<A, E | Refusal, R> => {
          // Refuse at once (never queue): a flood must cost us nothing but this check.
          if (inProgress >= config.maxInProgress) return Effect.fail("too-many-handshakes" as const)
          if (!takeToken(host, nowMs)) return Effect.fail("rate-limited" as const)
          inProgress++
          // Acquired uninterruptibly, released however the handshake ends.
          return Effect.ensuring(restore(handshake), Effect.sync(() => inProgress--))
        })
      )

    return { guard, trackedHosts: () => buckets.size, inProgress: () => inProgress }
  })

export const layer = (config: HandshakeGuardConfig = defaultGuardConfig): Layer.Layer<HandshakeGuard> =>
  Layer.effect(HandshakeGuard, make(config))
