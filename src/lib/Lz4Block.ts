/**
 * LZ4 block format (no frame, no checksum: the BLAKE3 block hash covers integrity).
 * Compression uses lz4js. Decompression is our own bounds-checked decoder: lz4js's
 * `decompressBlock` trusts its input (no offset, length or end checks), and the
 * input here comes from the network.
 */
import * as lz4 from "lz4js"

/** Bytes compressed first to decide whether the whole block is worth trying. */
const SAMPLE_SIZE = 16 * 1024
/** The sample must shrink to at most this fraction, or we send the block raw. */
const SAMPLE_MAX_RATIO = 0.9

// Reused across calls (JS is single-threaded and compressBlock is synchronous).
const hashTable = new Int32Array(1 << 16)
let scratch = new Uint8Array(0)

/** Compress `src[0, length)` into `scratch`; returns the compressed length, 0 when incompressible. */
const compressPrefix = (src: Uint8Array, length: number): number => {
  // Each block is independent: stale positions from the previous block must not be reused.
  hashTable.fill(0)
  const bound = lz4.compressBound(length)
  if (scratch.length < bound) scratch = new Uint8Array(bound)
  return lz4.compressBlock(src, scratch, 0, length, hashTable)
}

/**
 * LZ4 block bytes for `data`, or `undefined` when compression does not make it smaller
 * (then the caller sends `data` as is). A 16 KiB sample is tried first so random or
 * already-compressed data costs little.
 */
export const compressBlock = (data: Uint8Array): Uint8Array | undefined => {
  if (data.length > 2 * SAMPLE_SIZE) {
    const n = compressPrefix(data, SAMPLE_SIZE)
    if (n === 0 || n > SAMPLE_SIZE * SAMPLE_MAX_RATIO) return undefined
  }
  const n = compressPrefix(data, data.length)
  return n > 0 && n < data.length ? scratch.slice(0, n) : undefined
}

/**
 * Decode LZ4 block `data` that must expand to exactly `originalSize` bytes.
 * Returns `undefined` (never throws) on malformed input or a size mismatch; every read
 * and write is checked first, so nothing is written outside the output buffer.
 */
export const decompressBlock = (data: Uint8Array, originalSize: number): Uint8Array | undefined => {
  if (!Number.isSafeInteger(originalSize) || originalSize < 0) return undefined
  const out = new Uint8Array(originalSize)
  const end = data.length
  let s = 0
  let d = 0
  while (s < end) {
    const token = data[s++]!

    // Literal run: 4-bit length, extended by bytes while they are 255.
    let literals = token >>> 4
    if (literals === 15) {
      let b: number
      do {
        if (s >= end) return undefined
        b = data[s++]!
        literals += b
      } while (b === 255)
    }
    if (literals > end - s || literals > originalSize - d) return undefined
    if (literals < 16) {
      for (let i = 0; i < literals; i++) out[d++] = data[s++]!
    } else {
      out.set(data.subarray(s, s + literals), d)
      s += literals
      d += literals
    }

    // The last sequence has literals only.
    if (s === end) break

    // Match: 16-bit little-endian offset back into the output, then its length.
    if (end - s < 2) return undefined
    const offset = data[s]! | (data[s + 1]! << 8)
    s += 2
    if (offset === 0 || offset > d) return undefined
    let length = token & 15
    if (length === 15) {
      let b: number
      do {
        if (s >= end) return undefined
        b = data[s++]!
        length += b
      } while (b === 255)
    }
    length += 4
    if (length > originalSize - d) return undefined
    if (offset >= length && length >= 32) {
      out.copyWithin(d, d - offset, d - offset + length)
      d += length
    } else {
      // Short or overlapping (offset < length repeats recent bytes): byte by byte.
      for (let i = d - offset, n = d + length; d < n;) out[d++] = out[i++]!
    }
  }
  return d === originalSize ? out : undefined
}
