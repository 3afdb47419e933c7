import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Schedule } from "effect"
import * as CipherNode from "../src/layers/CipherNode.js"
import * as CurvesNode from "../src/layers/CurvesNode.js"
import * as IdentityEphemeral from "../src/layers/IdentityEphemeral.js"
import * as SecureChannelLive from "../src/layers/SecureChannelLive.js"
import * as TransportMemory from "../src/layers/TransportMemory.js"
import { decodeFrame } from "../src/lib/Wire.js"
import { defaultGuardConfig } from "../src/services/HandshakeGuard.js"
import { SecureChannel } from "../src/services/SecureChannel.js"
import { Transport } from "../src/services/Transport.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, tempDir } from "./support/fs.js"
import { captureLogs, memoryNode, PORT } from "./support/nodes.js"

// Through a running node with the default limits (defaultGuardConfig); loop counts are fixed
// (they must stay bounded whatever the limits are), sized for the defaults.
const limits = defaultGuardConfig
const target = { host: "a", port: PORT }

/** A raw client on memory host `host` (a source address), with its own identity; lives in the caller's scope. */
const client = (network: TransportMemory.MemoryNetwork, host: string) =>
  Effect.map(
    Layer.build(Layer.merge(
      SecureChannelLive.layer.pipe(Layer.provide(Layer.merge(CipherNode.layer, IdentityEphemeral.layer)), Layer.provide(CurvesNode.layer)),
      TransportMemory.layer(network, host)
    )),
    (services) => ({ transport: Context.get(services, Transport), secure: Context.get(services, SecureChannel) })
  )

/**
 * Dial and handshake from a fresh identity on `host`, then read the first message: an admitted
 * session starts with the node's Hello; a refused connection ends first. The connection stays
 * open until the caller's scope closes.
 */
