import * as Effect from "effect/Effect"
import { type ConnectionClosed, ProtocolError } from "../domain/Errors.js"
import type { Connection } from "../services/Transport.js"

/** Length of a frame's header: its payload length, big-endian. */
export const HEADER_BYTES = 4

/** `payload` prefixed with its length as a 4-byte big-endian integer. */
export const encodeFrame = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(HEADER_BYTES + payload.length)
  new DataView(out.buffer).setUint32(0, payload.length)
  out.set(payload, HEADER_BYTES)
  return out
}

/** The header alone, for a payload written after it as separate parts. */
export const frameHeader = (payloadLength: number): Uint8Array => {
  const header = new Uint8Array(HEADER_BYTES)
  new DataView(header.buffer).setUint32(0, payloadLength)
  return header
}

const EMPTY = new Uint8Array(0)
/** Largest frame assembled in the reused buffer: bigger ones (rare) get their own. */
const MAX_SCRATCH = 2 * 1024 * 1024

/**
 * Reads length-prefixed frames from a connection, keeping bytes left over from
 * the last chunk for the next frame. One reader per connection, one read at a
 * time; interrupting a read loses the stream position, so close the connection then.
 */
export class FrameReader {
  private chunk: Uint8Array = EMPTY
  private pos = 0

  constructor(readonly connection: Connection) {}

  /** Reused for frames split across chunks by `readTransient`; frames up to this size only. */
  private scratch: Uint8Array = EMPTY

  /** The next frame's payload; fails before allocating anything when its header exceeds `maxSize`. */
  read(maxSize: number): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
    return this.next(maxSize, false)
  }

  /**
   * Like `read`, but the bytes are only valid until the next read: a frame split across
   * chunks is assembled in a reused buffer. For callers that consume each frame at once
   * (decrypting it), this saves an allocation per frame.
   */
  readTransient(maxSize: number): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
    return this.next(maxSize, true)
  }

  private next(maxSize: number, transient: boolean): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
    return Effect.suspend(() => {
      if (this.pos < this.chunk.length) return this.readBuffered(maxSize, transient)
      // Nothing left over: take a fresh chunk first, so a frame within it can use the fast path.
      return Effect.flatMap(this.connection.read, (chunk) => {
        this.chunk = chunk
        this.pos = 0
        return this.readBuffered(maxSize, transient)
      })
    })
  }

  private readBuffered(maxSize: number, transient: boolean): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
    // Fast path: header and body both in the current chunk, returned as a view (no copy).
    if (this.chunk.length - this.pos >= HEADER_BYTES) {
      const size = readUint32(this.chunk, this.pos)
      if (size > maxSize) return tooLarge(size, maxSize)
      if (this.chunk.length - this.pos - HEADER_BYTES >= size) {
        const start = this.pos + HEADER_BYTES
        this.pos = start + size
        return Effect.succeed(this.chunk.subarray(start, this.pos))
      }
    }
    return this.readSlow(maxSize, transient)
  }

  private readSlow(maxSize: number, transient: boolean) {
    return Effect.gen(this, function*() {
      const header = yield* this.fill(new Uint8Array(HEADER_BYTES))
      const size = readUint32(header, 0)
      if (size > maxSize) return yield* tooLarge(size, maxSize)
      // Copy straight into one buffer of the final size: linear in the frame length.
      return yield* this.fill(transient ? this.scratchOf(size) : new Uint8Array(size))
    })
  }

  private scratchOf(size: number): Uint8Array {
    if (size > MAX_SCRATCH) return new Uint8Array(size)
    if (this.scratch.length < size) this.scratch = new Uint8Array(Math.max(size, Math.min(MAX_SCRATCH, this.scratch.length * 2)))
    return this.scratch.subarray(0, size)
  }

  /** Fill `out` from the leftover bytes, then from further chunks. */
  private fill(out: Uint8Array) {
    return Effect.gen(this, function*() {
      let filled = 0
      while (true) {
        const n = Math.min(out.length - filled, this.chunk.length - this.pos)
        out.set(this.chunk.subarray(this.pos, this.pos + n), filled)
        filled += n
        this.pos += n
        if (filled === out.length) return out
        this.chunk = yield* this.connection.read
        this.pos = 0
      }
    })
  }
}

const readUint32 = (bytes: Uint8Array, at: number): number =>
  ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0

const tooLarge = (size: number, maxSize: number) =>
  Effect.fail(new ProtocolError({ reason: `frame of ${size} bytes exceeds the limit of ${maxSize}` }))
