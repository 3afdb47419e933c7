import { Effect, Either, ParseResult, Schema } from "effect"
import { ProtocolError } from "../domain/Errors.js"
import { type BlockData, type Frame, Message } from "../domain/Messages.js"

/** First byte of each plaintext frame: a Schema message as JSON, or raw block bytes. */
const KIND_MESSAGE = 0
const KIND_BLOCK = 1
/** kind, stream id, block index, flags */
const BLOCK_HEADER = 1 + 4 + 4 + 1
const FLAG_COMPRESSED = 1

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })
const encodeMessageSync = Schema.encodeSync(Message)
const decodeMessage = Schema.decodeUnknownEither(Message)

export const encodeMessage = (message: Message): Uint8Array => {
  const json = encoder.encode(JSON.stringify(encodeMessageSync(message)))
  const out = new Uint8Array(1 + json.length)
  out[0] = KIND_MESSAGE
  out.set(json, 1)
  return out
}

export const encodeBlockData = (stream: number, index: number, compressed: boolean, data: Uint8Array): Uint8Array => {
  const out = blockDataFrame(stream, index, data.length, compressed)
  out.set(data, BLOCK_HEADER)
  return out
}

/**
 * A block frame with its header filled in and room for `size` payload bytes, which the
 * caller writes into `blockPayload(frame)` (e.g. straight from the file: no extra copy).
 */
export const blockDataFrame = (stream: number, index: number, size: number, compressed = false): Uint8Array => {
  const out = new Uint8Array(BLOCK_HEADER + size)
  const view = new DataView(out.buffer)
  out[0] = KIND_BLOCK
  view.setUint32(1, stream)
  view.setUint32(5, index)
  out[9] = compressed ? FLAG_COMPRESSED : 0
  return out
}

export const blockPayload = (frame: Uint8Array): Uint8Array => frame.subarray(BLOCK_HEADER)

/** Bytes of a block frame carrying `size` payload bytes. */
export const blockFrameLength = (size: number): number => BLOCK_HEADER + size

/** Point a reused (uncompressed) block frame at another block. */
export const setBlockIndex = (frame: Uint8Array, index: number): Uint8Array => {
  new DataView(frame.buffer, frame.byteOffset, BLOCK_HEADER).setUint32(5, index)
  return frame
}

/** Decode and validate one plaintext frame; anything malformed is a ProtocolError. */
export const decodeFrame = (bytes: Uint8Array): Effect.Effect<Frame, ProtocolError> => {
  if (bytes.length === 0) return Effect.fail(new ProtocolError({ reason: "empty frame" }))
  if (bytes[0] === KIND_BLOCK) {
    if (bytes.length < BLOCK_HEADER) return Effect.fail(new ProtocolError({ reason: "short block frame" }))
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const flags = bytes[9]!
    if ((flags & ~FLAG_COMPRESSED) !== 0) return Effect.fail(new ProtocolError({ reason: "unknown block flags" }))
    const frame: BlockData = {
      _tag: "BlockData",
      stream: view.getUint32(1),
      index: view.getUint32(5),
      compressed: (flags & FLAG_COMPRESSED) !== 0,
      data: bytes.subarray(BLOCK_HEADER)
    }
    return Effect.succeed(frame)
  }
  if (bytes[0] !== KIND_MESSAGE) return Effect.fail(new ProtocolError({ reason: `unknown frame kind ${bytes[0]}` }))
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(bytes.subarray(1)))
  } catch {
    return Effect.fail(new ProtocolError({ reason: "message is not valid JSON" }))
  }
  return Either.match(decodeMessage(json), {
    onLeft: (error) =>
      Effect.fail(new ProtocolError({ reason: `invalid message: ${ParseResult.TreeFormatter.formatErrorSync(error).slice(0, 300)}` })),
    onRight: (message) => Effect.succeed(message)
  })
}
