import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Ref } from "effect"
import { ConnectionClosed } from "../src/domain/Errors.js"
import { connectionPair } from "../src/layers/TransportMemory.js"
import { encodeFrame, FrameReader } from "../src/lib/Framing.js"
import type { Connection } from "../src/services/Transport.js"

const payload = (n: number, seed = 0) => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}
const concat = (parts: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(parts))
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

/** A connection that yields the given chunks, then EOF; counts reads. */
const scripted = (chunks: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function*() {
    const reads = yield* Ref.make(0)
    const connection: Connection = {
      remoteHost: "test",
      remoteLabel: "test",
      read: Effect.flatMap(Ref.getAndUpdate(reads, (n) => n + 1), (i) =>
        i < chunks.length ? Effect.succeed(chunks[i]!) : Effect.fail(new ConnectionClosed({ reason: "end of stream" }))),
      write: () => Effect.void,
      close: Effect.void
    }
    return { connection, reads }
  })

describe("Framing", () => {
  it("encodeFrame writes a big-endian length", () => {
    expect(hex(encodeFrame(Uint8Array.of(7, 8, 9)))).toBe("00000003070809")
    expect(hex(encodeFrame(new Uint8Array(0x01020304)).subarray(0, 4))).toBe("01020304")
  })

  it.effect("every way of splitting a stream into two or three chunks yields the same frames", () =>
    Effect.gen(function*() {
      const frames = [payload(5, 1), payload(0), payload(9, 2)]
      const stream = concat(frames.map(encodeFrame))
      for (let i = 0; i <= stream.length; i++) {
        for (let j = i; j <= stream.length; j++) {
          const { connection } = yield* scripted([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)])
          const reader = new FrameReader(connection)
          for (const frame of frames) expect(hex(yield* reader.read(100))).toBe(hex(frame))
        }
      }
    }))

  it.effect("one byte per chunk", () =>
    Effect.gen(function*() {
      const frames = [payload(3), payload(300, 7)]
      const stream = concat(frames.map(encodeFrame))
      const { connection, reads } = yield* scripted(Array.from(stream, (b) => Uint8Array.of(b)))
      const reader = new FrameReader(connection)
      for (const frame of frames) expect(hex(yield* reader.read(1000))).toBe(hex(frame))
      expect(yield* Ref.get(reads)).toBe(stream.length)
    }))

  it.effect("several frames in one chunk come back as views of it (no copy)", () =>
    Effect.gen(function*() {
      const frames = [payload(10), payload(20, 3), payload(30, 5)]
      const chunk = concat(frames.map(encodeFrame))
      const { connection, reads } = yield* scripted([chunk])
      const reader = new FrameReader(connection)
      for (const frame of frames) {
        const got = yield* reader.read(100)
        expect(hex(got)).toBe(hex(frame))
        expect(got.buffer).toBe(chunk.buffer)
      }
      expect(yield* Ref.get(reads)).toBe(1)
    }))

  it.effect("a 16 MiB frame across 64 KiB chunks, then a frame in the leftover", () =>
    Effect.gen(function*() {
      const big = payload(16 * 1024 * 1024, 9)
      const small = payload(3, 4)
      const stream = concat([encodeFrame(big), encodeFrame(small)])
      const chunks: Array<Uint8Array> = []
      for (let at = 0; at < stream.length; at += 65536) chunks.push(stream.subarray(at, at + 65536))
      const { connection } = yield* scripted(chunks)
      const reader = new FrameReader(connection)
      const got = yield* reader.read(big.length)
      expect(Buffer.compare(got, big)).toBe(0)
      expect(hex(yield* reader.read(10))).toBe(hex(small))
    }))

  it.effect("an oversized header is rejected without reading the body", () =>
    Effect.gen(function*() {
      const { a, b } = yield* connectionPair()
      // Only the header is ever sent: a reader that waited for the body would hang.
      yield* a.write(encodeFrame(payload(101)).subarray(0, 4))
      const error = yield* Effect.flip(new FrameReader(b).read(100))
      expect(error._tag).toBe("ProtocolError")
      expect(error._tag === "ProtocolError" && error.reason).toContain("101")
      // Header split across chunks takes the slow path: same check.
      const { connection, reads } = yield* scripted([Uint8Array.of(0xff, 0xff), Uint8Array.of(0xff, 0xff), payload(10)])
      const slow = yield* Effect.flip(new FrameReader(connection).read(1 << 24))
      expect(slow._tag).toBe("ProtocolError")
      expect(yield* Ref.get(reads)).toBe(2)
    }))

  it.effect("a frame exactly at the limit is accepted", () =>
    Effect.gen(function*() {
      const { a, b } = yield* connectionPair()
      yield* a.write(encodeFrame(payload(100)))
      expect((yield* new FrameReader(b).read(100)).length).toBe(100)
    }))

  it.effect("EOF in the middle of a frame fails with ConnectionClosed", () =>
    Effect.gen(function*() {
      const { a, b } = yield* connectionPair()
      yield* a.write(encodeFrame(payload(50)).subarray(0, 20))
      yield* a.close
      const exit = yield* Effect.exit(new FrameReader(b).read(100))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("ConnectionClosed")
      // Mid-header too.
      const { connection } = yield* scripted([Uint8Array.of(0, 0)])
      expect((yield* Effect.flip(new FrameReader(connection).read(100)))._tag).toBe("ConnectionClosed")
    }))

  it.effect("readTransient assembles split frames in one reused buffer; read never reuses", () =>
    Effect.gen(function*() {
      const frames = [payload(5000, 1), payload(3000, 2), payload(5000, 3), payload(4000, 4)]
      const stream = concat(frames.map(encodeFrame))
      const chunks: Array<Uint8Array> = []
      for (let at = 0; at < stream.length; at += 1000) chunks.push(stream.slice(at, at + 1000))
      const { connection } = yield* scripted(chunks)
      const reader = new FrameReader(connection)
      const first = yield* reader.readTransient(10_000)
      expect(hex(first)).toBe(hex(frames[0]!))
      const second = yield* reader.readTransient(10_000)
      expect(hex(second)).toBe(hex(frames[1]!))
      expect(second.buffer).toBe(first.buffer) // the same scratch buffer, overwritten
      const kept = yield* reader.read(10_000)
      const after = yield* reader.readTransient(10_000)
      expect(hex(kept)).toBe(hex(frames[2]!)) // a plain read stays intact after further reads
      expect(hex(after)).toBe(hex(frames[3]!))
      expect(kept.buffer).not.toBe(after.buffer)
    }))
})
