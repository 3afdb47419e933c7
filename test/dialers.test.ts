// The dial loops (src/programs/Dialers.ts) over fake connections: one loop per peer id,
// -a and mDNS together, lost peers, and mismatches that must not be redialled in a loop.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule, Stream } from "effect"
import { HandshakeError, TransportError } from "../src/domain/Errors.js"
import { makeDialers } from "../src/programs/Dialers.js"
import { type DiscoveredPeer, PeerChange } from "../src/services/Discovery.js"
import type { Channel } from "../src/services/SecureChannel.js"
import { captureLogs } from "./support/nodes.js"

const P = "b".repeat(64)
const peerAt = (host: string, peerId?: string, name?: string): DiscoveredPeer => ({
  address: { host, port: 9000 },
  ...(peerId ? { peerId } : {}),
  ...(name ? { name } : {})
})

/**
 * A network of fakes: `hosts` maps an address to who answers there (a peer id, or a
 * failure). A session lasts until `end(peerId)`, or until a newer session with the same
 * peer replaces it (as Sessions does).
 */
const fakeNet = (hosts: Record<string, string | HandshakeError | TransportError>) =>
  Effect.gen(function*() {
    const dials: Array<string> = []
    const lost: Array<string> = []
    const sessions = new Map<string, Deferred.Deferred<void>>()
    const channel = (peerId: string): Channel => ({
      peerId,
      remoteLabel: peerId,
      send: () => Effect.void,
      sendAll: () => Effect.void,
      receive: Effect.never,
      close: Effect.void
    })
    const dialers = yield* makeDialers({
      connect: (peer) =>
        Effect.suspend(() => {
          dials.push(peer.address.host)
          const there = hosts[peer.address.host]
          if (there === undefined) return Effect.fail(new TransportError({ message: "no route" }))
          if (typeof there !== "string") return Effect.fail(there)
          if (peer.peerId !== undefined && peer.peerId !== there) {
            return Effect.fail(new HandshakeError({ reason: "peer id mismatch", mismatch: "peerId" }))
          }
          return Effect.succeed(channel(there))
        }),
      serve: (c) =>
        Effect.gen(function*() {
          const previous = sessions.get(c.peerId)
          if (previous) yield* Deferred.succeed(previous, undefined)
          const done = yield* Deferred.make<void>()
          sessions.set(c.peerId, done)
          yield* Deferred.await(done)
        }),
      connected: (id) => sessions.has(id),
      peerLost: (id) => Effect.sync(() => void lost.push(id)),
      reconnect: Schedule.spaced("20 millis")
    })
    const end = (peerId: string) =>
      Effect.suspend(() => {
        const s = sessions.get(peerId)
        sessions.delete(peerId)
        return s ? Deferred.succeed(s, undefined) : Effect.void
      })
    const feed = (...changes: Array<PeerChange>) => Effect.forEach(changes, dialers.onChange, { discard: true })
    return { dialers, dials, lost, end, feed, sessions }
  })

const found = (peer: DiscoveredPeer) => PeerChange.Found({ peer })
const settle = Effect.sleep("200 millis")

