import { describe, expect, it } from "@effect/vitest"
import * as lz4js from "lz4js"
import { randomBytes } from "node:crypto"
import { compressBlock, decompressBlock } from "../src/lib/Lz4Block.js"

const textLike = (size: number): Uint8Array => {
  const words = ["peer", "index", "block", "version", "vector", "folder", "the", "sync", "hash", "file"]
  let s = ""
  for (let i = 0; s.length < size; i++) s += words[(i * 7 + (i >> 3)) % words.length] + (i % 11 === 0 ? "\n" : " ")
  return new TextEncoder().encode(s.slice(0, size))
}

// Byte comparison through Buffer: toEqual walks a 1 MiB array element by element (slow).
const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b))

describe("Lz4Block", () => {
  it("round-trips text of several sizes", () => {
    for (const size of [64, 1000, 16 * 1024, 100_000, 1 << 20]) {
      const data = textLike(size)
      const packed = compressBlock(data)
      expect(packed, `size ${size}`).toBeDefined()
      expect(packed!.length).toBeLessThan(data.length)
      expect(same(decompressBlock(packed!, data.length), data)).toBe(true)
    }
  })

  it("produces standard LZ4 blocks (lz4js's own decoder agrees)", () => {
    const data = textLike(300_000)
    const packed = compressBlock(data)!
    const out = new Uint8Array(data.length)
    expect(lz4js.decompressBlock(packed, out, 0, packed.length, 0)).toBe(data.length)
    expect(same(out, data)).toBe(true)
  })

  it("decodes long overlapping matches (runs of one byte)", () => {
    const data = new Uint8Array(200_000).fill(0x61)
    data[123_456] = 0x62
    const packed = compressBlock(data)!
    expect(packed.length).toBeLessThan(2000)
    expect(same(decompressBlock(packed, data.length), data)).toBe(true)
  })

  it("returns undefined for incompressible data, large and small", () => {
    expect(compressBlock(new Uint8Array(randomBytes(1 << 20)))).toBeUndefined()
    expect(compressBlock(new Uint8Array(randomBytes(1000)))).toBeUndefined()
    expect(compressBlock(new Uint8Array(0))).toBeUndefined()
    expect(compressBlock(new Uint8Array(5).fill(1))).toBeUndefined() // too short to gain anything
  })

  it("gives up after the sample when the start does not compress", () => {
    // Random first 64 KiB, then very compressible: the sample check says no.
    const data = new Uint8Array(1 << 20)
    data.set(randomBytes(64 * 1024))
    expect(compressBlock(data)).toBeUndefined()
  })

  it("fails cleanly on malformed input", () => {
    const data = textLike(50_000)
    const packed = compressBlock(data)!
    // Each case with the size it would decode to if the broken check were missing.
    const cases: Array<[string, Uint8Array, number]> = [
      ["truncated", packed.subarray(0, packed.length - 7), data.length],
      ["cut inside an offset", Uint8Array.of(0x10, 0x61, 0x01), 5],
      ["offset 0", Uint8Array.of(0x10, 0x61, 0x00, 0x00, 0x00), 5],
      ["offset before the start", Uint8Array.of(0x10, 0x61, 0x05, 0x00, 0x00), 5],
      ["unterminated literal length", Uint8Array.of(0xf0, 0xff, 0xff), 525],
      ["literals past the end", Uint8Array.of(0x50, 0x61, 0x62), 5],
      ["match longer than the output", Uint8Array.of(0x1f, 0x61, 0x01, 0x00, 0xff, 0xff, 0x00), 1 + 15 + 510 + 4 - 1],
      ["literals longer than the output", Uint8Array.of(0x30, 0x61, 0x62, 0x63), 2]
    ]
    for (const [name, bad, size] of cases) {
      expect(() => decompressBlock(bad, size), name).not.toThrow()
      expect(decompressBlock(bad, size), name).toBeUndefined()
    }
    // Random garbage: never throws, never returns the wrong size.
    for (let i = 0; i < 200; i++) {
      const out = decompressBlock(new Uint8Array(randomBytes(64)), 4096)
      if (out !== undefined) expect(out.length).toBe(4096)
    }
  })

  it("fails when originalSize is wrong", () => {
    const data = textLike(10_000)
    const packed = compressBlock(data)!
    expect(decompressBlock(packed, data.length - 1)).toBeUndefined()
    expect(decompressBlock(packed, data.length + 1)).toBeUndefined()
    expect(decompressBlock(packed, 0)).toBeUndefined()
    expect(decompressBlock(packed, -1)).toBeUndefined()
    expect(decompressBlock(packed, 1.5)).toBeUndefined()
    expect(same(decompressBlock(packed, data.length), data)).toBe(true)
  })
})
