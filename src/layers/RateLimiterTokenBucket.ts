import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { makeTransferSlots } from "../programs/TransferSlots.js"
import type { HandshakeGuardConfig } from "../services/HandshakeGuard.js"
import { RateLimiter, type RateLimiterApi, type RateLimits } from "../services/RateLimiter.js"
import * as HandshakeGuardTokenBucket from "./HandshakeGuardTokenBucket.js"

/** Bytes a byte bucket may hold: a quarter second at the rate, at least one large block. */
const burstFor = (rate: number) => Math.max(rate / 4, 1024 * 1024)

/**
 * A byte budget refilled at `rate` per second. A taker subtracts what it takes and, when
 * that leaves the budget in debt, sleeps until the debt is paid: takers are served in
 * the order they came, and the long-run rate is exactly `rate`.
 */
export const byteBucket = (rate: number, now: () => number = Date.now) => {
  if (rate <= 0) return (_bytes: number) => Effect.void
  const burst = burstFor(rate)
  let tokens = burst
  let updated = now()
  return (bytes: number) =>
    Effect.suspend(() => {
      const t = now()
      tokens = Math.min(burst, tokens + ((t - updated) / 1000) * rate)
      updated = t
      tokens -= bytes
      return tokens >= 0 ? Effect.void : Effect.sleep(Duration.millis((-tokens / rate) * 1000))
    })
}

/** The rate limiter: the handshake guard, fair transfer slots, and a byte bucket each way (none at rate 0). */
export const make = (limits: RateLimits, guard: Partial<HandshakeGuardConfig> = {}): Effect.Effect<RateLimiterApi> =>
  Effect.gen(function*() {
    const handshakes = yield* HandshakeGuardTokenBucket.make(guard)
    const slots = yield* makeTransferSlots(limits.maxConcurrentTransfers)
    return {
      guard: handshakes.guard,
      admit: handshakes.admit,
      withTransferSlot: slots.withSlot,
      send: byteBucket(limits.maxSendRate),
      receive: byteBucket(limits.maxRecvRate)
    }
  })

/** Token buckets for connections and bytes, fair transfer slots. */
export const layer = (limits: RateLimits, guard: Partial<HandshakeGuardConfig> = {}): Layer.Layer<RateLimiter> =>
  Layer.effect(RateLimiter, make(limits, guard))