describe("Dialers", () => {
  it.live("a peer found on two interfaces is one loop, dialled once", () =>
    Effect.gen(function*() {
      const net = yield* fakeNet({ "10.0.0.2": P, "192.168.1.2": P })
      yield* net.feed(found(peerAt("10.0.0.2", P)), found(peerAt("192.168.1.2", P)))
      yield* settle
      expect(net.dials).toHaveLength(1)
      expect(yield* net.dialers.keys).toEqual([P])
    }).pipe(Effect.scoped))

  it.live("-a and mDNS for the same peer: dialled once by the -a loop, whichever came first", () =>
    Effect.gen(function*() {
      // -a first: once it proved who is there, mDNS finding that id starts nothing.
      const a = yield* fakeNet({ "10.0.0.2": P })
      yield* a.feed(found(peerAt("10.0.0.2")))
      yield* settle
      yield* a.feed(found(peerAt("10.0.0.2", P, "b")))
      yield* settle
      expect(a.dials).toEqual(["10.0.0.2"])
      expect(yield* a.dialers.keys).toEqual(["10.0.0.2:9000"])

      // mDNS first: the -a loop's session replaces it, and the mDNS loop does not redial.
      const b = yield* fakeNet({ "10.0.0.2": P })
      yield* b.feed(found(peerAt("10.0.0.2", P, "b")))
      yield* settle
      yield* b.feed(found(peerAt("10.0.0.2")))
      yield* Effect.sleep("500 millis") // many reconnect delays
      expect(b.dials).toEqual(["10.0.0.2", "10.0.0.2"])
      expect(yield* b.dialers.keys).toEqual(["10.0.0.2:9000"])
    }).pipe(Effect.scoped))

  it.live("a peer lost while unreachable is no longer dialled; found again, it is", () =>
    Effect.gen(function*() {
      const net = yield* fakeNet({})
      yield* net.feed(found(peerAt("10.0.0.2", P)))
      yield* settle
      const tries = net.dials.length
      expect(tries).toBeGreaterThan(2) // redialled with backoff while found
      expect(net.lost.length).toBeGreaterThan(0) // and discovery told, to look again
      yield* net.feed(PeerChange.Lost({ peerId: P }))
      const stopped = net.dials.length
      yield* settle
      expect(net.dials.length).toBe(stopped)
      expect(yield* net.dialers.keys).toEqual([])
      yield* net.feed(found(peerAt("10.0.0.2", P)))
      yield* settle
      expect(net.dials.length).toBeGreaterThan(stopped)
    }).pipe(Effect.scoped))

  it.live("a peer lost during its session keeps the session; when it ends, no redial", () =>
    Effect.gen(function*() {
      const net = yield* fakeNet({ "10.0.0.2": P })
      yield* net.feed(found(peerAt("10.0.0.2", P)))
      yield* settle
      yield* net.feed(PeerChange.Lost({ peerId: P }))
      yield* settle
      expect(net.sessions.has(P)).toBe(true)
      yield* net.end(P)
      yield* settle
      expect(net.dials).toHaveLength(1)
      expect(yield* net.dialers.keys).toEqual([])
    }).pipe(Effect.scoped))

  it.live("a session that ends is redialled while the peer is found (control for the above)", () =>
    Effect.gen(function*() {
      const net = yield* fakeNet({ "10.0.0.2": P })
      yield* net.feed(found(peerAt("10.0.0.2", P)))
      yield* settle
      yield* net.end(P)
      yield* settle
      expect(net.dials).toHaveLength(2)
      expect(net.lost).toEqual([P])
    }).pipe(Effect.scoped))

  it.live("another group: one attempt, one warning, no loop; found again (a new announcement), one more", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const run = Effect.gen(function*() {
        const refused = new HandshakeError({ reason: "the peer is in another group (we are in group a; see --group)", mismatch: "group" })
        const net = yield* fakeNet({ "10.0.0.2": refused, "10.0.0.3": refused })
        yield* net.feed(found(peerAt("10.0.0.2", P, "liar")), found(peerAt("10.0.0.3")))
        yield* Effect.sleep("500 millis")
        expect(net.dials.sort()).toEqual(["10.0.0.2", "10.0.0.3"])
        expect(yield* net.dialers.keys).toEqual([])
        yield* net.feed(found(peerAt("10.0.0.2", P, "liar")))
        yield* settle
        expect(net.dials).toHaveLength(3)
      })
      yield* run.pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
      const warnings = logs.lines.filter((l) => l.startsWith("WARN"))
      expect(warnings).toContain(`WARN not dialling "liar" (${P.slice(0, 8)}) at 10.0.0.2:9000 again: the peer is in another group (we are in group a; see --group)`)
      expect(warnings.filter((l) => l.includes("10.0.0.3:9000 again"))).toHaveLength(1)
      expect(warnings).toHaveLength(3)
    }))

  it.live("a key other than the advertised one: dropped with a warning naming it, and discovery told", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const run = Effect.gen(function*() {
        const net = yield* fakeNet({ "10.0.0.2": "c".repeat(64) })
        yield* net.feed(found(peerAt("10.0.0.2", P, "old")))
        yield* settle
        expect(net.dials).toEqual(["10.0.0.2"])
        expect(net.lost).toEqual([P])
      })
      yield* run.pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
      expect(logs.lines).toContain(`WARN not dialling "old" (${P.slice(0, 8)}) at 10.0.0.2:9000 again: peer id mismatch`)
    }))

  it.live("loops end with the scope", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const net = yield* fakeNet({})
        yield* net.feed(found(peerAt("10.0.0.2", P)))
        yield* Effect.never
      })))
      yield* settle
      yield* Fiber.interrupt(fiber)
      expect((yield* Fiber.await(fiber))._tag).toBe("Failure")
    }))

  it.live("a Stream of changes drives them (as SyncNode does)", () =>
    Effect.gen(function*() {
      const net = yield* fakeNet({ "10.0.0.2": P })
      yield* Stream.runForEach(Stream.make(found(peerAt("10.0.0.2", P)), found(peerAt("10.0.0.2", P))), net.dialers.onChange)
      yield* settle
      expect(net.dials).toHaveLength(1)
    }).pipe(Effect.scoped))
})
