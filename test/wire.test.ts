import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { FileRequest, Hello, IndexBatch, Ping, StreamCancel, StreamEnd } from "../src/domain/Messages.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import { byEncodedSize } from "../src/programs/PeerSession.js"
import { MAX_FRAME_PLAINTEXT } from "../src/services/SecureChannel.js"

const decode = (bytes: Uint8Array) => Effect.runSyncExit(decodeFrame(bytes))
const reason = (bytes: Uint8Array) => {
  const exit = decode(bytes)
  if (Exit.isSuccess(exit)) throw new Error("expected a refusal")
  return JSON.stringify(exit.cause)
}
const json = (value: unknown) => new Uint8Array([0, ...Buffer.from(JSON.stringify(value))])
const hello = (name: string) => json({ _tag: "Hello", protocol: "dsync/1", replicaId: "0123456789abcdef", name })

describe("wire codec", () => {
  it("round-trips every message and raw block bytes", () => {
    const messages = [
      new Hello({ protocol: "dsync/1", replicaId: "0123456789abcdef", name: "laptop" }),
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
    expect(batches.flat().map((r) => r.sequence)).toEqual(records.map((r) => r.sequence))
    for (const batch of batches) {
      const frame = encodeMessage(new IndexBatch({ records: batch.map(({ inode: _, ...r }) => r), initialDone: false }))
      expect(frame.length).toBeLessThan(MAX_FRAME_PLAINTEXT)
    }
  })
})
