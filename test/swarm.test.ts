import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import { fetchFromAll, makeSwarm } from "../src/programs/Swarm.js"
import { type BlockSink, type BlockSource, BlockUnavailable } from "../src/services/Transfer.js"

const BLOCKS = 64
const request = { path: "big.bin", hash: "h".repeat(64), blocks: Array.from({ length: BLOCKS }, (_, i) => i) }
/** Block i's content: one byte, i. */
const blockData = (i: number) => new Uint8Array([i])

/** How a fake peer answers a request for blocks. */
type Behaviour =
  | { readonly kind: "serves"; readonly perBlock?: Duration.DurationInput }
  /** Does not hold the version: fails at once. */
  | { readonly kind: "lacks" }
  /** Sends this many blocks in all, then leaves (every request after fails). */
  | { readonly kind: "leavesAfter"; readonly blocks: number }
  /** Sends `bad` blocks wrong. */
  | { readonly kind: "corrupts" }
  /** Sends nothing and never ends (until interrupted). */
  | { readonly kind: "stalls" }

/** A fake peer: the blocks it was asked for and sent, by request. */
const fakePeer = (peerId: string, behaviour: Behaviour) => {
  const asked: Array<ReadonlyArray<number>> = []
  let sent = 0
  let interrupted = 0
  const source: BlockSource = {
    peerId,
    fetchFiles: () => Effect.fail(new BlockUnavailable({ reason: "not in this test" })),
    fetchBlocks: (req, sink) =>
      Effect.gen(function*() {
        asked.push(req.blocks)
        switch (behaviour.kind) {
          case "lacks":
            return yield* new BlockUnavailable({ reason: `${peerId} lacks it` })
          case "stalls":
            return yield* Effect.never
          case "corrupts": {
            const refused = sink(req.blocks[0]!, new Uint8Array([255, 255]), false)
            return yield* new BlockUnavailable({ reason: refused ?? "taken?" })
          }
          default:
            for (const i of req.blocks) {
              if (behaviour.kind === "serves" && behaviour.perBlock) yield* Effect.sleep(behaviour.perBlock)
              else yield* Effect.yieldNow()
              if (behaviour.kind === "leavesAfter" && sent >= behaviour.blocks) return yield* new BlockUnavailable({ reason: "the peer left" })
              const refused = sink(i, blockData(i), false)
              if (refused !== undefined) return yield* new BlockUnavailable({ reason: refused })
              sent++
            }
        }
      }).pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted++)))
  }
  return { source, asked, sent: () => sent, interrupted: () => interrupted }
}

/** A sink that checks each block and counts how often it was given. */
const countingSink = () => {
  const taken = new Map<number, number>()
  const sink: BlockSink = (i, data) => {
    if (data.length !== 1 || data[0] !== i) return `block ${i} failed its hash check`
    taken.set(i, (taken.get(i) ?? 0) + 1)
    return undefined
  }
  return { sink, taken }
}

/** Fetch from the first source (the announcing peer) and the rest, none joining later. */
const fetchFrom = (sources: ReadonlyArray<BlockSource>, sink: BlockSink) =>
  fetchFromAll(sources[0]!, { current: () => sources, nextJoin: Effect.never }, request, sink)

const everyBlockOnce = (taken: Map<number, number>) =>
  taken.size === BLOCKS && [...taken.values()].every((n) => n === 1)

