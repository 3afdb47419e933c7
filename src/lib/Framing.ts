import { Effect } from "effect"
import { type ConnectionClosed, ProtocolError } from "../domain/Errors.js"
import type { Connection } from "../services/Transport.js"

export const HEADER_BYTES = 4

/** `payload` prefixed with its length as a 4-byte big-endian integer. */
export const encodeFrame = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(HEADER_BYTES + payload.length)
  out.set(payload, HEADER_BYTES)
  return writeFrameHeader(out)
}

/** Fill in the header of a frame whose payload already sits after HEADER_BYTES of room. */
export const writeFrameHeader = (frame: Uint8Array): Uint8Array => {
  new DataView(frame.buffer, frame.byteOffset, HEADER_BYTES).setUint32(0, frame.length - HEADER_BYTES)
  return frame
}

const EMPTY = new Uint8Array(0)

/**
 * Reads length-prefixed frames from a connection, keeping bytes left over from
 * the last chunk for the next frame. One reader per connection, one read at a
 * time; interrupting a read loses the stream position, so close the connection then.
 */
export class FrameReader {
  private chunk: Uint8Array = EMPTY
  private pos = 0

  constructor(readonly connection: Connection) {}

  /** The next frame's payload; fails before allocating anything when its header exceeds `maxSize`. */
  read(maxSize: number): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
    return Effect.suspend(() => {
      if (this.pos < this.chunk.length) return this.readBuffered(maxSize)
      // Nothing left over: take a fresh chunk first, so a frame within it can use the fast path.
      return Effect.flatMap(this.connection.read, (chunk) => {
        this.chunk = chunk
        this.pos = 0
        return this.readBuffered(maxSize)
      })
    })
  }

  private readBuffered(maxSize: number): Effect.Effect<Uint8Array, ProtocolError | ConnectionClosed> {
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
    return this.readSlow(maxSize)
  }

  private readSlow(maxSize: number) {
    return Effect.gen(this, function*() {
      const header = yield* this.fill(new Uint8Array(HEADER_BYTES))
      const size = readUint32(header, 0)
      if (size > maxSize) return yield* tooLarge(size, maxSize)
      // Copy straight into one buffer of the final size: linear in the frame length.
      return yield* this.fill(new Uint8Array(size))
    })
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
