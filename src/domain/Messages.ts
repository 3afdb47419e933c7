import { Schema } from "effect"
import { FileRecord, MAX_BLOCK_SIZE } from "./FileRecord.js"

/** Application protocol spoken inside the encrypted channel. */
export const PROTOCOL = "dsync/1"

const ReplicaId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{16}$/))
const RequestId = Schema.Int.pipe(Schema.between(0, 0xffffffff))

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

/** Ask for the bytes of one block; the answer is a binary BlockData frame or a BlockError. */
export class BlockRequest extends Schema.TaggedClass<BlockRequest>()("BlockRequest", {
  id: RequestId,
  path: Schema.String.pipe(Schema.maxLength(4096)),
  offset: Schema.Int.pipe(Schema.nonNegative()),
  size: Schema.Int.pipe(Schema.between(0, MAX_BLOCK_SIZE)),
  hash: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))
}) {}

export class BlockError extends Schema.TaggedClass<BlockError>()("BlockError", {
  id: RequestId,
  reason: Schema.String.pipe(Schema.maxLength(1024))
}) {}

export class Ping extends Schema.TaggedClass<Ping>()("Ping", {}) {}

export const Message = Schema.Union(Hello, IndexBatch, BlockRequest, BlockError, Ping)
export type Message = typeof Message.Type

/** A binary block answer: raw bytes, never JSON. */
export interface BlockData {
  readonly _tag: "BlockData"
  readonly id: number
  readonly compressed: boolean
  readonly data: Uint8Array
}

export type Frame = Message | BlockData
