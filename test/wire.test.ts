import { Arbitrary, Effect, Either, Exit, FastCheck as fc, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { MAX_BLOCKS, MAX_FILE_SIZE } from "../src/domain/FileRecord.js"
import { BlockHeader, FileRequest, Hello, IndexBatch, Ping, PROTOCOL, StreamCancel, StreamEnd } from "../src/domain/Messages.js"
import {
  BLOCK_HEADER,
  blockDataFrame,
  BlockHeaderFromBytes,
  decodeBlockHeaderFast,
  decodeFrame,
  encodeBlockData,
  encodeMessage,
  setBlockIndex
} from "../src/lib/Wire.js"
import { recordCost } from "../src/programs/IncomingRecords.js"
import { byEncodedSize } from "../src/programs/PeerSession.js"
import { MAX_FRAME_PLAINTEXT } from "../src/services/SecureChannel.js"

const decode = (bytes: Uint8Array) => Effect.runSyncExit(decodeFrame(bytes))
const reason = (bytes: Uint8Array) => {
  const exit = decode(bytes)
  if (Exit.isSuccess(exit)) throw new Error("expected a refusal")
  return JSON.stringify(exit.cause)
}
const json = (value: unknown) => new Uint8Array([0, ...Buffer.from(JSON.stringify(value))])
const hello = (name: string) => json({ _tag: "Hello", protocol: PROTOCOL, replicaId: "0123456789abcdef", name })

describe("wire codec", () => {
  it("round-trips every message and raw block bytes", () => {
    const messages = [
      new Hello({ protocol: PROTOCOL, replicaId: "0123456789abcdef", name: "laptop" }),
      new IndexBatch({ records: [], initialDone: true }),
      new FileRequest({ stream: 7, path: "a/b.txt", hash: "a".repeat(64), blocks: [0, 5, 2047] }),
      new StreamEnd({ stream: 7 }),
      new StreamEnd({ stream: 8, error: "the file changed while being sent" }),
      new StreamCancel({ stream: 9 }),
      new Ping()
    ]
    for (const message of messages) {
      const exit = decode(encodeMessage(message))
      expect(Exit.isSuccess(exit) && exit.value).toEqual(message)
    }
    const data = new Uint8Array([1, 2, 3, 250])
    const exit = decode(encodeBlockData(0xfffffffe, 2047, true, data))
    expect(Exit.isSuccess(exit) && exit.value).toEqual({ _tag: "BlockData", stream: 0xfffffffe, index: 2047, compressed: true, data })
  })

  it("refuses malformed frames with a reason", () => {
    expect(reason(new Uint8Array([]))).toContain("empty frame")
    expect(reason(new Uint8Array([9, 1, 2]))).toContain("unknown frame kind")
    expect(reason(new Uint8Array([1, 0, 0]))).toContain("short block frame")
    expect(reason(new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0x80]))).toContain("unknown block flags")
    expect(reason(new Uint8Array([0, ...Buffer.from("{nope")]))).toContain("not valid JSON")
    expect(reason(new Uint8Array([0, 0xff, 0xfe]))).toContain("not valid JSON")
    expect(reason(json({ _tag: "Launch", missiles: true }))).toContain("invalid message")
    expect(reason(json({ _tag: "FileRequest", stream: -1, path: "x", hash: "a".repeat(64), blocks: [] }))).toContain("invalid message")
    expect(reason(json({ _tag: "FileRequest", stream: 1, path: "x", hash: "a".repeat(64), blocks: [2048] }))).toContain("invalid message")
    expect(reason(hello("x".repeat(257)))).toContain("invalid message")
  })

  it("FilesRequest: 1 to 64 files, each a bounded path and a 64-hex hash; anything else is refused", () => {
    const file = { path: "d/f.txt", hash: "a".repeat(64) }
    const request = (files: ReadonlyArray<unknown>, stream = 1) => json({ _tag: "FilesRequest", stream, files })
    expect(Exit.isSuccess(decode(request([file])))).toBe(true)
    expect(Exit.isSuccess(decode(request(Array(64).fill(file))))).toBe(true)
    expect(reason(request([]))).toContain("invalid message")
    expect(reason(request(Array(65).fill(file)))).toContain("invalid message")
    expect(reason(request([{ ...file, path: "x".repeat(4097) }]))).toContain("invalid message")
    expect(reason(request([{ ...file, hash: "A".repeat(64) }]))).toContain("invalid message")
    expect(reason(request([{ path: "d/f.txt" }]))).toContain("invalid message")
    expect(reason(request([file], -1))).toContain("invalid message")
    expect(reason(request([file], 2 ** 32))).toContain("invalid message")
  })

  it("IndexFrom: a sequence 0..2^53-1 is read; negative, fractional, past 2^53 or missing is refused", () => {
    expect(Exit.isSuccess(decode(json({ _tag: "IndexFrom", after: 0 })))).toBe(true)
    expect(Exit.isSuccess(decode(json({ _tag: "IndexFrom", after: Number.MAX_SAFE_INTEGER })))).toBe(true)
    for (const after of [-1, 1.5, 2 ** 60, "12", null]) {
      expect(reason(json({ _tag: "IndexFrom", after })), String(after)).toContain("invalid message")
    }
    expect(reason(json({ _tag: "IndexFrom" }))).toContain("invalid message")
    expect(Exit.isSuccess(decode(json({ _tag: "Bye" })))).toBe(true)
  })

  it("Upcoming: a 64-hex token and first-block hash, a bounded path, a size 1..the file cap; anything else is refused", () => {
    const upcoming = { _tag: "Upcoming", token: "a".repeat(64), path: "d/big.bin", size: 1, first: "b".repeat(64) }
    expect(Exit.isSuccess(decode(json(upcoming)))).toBe(true)
    expect(Exit.isSuccess(decode(json({ ...upcoming, size: MAX_FILE_SIZE })))).toBe(true)
    for (const size of [0, -1, 1.5, MAX_FILE_SIZE + 1, 2 ** 60, "12"]) {
      expect(reason(json({ ...upcoming, size })), String(size)).toContain("invalid message")
    }
    for (const bad of [{ token: "a".repeat(63) }, { token: "A".repeat(64) }, { first: "../x" }, { path: "x".repeat(4097) }, { first: undefined }]) {
      expect(reason(json({ ...upcoming, ...bad })), JSON.stringify(bad)).toContain("invalid message")
    }
  })

  it("IndexBatch: `through` is absent or a sequence 0..2^53-1; anything else is refused", () => {
    const batch = { _tag: "IndexBatch", records: [], initialDone: false }
    expect(Exit.isSuccess(decode(json(batch)))).toBe(true)
    expect(Exit.isSuccess(decode(json({ ...batch, through: Number.MAX_SAFE_INTEGER })))).toBe(true)
    for (const through of [-1, 1.5, 2 ** 60, "12", null]) {
      expect(reason(json({ ...batch, through })), String(through)).toContain("invalid message")
    }
  })

  it("a peer's name with control characters is refused (it would forge log lines)", () => {
    expect(Exit.isSuccess(decode(hello("laptop")))).toBe(true)
    expect(Exit.isFailure(decode(hello("evil\n12:00:00.000 INFO  fake line")))).toBe(true)
    expect(Exit.isFailure(decode(hello("\u001b[31mred")))).toBe(true)
  })

  it("index batches of big files are split to fit in a frame", () => {
    const blocks = Array.from({ length: 2048 }, (_, i) => i.toString(16).padStart(64, "0"))
    const records = Array.from({ length: 500 }, (_, i) => ({
      path: `big/file-${i}.bin`, kind: "file" as const, size: 2048 * 131072, mtimeMs: 1, mode: 0o644,
      hash: "f".repeat(64), blockSize: 131072, blocks, version: { "0123456789abcdef": 1 }, deleted: false,
      sequence: i + 1, inode: i
    }))
    const batches = byEncodedSize(records)
    expect(batches.length).toBeGreaterThan(1)
    expect(batches.flatMap((b) => b.records).map((r) => r.sequence)).toEqual(records.map((r) => r.sequence))
    for (const batch of batches) {
      expect(batch.cost).toBe(batch.records.reduce((sum, r) => sum + recordCost(r), 0))
      const frame = encodeMessage(new IndexBatch({ records: batch.records.map(({ inode: _, ...r }) => r), initialDone: false }))
      expect(frame.length).toBeLessThan(MAX_FRAME_PLAINTEXT)
    }
  })
})

