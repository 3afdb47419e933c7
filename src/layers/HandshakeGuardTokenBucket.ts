import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  defaultGuardConfig,
  HandshakeGuard,
  type HandshakeGuardApi,
  type HandshakeGuardConfig,
  HandshakeRefused,
  type RefusalReason
} from "../services/HandshakeGuard.js"

/** Above this many tracked addresses, forget the ones whose bucket has refilled (and the oldest if need be). */
export const MAX_TRACKED_HOSTS = 4096

/** A limit is logged again only after it has not been hit for this long (a flood must not flood the log). */
export const LIMIT_LOG_QUIET = Duration.minutes(1)

interface Bucket {
  tokens: number
  updatedMs: number
}

/** The limits, each logged on its own. */
type Limit = "rate" | "handshakes" | "handshakesFromHost" | "sessions" | "sessionsFromHost"

/** The service plus counters for tests and diagnostics. */
export interface Api extends HandshakeGuardApi {
  readonly trackedHosts: () => number
  /** Handshakes in progress (from `host`, or in total). */
  readonly inProgress: (host?: string) => number
  /** Admitted sessions still running (from `host`, or in total). */
  readonly sessions: (host?: string) => number
}

/** A count per address; addresses at zero are dropped, so the table is bounded by its cap. */
const makeCounter = () => {
  const byHost = new Map<string, number>()
  let total = 0
  return {
    total: () => total,
    of: (host: string) => byHost.get(host) ?? 0,
    add: (host: string) => {
      total++
      byHost.set(host, (byHost.get(host) ?? 0) + 1)
    },
    remove: (host: string) => {
      total--
      const left = (byHost.get(host) ?? 1) - 1
      if (left <= 0) byHost.delete(host)
      else byHost.set(host, left)
    }
  }
}

/** The guard (with its counters) over the default limits and `overrides`; at most `maxTracked` buckets are kept. */
export const make = (
  overrides: Partial<HandshakeGuardConfig> = {},
  maxTracked = MAX_TRACKED_HOSTS
): Effect.Effect<Api> =>
  Effect.sync(() => {
    const config: HandshakeGuardConfig = { ...defaultGuardConfig, ...overrides }
    const quietMs = Duration.toMillis(LIMIT_LOG_QUIET)
    // Plain mutable state is safe: each check-and-update below runs synchronously, in one step.
    const buckets = new Map<string, Bucket>()
    const handshakes = makeCounter()
    const sessions = makeCounter()
    const lastHit = new Map<Limit, number>()

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

    /** What the warning says when `limit` is first hit (`host` comes from the transport: an IP or memory host name). */
    const describe = (limit: Limit, host: string): string => {
      switch (limit) {
        case "rate":
          return `${host} opens connections faster than ${config.refillPerSecond}/s (burst ${config.burst}): refusing the excess`
        case "handshakes":
          return `${config.maxInProgress} handshakes in progress: refusing new connections (this one from ${host})`
        case "handshakesFromHost":
          return `${host} has ${config.maxInProgressPerHost} handshakes in progress: refusing more from it`
        case "sessions":
          return `${config.maxSessions} peer sessions open: refusing new ones (this one from ${host})`
        case "sessionsFromHost":
          return `${host} has ${config.maxSessionsPerHost} peer sessions open: refusing more from it`
      }
    }

    /** Fail with the refusal; warn if this limit had been clear for the quiet period (or never hit). */
    const refuse = (limit: Limit, reason: RefusalReason, host: string, nowMs: number) => {
      const last = lastHit.get(limit)
      lastHit.set(limit, nowMs)
      const refused = Effect.fail(new HandshakeRefused({ reason, host }))
      if (last !== undefined && nowMs - last < quietMs) return refused
      return Effect.zipRight(
        Effect.logWarning(`connection limit: ${describe(limit, host)} (logged again once clear for a minute)`),
        refused
      )
    }

    const guard: HandshakeGuardApi["guard"] = <A, E, R>(host: string, handshake: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Clock.currentTimeMillis, (nowMs): Effect.Effect<A, E | HandshakeRefused, R> => {
          // Refuse at once (never queue): a flood must cost us nothing but this check.
          // Every attempt spends a token, refused or not, so hammering a full cap is rate limited too.
          if (!takeToken(host, nowMs)) return refuse("rate", "RateLimited", host, nowMs)
          if (handshakes.of(host) >= config.maxInProgressPerHost) {
            return refuse("handshakesFromHost", "TooManyFromAddress", host, nowMs)
          }
          if (handshakes.total() >= config.maxInProgress) return refuse("handshakes", "TooManyHandshakes", host, nowMs)
          handshakes.add(host)
          // Acquired uninterruptibly, released however the handshake ends.
          return Effect.ensuring(restore(handshake), Effect.sync(() => handshakes.remove(host)))
        })
      )

    const admit: HandshakeGuardApi["admit"] = <A, E, R>(host: string, session: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Clock.currentTimeMillis, (nowMs): Effect.Effect<A, E | HandshakeRefused, R> => {
          if (sessions.of(host) >= config.maxSessionsPerHost) return refuse("sessionsFromHost", "TooManySessions", host, nowMs)
          if (sessions.total() >= config.maxSessions) return refuse("sessions", "TooManySessions", host, nowMs)
          sessions.add(host)
          return Effect.ensuring(restore(session), Effect.sync(() => sessions.remove(host)))
        })
      )

    return {
      guard,
      admit,
      trackedHosts: () => buckets.size,
      inProgress: (host) => (host === undefined ? handshakes.total() : handshakes.of(host)),
      sessions: (host) => (host === undefined ? sessions.total() : sessions.of(host))
    }
  })

/** HandshakeGuard with a token bucket per address and caps on handshakes and sessions. */
export const layer = (config: Partial<HandshakeGuardConfig> = {}): Layer.Layer<HandshakeGuard> =>
  Layer.effect(HandshakeGuard, make(config))
