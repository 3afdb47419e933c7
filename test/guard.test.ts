import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Logger, TestClock } from "effect"
import * as Guard from "../src/layers/HandshakeGuardTokenBucket.js"
import { HandshakeGuard, HandshakeRefused } from "../src/services/HandshakeGuard.js"

/** Log lines as "LEVEL message". */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const config = { burst: 3, refillPerSecond: 1, maxInProgress: 2 }
const attempt = (guard: Guard.Api, host: string) => Effect.either(guard.guard(host, Effect.succeed("ok")))
/** "ok", the refusal's reason, or the handshake's own error. */
const outcome = (guard: Guard.Api, host: string) =>
  Effect.map(attempt(guard, host), (e) => (e._tag === "Right" ? e.right : e.left.reason))
const admitOutcome = (guard: Guard.Api, host: string) =>
  Effect.map(Effect.either(guard.admit(host, Effect.succeed("ok"))), (e) => (e._tag === "Right" ? e.right : e.left.reason))
/** Start `n` handshakes (or sessions) from `host` that run until interrupted. */
const hold = (start: (host: string, effect: Effect.Effect<never>) => Effect.Effect<unknown, unknown>, host: string, n: number) =>
  Effect.gen(function*() {
    const fibers = []
    for (let i = 0; i < n; i++) fibers.push(yield* Effect.fork(start(host, Effect.never)))
    yield* Effect.yieldNow()
    return fibers
  })

