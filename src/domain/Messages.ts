import * as Schema from "effect/Schema"
import { MAX_BLOCKS, MAX_FILE_SIZE } from "./FileRecord.js"

/** Application protocol spoken inside the encrypted channel. */
export const PROTOCOL = "dsync/4"

const ReplicaId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{16}$/))

/** First message on a session: who this replica is. */
export class Hello extends Schema.TaggedClass<Hello>()("Hello", {
  protocol: Schema.Literal(PROTOCOL),
  replicaId: ReplicaId,
  // shown in our logs: no control characters (no forged log lines, no terminal escapes)
  name: Schema.String.pipe(Schema.maxLength(256), Schema.pattern(/^[^\u0000-\u001f\u007f]*$/))
}) {}

/**
 * A batch of index records; `initialDone` marks the end of the first full index. Each
 * record is decoded on its own (IncomingRecords): one bad record is refused alone
 * instead of ending the session. `through`: every record of the sender's numbered up to
 * it has now been sent, or left out as the receiver's own (Echoes), so the receiver's
 * count of what it took of this index moves past those left out too.
 */
export class IndexBatch extends Schema.TaggedClass<IndexBatch>()("IndexBatch", {
  records: Schema.Array(Schema.Unknown).pipe(Schema.maxItems(1000)),
  initialDone: Schema.Boolean,
  through: Schema.optional(Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER)))
}) {}

/**
 * Index flow control: the receiver has finished with records worth `credit` (their
 * `recordCost`), so the sender may send that much more. A sender keeps at most
 * INDEX_WINDOW outstanding, and a receiver drops a peer that exceeds it: what waits
 * to be applied stays bounded, and the socket carries the backpressure.
 */
export class IndexAck extends Schema.TaggedClass<IndexAck>()("IndexAck", {
  credit: Schema.Int.pipe(Schema.between(0, 2 ** 40))
}) {}

/**
 * Sent once, after the peer's Hello: send me your index records numbered after `after`
 * (what we already hold of that replica; 0 for everything). The peer starts its index
 * there, so a reconnect costs the changes, not the whole index.
 */
export class IndexFrom extends Schema.TaggedClass<IndexFrom>()("IndexFrom", {
  after: Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER))
}) {}

/** Record cost (IncomingRecords.recordCost) a sender may have outstanding, unacknowledged. */
export const INDEX_WINDOW = 8 * 1024 * 1024

const StreamId = Schema.Int.pipe(Schema.between(0, 0xffffffff))

/** Index of a block in its file. */
export const BlockIndex = Schema.Int.pipe(Schema.between(0, MAX_BLOCKS - 1))

/**
 * Ask for some blocks of one version of a file (`hash`). The peer streams them back as
 * binary BlockData frames, in order, then sends StreamEnd. One request per file: no
 * round trip per block.
 */
export class FileRequest extends Schema.TaggedClass<FileRequest>()("FileRequest", {
  stream: StreamId,
  path: Schema.String.pipe(Schema.maxLength(4096)),
  hash: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
  blocks: Schema.Array(BlockIndex).pipe(Schema.maxItems(MAX_BLOCKS))
}) {}

/** Files a FilesRequest may name. */
export const MAX_REQUEST_FILES = 64

/**
 * Ask for several whole one-block files at once (small files: one round trip for many,
 * not one each). The peer answers on `stream` with a BlockData frame per file it has in
 * that version, its `index` the file's position in `files`, then StreamEnd; a file it
 * does not have (changed since?) is left out.
 */
export class FilesRequest extends Schema.TaggedClass<FilesRequest>()("FilesRequest", {
  stream: StreamId,
  files: Schema.Array(Schema.Struct({
    path: Schema.String.pipe(Schema.maxLength(4096)),
    hash: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))
  })).pipe(Schema.minItems(1), Schema.maxItems(MAX_REQUEST_FILES))
}) {}

/**
 * A new file being hashed here, before its record exists: the peer may fetch its blocks
 * now, with `token` standing for the content hash in a FileRequest, and keep each block
 * it has verified by its own hash; the record that follows says which are right. Valid
 * while the hashing lasts. `first` is the hash of its first block: a peer that has that
 * block already (the file is a copy, or a rename) waits for the record and copies.
 */
export class Upcoming extends Schema.TaggedClass<Upcoming>()("Upcoming", {
  token: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
  path: Schema.String.pipe(Schema.maxLength(4096)),
  size: Schema.Int.pipe(Schema.between(1, MAX_FILE_SIZE)),
  first: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))
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

/** The sender is shutting down: end the session now (no timeout, no error). */
export class Bye extends Schema.TaggedClass<Bye>()("Bye", {}) {}

/** Keepalive, sent every `keepalive` period so that an idle but healthy session is not timed out. */
export class Ping extends Schema.TaggedClass<Ping>()("Ping", {}) {}

/** Every JSON message of the protocol (blocks travel as binary BlockData frames instead). */
export const Message = Schema.Union(Hello, IndexFrom, IndexBatch, IndexAck, FileRequest, FilesRequest, Upcoming, StreamEnd, StreamCancel, Ping, Bye)
/** One decoded protocol message. */
export type Message = typeof Message.Type

/**
 * What the fixed binary header of a BlockData frame says (its bytes: lib/Wire
 * BlockHeaderFromBytes): which stream, which block of the file, and whether the bytes
 * are LZ4-compressed.
 */
export const BlockHeader = Schema.Struct({
  stream: StreamId,
  index: BlockIndex,
  compressed: Schema.Boolean
})
/** A decoded block header. */
export interface BlockHeader extends Schema.Schema.Type<typeof BlockHeader> {}

/** One block of a stream: raw bytes, never JSON. */
export interface BlockData extends BlockHeader {
  readonly _tag: "BlockData"
  readonly data: Uint8Array
}

/** What one received frame decodes to (lib/Wire decodeFrame): a JSON message or a block. */
export type Frame = Message | BlockData