describe("swarm: a file pulled from every peer that has it", () => {
  it.effect("asks every peer, each for part of the file, and takes every block once", () =>
    Effect.gen(function*() {
      const peers = ["a", "b", "c"].map((id) => fakePeer(id, { kind: "serves" }))
      const { sink, taken } = countingSink()
      yield* fetchFrom(peers.map((p) => p.source), sink)
      expect(everyBlockOnce(taken)).toBe(true)
      for (const peer of peers) expect(peer.sent()).toBeGreaterThan(0)
      // blocks sent twice only near the end (a free peer helps a busy one): a few chunks' worth
      expect(peers.reduce((n, p) => n + p.sent(), 0)).toBeLessThan(BLOCKS * 1.5)
    }))

  it.effect("asks at most 8 peers for one file", () =>
    Effect.gen(function*() {
      const peers = Array.from({ length: 12 }, (_, i) => fakePeer(`p${i}`, { kind: "serves" }))
      const { sink, taken } = countingSink()
      yield* fetchFrom(peers.map((p) => p.source), sink)
      expect(everyBlockOnce(taken)).toBe(true)
      expect(peers.filter((p) => p.asked.length > 0).length).toBe(8)
    }))

  it.effect("a peer without the version is asked once and the rest come from the others", () =>
    Effect.gen(function*() {
      const [a, b] = [fakePeer("a", { kind: "serves" }), fakePeer("b", { kind: "lacks" })]
      const { sink, taken } = countingSink()
      yield* fetchFrom([a.source, b.source], sink)
      expect(everyBlockOnce(taken)).toBe(true)
      // its two request loops each asked once, then stopped
      expect(b.asked.length).toBeLessThanOrEqual(2)
      expect(a.sent()).toBe(BLOCKS)
    }))

  it.live("a peer that leaves mid-file: what it had not sent is asked of another", () =>
    Effect.gen(function*() {
      const [a, b] = [fakePeer("a", { kind: "serves", perBlock: "2 millis" }), fakePeer("b", { kind: "leavesAfter", blocks: 5 })]
      const { sink, taken } = countingSink()
      yield* fetchFrom([a.source, b.source], sink)
      expect(everyBlockOnce(taken)).toBe(true)
      expect(b.sent()).toBe(5)
      expect(a.sent()).toBeGreaterThanOrEqual(BLOCKS - 5)
    }))

  it.effect("a peer that sends a bad block is dropped; its blocks come from another", () =>
    Effect.gen(function*() {
      const [a, b] = [fakePeer("a", { kind: "serves" }), fakePeer("b", { kind: "corrupts" })]
      const { sink, taken } = countingSink()
      yield* fetchFrom([b.source, a.source], sink)
      expect(everyBlockOnce(taken)).toBe(true)
      expect(b.asked.length).toBeLessThanOrEqual(2)
    }))

  it.live("a peer that stalls: once nothing else is left, its blocks are asked of another, and its request is cancelled", () =>
    Effect.gen(function*() {
      const [a, b] = [fakePeer("a", { kind: "serves" }), fakePeer("b", { kind: "stalls" })]
      const { sink, taken } = countingSink()
      yield* fetchFrom([a.source, b.source], sink).pipe(Effect.timeout("5 seconds"))
      expect(everyBlockOnce(taken)).toBe(true)
      expect(b.asked.length).toBe(2)
      expect(b.interrupted()).toBe(2)
    }))

  it.effect("fails when every peer fails, with the announcing peer's reason", () =>
    Effect.gen(function*() {
      const [a, b] = [fakePeer("a", { kind: "lacks" }), fakePeer("b", { kind: "leavesAfter", blocks: 3 })]
      const { sink } = countingSink()
      const result = yield* Effect.either(fetchFrom([a.source, b.source], sink))
      expect(Either.isLeft(result) && result.left.reason).toBe("a lacks it")
    }))

  it.scoped("via: a small file is asked of the announcing peer alone; a large one of every peer in the swarm until it leaves", () =>
    Effect.gen(function*() {
      const swarm = makeSwarm()
      const [a, b] = [fakePeer("a", { kind: "serves" }), fakePeer("b", { kind: "serves" })]
      yield* swarm.join(a.source)
      const viaA = swarm.via(a.source)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* swarm.join(b.source)
        yield* viaA.fetchBlocks({ ...request, blocks: [0, 1, 2] }, countingSink().sink)
        expect(a.asked).toEqual([[0, 1, 2]])
        expect(b.asked.length).toBe(0)
        const { sink, taken } = countingSink()
        yield* viaA.fetchBlocks(request, sink)
        expect(everyBlockOnce(taken)).toBe(true)
        expect(b.sent()).toBeGreaterThan(0)
      }))
      const asked = b.asked.length
      const { sink, taken } = countingSink()
      yield* viaA.fetchBlocks(request, sink)
      expect(everyBlockOnce(taken)).toBe(true)
      expect(b.asked.length).toBe(asked) // it left: asked no more
    }))

  it.live("a peer that joins mid-file is asked for part of what is left", () =>
    Effect.gen(function*() {
      const swarm = makeSwarm()
      const peers = ["a", "b", "c"].map((id) => fakePeer(id, { kind: "serves", perBlock: "3 millis" }))
      const [a, b, c] = peers
      yield* swarm.join(a!.source)
      yield* swarm.join(b!.source)
      const { sink, taken } = countingSink()
      const download = yield* Effect.fork(swarm.via(a!.source).fetchBlocks(request, sink))
      yield* Effect.sleep("20 millis")
      expect(c!.asked.length).toBe(0)
      yield* swarm.join(c!.source)
      yield* download.await
      expect(everyBlockOnce(taken)).toBe(true)
      expect(c!.sent()).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.effect("alone, the announcing peer is asked for the whole file in one request", () =>
    Effect.gen(function*() {
      const swarm = makeSwarm()
      const a = fakePeer("a", { kind: "serves" })
      yield* swarm.join(a.source)
      const { sink, taken } = countingSink()
      yield* swarm.via(a.source).fetchBlocks(request, sink)
      expect(everyBlockOnce(taken)).toBe(true)
      expect(a.asked).toEqual([request.blocks])
    }).pipe(Effect.scoped))
})