const session = (network: TransportMemory.MemoryNetwork, host: string) =>
  Effect.gen(function*() {
    const { secure, transport } = yield* client(network, host)
    const channel = yield* secure.initiate(yield* transport.dial(target))
    const first = yield* Effect.either(Effect.flatMap(channel.receive, decodeFrame))
    if (Either.isRight(first)) expect(first.right._tag).toBe("Hello")
    return { admitted: Either.isRight(first), close: channel.close }
  }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no answer to ${host}`) }))

const warnings = (lines: ReadonlyArray<string>, text: string) => lines.filter((l) => l.startsWith("WARN") && l.includes(text))

describe("connection limits of a running node", () => {
  it.live("idle half-open handshakes from a few addresses leave room for honest ones", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const network = makeNetwork()
      yield* memoryNode(network, "a", yield* tempDir(), [])

      // 8 addresses each open 10 connections (a full bucket) and then say nothing
      let idleClosed = 0
      const held: Record<string, number> = {}
      for (let i = 0; i < 8; i++) {
        const host = `idle-${i}`
        const { transport } = yield* client(network, host)
        held[host] = 0
        for (let j = 0; j < 10; j++) {
          const connection = yield* transport.dial(target)
          // the node greets a handshake it has started; a refused connection is closed at once
          const first = yield* Effect.either(connection.read).pipe(Effect.timeout("5 seconds"))
          if (Either.isLeft(first)) continue
          held[host]++
          // this handshake now holds a slot until the node's handshake timeout closes it
          yield* Effect.forkScoped(Effect.forever(connection.read).pipe(Effect.catchAll(() => Effect.sync(() => idleClosed++))))
        }
      }

      // 17 honest peers (one address each) handshake at once while those are still held: all succeed
      const honest = yield* Effect.forEach(
        Array.from({ length: 17 }, (_, i) => `honest-${i}`),
        (host) => Effect.scoped(Effect.either(session(network, host))),
        { concurrency: "unbounded" }
      )
      expect(honest.filter((r) => Either.isRight(r) && r.right.admitted)).toHaveLength(17)
      expect(idleClosed).toBe(0) // the idle handshakes were in progress throughout
      expect(warnings(logs.lines, "handshakes in progress: refusing new connections")).toEqual([])

      // each idle address got its share of handshake slots, no more; the limit was logged once
      for (const count of Object.values(held)) expect(count).toBe(limits.maxInProgressPerHost)
      expect(warnings(logs.lines, `idle-0 has ${limits.maxInProgressPerHost} handshakes in progress: refusing more from it`))
        .toHaveLength(1)
      expect(warnings(logs.lines, "handshakes in progress")).toHaveLength(1)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  })

  it.live("a flood of handshakes from one address is refused once past its bucket", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const network = makeNetwork()
      yield* memoryNode(network, "a", yield* tempDir(), [])
      const { secure, transport } = yield* client(network, "flood")
      const started = Date.now()
      const outcomes: Array<string> = []
      for (let i = 0; i < 40; i++) {
        const outcome = yield* Effect.scoped(Effect.flatMap(transport.dial(target), (c) => secure.initiate(c))).pipe(
          Effect.timeout("5 seconds"),
          Effect.either
        )
        outcomes.push(Either.isRight(outcome) ? "ok" : outcome.left._tag)
      }
      const seconds = (Date.now() - started) / 1000
      const succeeded = outcomes.filter((o) => o === "ok").length
      // most of the flood is refused...
      expect(40 - succeeded).toBeGreaterThanOrEqual(20)
      // ...the burst passes, then only what refilled meanwhile
      expect(succeeded).toBeGreaterThanOrEqual(limits.burst)
      expect(succeeded).toBeLessThanOrEqual(limits.burst + Math.ceil(seconds * limits.refillPerSecond))
      // refused ones see the connection end before the node's hello
      expect(outcomes.filter((o) => o !== "ok").every((o) => o === "HandshakeError")).toBe(true)
      expect(warnings(logs.lines, "flood opens connections faster than")).toHaveLength(1)
      expect(logs.lines.filter((l) => l.startsWith("DEBUG refused flood") && l.includes("opens connections too fast")).length)
        .toBe(40 - succeeded)
      // another address is not affected
      expect((yield* Effect.scoped(session(network, "other"))).admitted).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  })

  it.live("sessions over the per-address and total caps are closed at once, and the limit is logged once", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", yield* tempDir(), [])

      // several dsync instances on one host: up to the per-address cap get a session
      const shared = []
      for (let i = 0; i < 10; i++) shared.push(yield* session(network, "shared"))
      expect(shared.filter((s) => !s.admitted)).toHaveLength(2)
      expect(shared.map((s) => s.admitted)).toEqual(shared.map((_, i) => i < limits.maxSessionsPerHost))
      expect(warnings(logs.lines, `shared has ${limits.maxSessionsPerHost} peer sessions open: refusing more from it`))
        .toHaveLength(1)
      expect(logs.lines.filter((l) => l.startsWith("DEBUG refused shared") && l.includes("too many peer sessions")))
        .toHaveLength(2)

      // 8 more hosts, 8 sessions each (within the per-address cap): past the total cap
      const others = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => `host-${i}`),
        (host) => Effect.forEach(Array.from({ length: 8 }), () => session(network, host)),
        { concurrency: "unbounded" }
      )
      const admitted = others.flat().filter((s) => s.admitted).length
      expect(others.flat().length - admitted).toBe(8)
      expect(admitted).toBe(limits.maxSessions - limits.maxSessionsPerHost)
      expect((yield* node.connectedPeers).length).toBe(limits.maxSessions)
      expect(warnings(logs.lines, `${limits.maxSessions} peer sessions open: refusing new ones`)).toHaveLength(1)
      expect(warnings(logs.lines, "peer sessions open")).toHaveLength(2)

      // a session that ends frees its slot: another instance on that host gets in (once it has a token again)
      yield* shared[0]!.close
      yield* eventually("session ended", () => Effect.runSync(node.connectedPeers).length < limits.maxSessions)
      const again = yield* Effect.scoped(session(network, "shared")).pipe(
        Effect.filterOrFail((s) => s.admitted, () => new Error("another session from shared is still refused")),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(50))))
      )
      expect(again.admitted).toBe(true)
      expect(warnings(logs.lines, "peer sessions open")).toHaveLength(2)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 60_000 })
})
