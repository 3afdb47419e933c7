import * as Schema from "effect/Schema"
import { VersionVector } from "./VersionVector.js"

/** What a path holds: a regular file, a folder or a symlink (anything else is not synced). */
export const FileKind = Schema.Literal("file", "dir", "symlink")
/** One of the FileKind literals. */
export type FileKind = typeof FileKind.Type

const Hex32 = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

/** Cap on blocks per file: block size grows (power of two) to keep a file under it. */
export const MAX_BLOCKS = 2048
/** Smallest block size (also that of records without content): files up to 256 MiB use it. */
export const MIN_BLOCK_SIZE = 128 * 1024
/** Largest block size (files over 16 GiB); one such block must fit in a data frame. */
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024
/** Modification times beyond this (about year 5000) are nonsense, and some filesystems reject them. */
export const MAX_MTIME_MS = 1e14
/** Largest file we accept from a peer (MAX_BLOCKS blocks of MAX_BLOCK_SIZE). */
export const MAX_FILE_SIZE = MAX_BLOCKS * MAX_BLOCK_SIZE

/**
 * What a peer knows about one path. For files, `hash` is BLAKE3 over the block
 * hashes and the size, so a receiver that verified each block has verified the file.
 * For symlinks, `target` holds the link text and `hash` its BLAKE3.
 */
export const FileRecord = Schema.Struct({
  path: Schema.String.pipe(Schema.maxLength(4096)),
  kind: FileKind,
  size: Schema.Int.pipe(Schema.between(0, MAX_FILE_SIZE)),
  mtimeMs: Schema.Number.pipe(Schema.between(-MAX_MTIME_MS, MAX_MTIME_MS)),
  // permission bits only: setuid, setgid and sticky are never taken from a peer
  mode: Schema.Int.pipe(Schema.between(0, 0o777)),
  hash: Schema.String.pipe(Schema.pattern(/^([0-9a-f]{64})?$/)),
  target: Schema.optional(Schema.String.pipe(Schema.maxLength(4096))),
  blockSize: Schema.Int.pipe(Schema.between(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE)),
  blocks: Schema.Array(Hex32).pipe(Schema.maxItems(MAX_BLOCKS)),
  version: VersionVector,
  deleted: Schema.Boolean,
  sequence: Schema.Int.pipe(Schema.nonNegative())
})
/** A record as decoded by the FileRecord schema. */
export type FileRecord = typeof FileRecord.Type

/** Block size for a file of `size` bytes: the smallest power of two >= 128 KiB giving <= MAX_BLOCKS blocks. */
export const blockSizeFor = (size: number): number => {
  let bs = MIN_BLOCK_SIZE
  while (bs < MAX_BLOCK_SIZE && Math.ceil(size / bs) > MAX_BLOCKS) bs *= 2
  return bs
}

/** Byte length of block `index` of a file. */
export const blockLength = (record: Pick<FileRecord, "size" | "blockSize">, index: number): number =>
  Math.min(record.blockSize, record.size - index * record.blockSize)

/** True when two records describe the same content (ignoring versions). */
export const sameContent = (a: FileRecord, b: FileRecord): boolean =>
  a.deleted === b.deleted &&
  (a.deleted || (a.kind === b.kind && a.hash === b.hash && a.size === b.size && (a.target ?? "") === (b.target ?? "")))

/** Tombstones (deleted entries) are kept this long, then dropped from the index. */
export const TOMBSTONE_RETENTION_DAYS = 90

/**
 * `record` as a tombstone: no content left, and its mtime is the time of the deletion
 * (never later than `now`), so every replica ages it alike.
 */
export const asTombstone = <R extends FileRecord>({ target: _target, ...record }: R, deletedAtMs: number): Omit<R, "target"> => ({
  ...record,
  size: 0,
  hash: "",
  blocks: [],
  blockSize: MIN_BLOCK_SIZE,
  deleted: true,
  mtimeMs: Math.min(deletedAtMs, Date.now())
})
