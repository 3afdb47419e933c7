import { Schema } from "effect"
import { FileRecord, MAX_BLOCKS } from "./FileRecord.js"

/** Application protocol spoken inside the encrypted channel. */
export const PROTOCOL = "dsync/1"

const ReplicaId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{16}$/))

/** First message on a session: who this replica is. */
export class Hello extends Schema.TaggedClass<Hello>()("Hello", {
  protocol: Schema.Literal(PROTOCOL),
  replicaId: ReplicaId,
  // shown in our logs: no control characters (no forged log lines, no terminal escapes)
  name: Schema.String.pipe(Schema.maxLength(256), Schema.pattern(/^[^\u0000-\u001f\u007f]*$/))
}) {}

/** A batch of index records; `initialDone` marks the end of the first full index. */
export class IndexBatch extends Schema.TaggedClass<IndexBatch>()("IndexBatch", {
  records: Schema.Array(FileRecord).pipe(Schema.maxItems(1000)),
  initialDone: Schema.Boolean
}) {}

const StreamId = Schema.Int.pipe(Schema.between(0, 0xffffffff))

/**
 * Ask for some blocks of one version of a file (`hash`). The peer streams them back as
 * binary BlockData frames, in order, then sends StreamEnd. One request per file: no
 * round trip per block.
 */
export class FileRequest extends Schema.TaggedClass<FileRequest>()("FileRequest", {
  stream: StreamId,
  path: Schema.String.pipe(Schema.maxLength(4096)),
  hash: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
  blocks: Schema.Array(Schema.Int.pipe(Schema.between(0, MAX_BLOCKS - 1))).pipe(Schema.maxItems(MAX_BLOCKS))
}) {}

/** The sender is done with a stream: all blocks sent, or `error` says why it stopped. */
export class StreamEnd extends Schema.TaggedClass<StreamEnd>()("StreamEnd", {
  stream: StreamId,
  error: Schema.optional(Schema.String.pipe(Schema.maxLength(1024)))
}) {}

/** The receiver no longer wants a stream (it failed, or the file changed again). */
export class StreamCancel extends Schema.TaggedClass<StreamCancel>()("StreamCancel", {
  stream: StreamId
}) {}

export class Ping extends Schema.TaggedClass<Ping>()("Ping", {}) {}

export const Message = Schema.Union(Hello, IndexBatch, FileRequest, StreamEnd, StreamCancel, Ping)
export type Message = typeof Message.Type

/** One block of a stream: raw bytes, never JSON. */
export interface BlockData {
  readonly _tag: "BlockData"
  readonly stream: number
  /** Index of the block in the file. */
  readonly index: number
  readonly compressed: boolean
  readonly data: Uint8Array
}

export type Frame = Message | BlockData