describe("block frame header", () => {
  const data = new Uint8Array([7, 7, 7])
  /** A block frame with the header fields written raw (no range checks), then `data`. */
  const rawFrame = (stream: number, index: number, flags: number, kind = 1) => {
    const out = new Uint8Array(BLOCK_HEADER + data.length)
    const view = new DataView(out.buffer)
    out[0] = kind
    view.setUint32(1, stream)
    view.setUint32(5, index)
    out[9] = flags
    out.set(data, BLOCK_HEADER)
    return out
  }

  it("accepts the bounds: stream 0..2^32-1, index 0..MAX_BLOCKS-1, flags 0 or 1, an empty payload", () => {
    for (const [stream, index, flags] of [[0, 0, 0], [0xffffffff, MAX_BLOCKS - 1, 1], [1, 1, 0]] as const) {
      const exit = decode(rawFrame(stream, index, flags))
      expect(Exit.isSuccess(exit) && exit.value).toEqual({ _tag: "BlockData", stream, index, compressed: flags === 1, data })
    }
    const empty = decode(rawFrame(3, 4, 0).subarray(0, BLOCK_HEADER))
    expect(Exit.isSuccess(empty) && empty.value).toMatchObject({ _tag: "BlockData", stream: 3, index: 4, data: new Uint8Array() })
  })

  it("refuses a block index out of range at decode, naming the field", () => {
    for (const index of [MAX_BLOCKS, MAX_BLOCKS + 1, 0x10000, 0xffffffff]) {
      const why = reason(rawFrame(1, index, 0))
      expect(why).toContain("invalid block header")
      expect(why).toContain("index")
      expect(why).toContain(String(index))
    }
  })

  it("refuses unknown flag bits", () => {
    for (const flags of [0x02, 0x03, 0x80, 0xff]) {
      const why = reason(rawFrame(1, 0, flags))
      expect(why).toContain("unknown block flags")
      expect(why).toContain(`0x${flags.toString(16).padStart(2, "0")}`)
    }
  })

  it("refuses a short header", () => {
    const frame = rawFrame(1, 2, 0)
    for (let length = 1; length < BLOCK_HEADER; length++) {
      expect(reason(frame.subarray(0, length))).toContain("short block frame")
    }
  })

  it("the Schema refuses what decodeFrame never passes it: another kind, another length", () => {
    const decodeSchema = Schema.decodeEither(BlockHeaderFromBytes)
    expect(Either.isLeft(decodeSchema(rawFrame(1, 2, 0, 0).subarray(0, BLOCK_HEADER)))).toBe(true)
    expect(Either.isLeft(decodeSchema(rawFrame(1, 2, 0)))).toBe(true) // 13 bytes: header and payload
    expect(decodeSchema(rawFrame(1, 2, 1).subarray(0, BLOCK_HEADER))).toEqual(Either.right({ stream: 1, index: 2, compressed: true }))
  })

  it("the fast decoder and the Schema agree on random headers", () => {
    const decodeSchema = Schema.decodeEither(BlockHeaderFromBytes)
    const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, MAX_BLOCKS - 1, MAX_BLOCKS, 0xffffffff))
    const index = fc.oneof(fc.integer({ min: 0, max: 2 * MAX_BLOCKS }), u32)
    const header = fc.tuple(
      fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 255 })),
      u32,
      index,
      fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 255 }))
    ).map(([kind, stream, index, flags]) => rawFrame(stream, index, flags, kind).subarray(0, BLOCK_HEADER))
    const bytes = fc.oneof(header, fc.uint8Array({ minLength: 0, maxLength: 12 }))
    let accepted = 0
    fc.assert(
      fc.property(bytes, (b) => {
        const fast = decodeBlockHeaderFast(b)
        const slow = decodeSchema(b)
        if (fast !== undefined) accepted++
        expect(fast).toEqual(Either.getOrUndefined(slow))
      }),
      { numRuns: 20_000 }
    )
    // Both sides of the agreement were exercised.
    expect(accepted).toBeGreaterThan(1000)
    expect(accepted).toBeLessThan(19_000)
  })

  it("valid headers: the Schema's bytes are what the sender writes, and decode back", () => {
    const encodeSchema = Schema.encodeSync(BlockHeaderFromBytes)
    fc.assert(
      fc.property(Arbitrary.make(BlockHeader), (h) => {
        const bytes = encodeSchema(h)
        expect(blockDataFrame(h.stream, h.index, 0, h.compressed)).toEqual(bytes)
        if (!h.compressed) expect(setBlockIndex(blockDataFrame(h.stream, 0, 0), h.index)).toEqual(bytes)
        expect(decodeBlockHeaderFast(bytes)).toEqual(h)
      }),
      { numRuns: 2_000 }
    )
  })
})