describe("HandshakeGuard (token bucket)", () => {
  it.effect("allows a burst, then refuses with RateLimited without running the handshake", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "10.0.0.1")).toBe("ok")
      let ran = false
      const refused = yield* Effect.either(guard.guard("10.0.0.1", Effect.sync(() => (ran = true))))
      expect(refused).toMatchObject({ _tag: "Left", left: { _tag: "HandshakeRefused", reason: "RateLimited", host: "10.0.0.1" } })
      expect(refused._tag === "Left" && refused.left).toBeInstanceOf(HandshakeRefused)
      expect(ran).toBe(false)
    }))

  it.effect("refills over time", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) yield* outcome(guard, "h")
      expect(yield* outcome(guard, "h")).toBe("RateLimited")
      yield* TestClock.adjust(Duration.millis(999))
      expect(yield* outcome(guard, "h")).toBe("RateLimited")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* outcome(guard, "h")).toBe("ok")
      expect(yield* outcome(guard, "h")).toBe("RateLimited")
      // Never more than the burst, however long the wait.
      yield* TestClock.adjust(Duration.hours(1))
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "h")).toBe("ok")
      expect(yield* outcome(guard, "h")).toBe("RateLimited")
    }))

  it.effect("separate addresses have separate buckets", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) yield* outcome(guard, "a")
      expect(yield* outcome(guard, "a")).toBe("RateLimited")
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "b")).toBe("ok")
      expect(yield* outcome(guard, "b")).toBe("RateLimited")
    }))

  it.effect("forgets refilled addresses so the table stays bounded", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config, 10)
      for (let i = 0; i < 10; i++) yield* outcome(guard, `h${i}`)
      expect(guard.trackedHosts()).toBe(10)
      yield* TestClock.adjust(Duration.seconds(1)) // each spent 1 token: full again
      yield* outcome(guard, "new")
      expect(guard.trackedHosts()).toBe(1)
      // Even when nobody has refilled, the table never exceeds its bound.
      for (let i = 0; i < 50; i++) yield* outcome(guard, `flood${i}`)
      expect(guard.trackedHosts()).toBeLessThanOrEqual(10)
    }))

  it.effect("caps handshakes in progress and frees slots on success, failure and interruption", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make({ burst: 100, refillPerSecond: 1, maxInProgress: 2 })
      const gate1 = yield* Deferred.make<void, string>()
      const gate2 = yield* Deferred.make<void, string>()
      const f1 = yield* Effect.fork(Effect.either(guard.guard("a", Deferred.await(gate1))))
      const f2 = yield* Effect.fork(Effect.either(guard.guard("b", Deferred.await(gate2))))
      yield* Effect.yieldNow()
      expect(guard.inProgress()).toBe(2)
      expect(yield* outcome(guard, "c")).toBe("TooManyHandshakes")

      yield* Deferred.succeed(gate1, undefined) // success frees a slot
      yield* Fiber.join(f1)
      expect(guard.inProgress()).toBe(1)
      const f3 = yield* Effect.fork(guard.guard("c", Effect.never))
      yield* Effect.yieldNow()
      expect(yield* outcome(guard, "d")).toBe("TooManyHandshakes")

      yield* Deferred.fail(gate2, "boom") // failure frees a slot
      expect(yield* Fiber.join(f2)).toMatchObject({ _tag: "Left", left: "boom" })
      expect(yield* outcome(guard, "d")).toBe("ok")

      yield* Fiber.interrupt(f3) // interruption frees a slot
      expect(guard.inProgress()).toBe(0)
      expect(yield* outcome(guard, "e")).toBe("ok")
    }))

  it.effect("caps handshakes in progress per address, well below the global cap", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make({ burst: 100, maxInProgress: 5, maxInProgressPerHost: 2 })
      const idle = yield* hold(guard.guard, "idle", 2)
      expect(guard.inProgress("idle")).toBe(2)
      let ran = false
      const refused = yield* Effect.either(guard.guard("idle", Effect.sync(() => (ran = true))))
      expect(refused).toMatchObject({ _tag: "Left", left: { reason: "TooManyFromAddress", host: "idle" } })
      expect(ran).toBe(false)
      // other addresses still get the remaining global slots...
      const other = yield* hold(guard.guard, "other", 2)
      yield* hold(guard.guard, "third", 1)
      expect(guard.inProgress()).toBe(5)
      // ...up to the global cap
      expect(yield* outcome(guard, "fourth")).toBe("TooManyHandshakes")
      // a slot from this address ends: it may start one again
      yield* Fiber.interrupt(idle[0]!)
      yield* Fiber.interrupt(other[0]!)
      expect(guard.inProgress("idle")).toBe(1)
      expect(yield* outcome(guard, "idle")).toBe("ok")
    }))

  it.effect("caps admitted sessions per address and in total, and frees them however a session ends", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make({ maxSessions: 4, maxSessionsPerHost: 3 })
      const a = yield* hold(guard.admit, "a", 3)
      let ran = false
      const refused = yield* Effect.either(guard.admit("a", Effect.sync(() => (ran = true))))
      expect(refused).toMatchObject({ _tag: "Left", left: { _tag: "HandshakeRefused", reason: "TooManySessions", host: "a" } })
      expect(ran).toBe(false)
      const gate = yield* Deferred.make<void, string>()
      const b = yield* Effect.fork(Effect.either(guard.admit("b", Deferred.await(gate))))
      yield* Effect.yieldNow()
      expect(guard.sessions()).toBe(4)
      expect(yield* admitOutcome(guard, "c")).toBe("TooManySessions") // the total cap
      // the session cap does not touch handshakes
      expect(yield* outcome(guard, "c")).toBe("ok")

      yield* Deferred.fail(gate, "boom") // failure frees a slot
      expect(yield* Fiber.join(b)).toMatchObject({ _tag: "Left", left: "boom" })
      expect(yield* admitOutcome(guard, "c")).toBe("ok") // and success frees it again
      yield* Fiber.interrupt(a[0]!) // so does interruption
      expect(guard.sessions("a")).toBe(2)
      expect(yield* admitOutcome(guard, "a")).toBe("ok")
      yield* Effect.forEach(a, Fiber.interrupt)
      expect(guard.sessions()).toBe(0)
    }))

  it.effect("warns once per limit, naming the address, and again only after the limit was clear for a minute", () => {
    const logs = captureLogs()
    const warnings = (text: string) => logs.lines.filter((l) => l.startsWith("WARN") && l.includes(text))
    return Effect.gen(function*() {
      const guard = yield* Guard.make({ burst: 3, refillPerSecond: 1, maxInProgress: 3, maxInProgressPerHost: 2, maxSessions: 3, maxSessionsPerHost: 2 })
      // each kind of limit, hit many times
      yield* hold(guard.guard, "10.0.0.1", 2)
      for (let i = 0; i < 5; i++) yield* outcome(guard, "10.0.0.1")
      yield* hold(guard.guard, "10.0.0.2", 1)
      for (let i = 0; i < 5; i++) yield* outcome(guard, `10.0.1.${i}`)
      yield* hold(guard.admit, "10.0.0.3", 2)
      for (let i = 0; i < 5; i++) yield* admitOutcome(guard, "10.0.0.3")
      yield* hold(guard.admit, "10.0.0.4", 1)
      for (let i = 0; i < 5; i++) yield* admitOutcome(guard, `10.0.2.${i}`)

      expect(warnings("10.0.0.1 has 2 handshakes in progress")).toHaveLength(1)
      expect(warnings("10.0.0.1 opens connections faster")).toHaveLength(1) // its 3 tokens went on the first three tries
      expect(warnings("3 handshakes in progress: refusing new connections (this one from 10.0.1.0)")).toHaveLength(1)
      expect(warnings("10.0.0.3 has 2 peer sessions open")).toHaveLength(1)
      expect(warnings("3 peer sessions open: refusing new ones (this one from 10.0.2.0)")).toHaveLength(1)
      expect(logs.lines.filter((l) => l.startsWith("WARN"))).toHaveLength(5)

      // still being hit every 30 s: stays quiet
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust(Duration.seconds(30))
        expect(yield* admitOutcome(guard, "10.0.0.3")).toBe("TooManySessions")
      }
      expect(warnings("peer sessions open")).toHaveLength(2)
      // clear for a minute, then hit again: warned again
      yield* TestClock.adjust(Duration.seconds(60))
      expect(yield* admitOutcome(guard, "10.0.0.3")).toBe("TooManySessions")
      expect(warnings("10.0.0.3 has 2 peer sessions open")).toHaveLength(2)
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("the layer provides the service with the default config", () =>
    Effect.gen(function*() {
      const guard = yield* HandshakeGuard
      for (let i = 0; i < 10; i++) expect(yield* Effect.either(guard.guard("x", Effect.void))).toMatchObject({ _tag: "Right" })
      expect(yield* Effect.either(guard.guard("x", Effect.void))).toMatchObject({ _tag: "Left", left: { reason: "RateLimited" } })
    }).pipe(Effect.provide(Guard.layer())))
})
