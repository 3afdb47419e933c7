import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { asTombstone, blockSizeFor, FileRecord, MIN_BLOCK_SIZE, TOMBSTONE_RETENTION_DAYS } from "../domain/FileRecord.js"
import { validatePeerPath } from "../lib/SafePath.js"
import type { HasherApi } from "../services/Hasher.js"
import type { LocalRecord } from "../services/FileIndex.js"
import { fileHash } from "./Content.js"

const decodeRecord = Schema.decodeUnknownEither(FileRecord)

/**
 * What one index record costs to hold until it is applied, in the units of the index
 * window (roughly its JSON size: block hashes dominate). Both sides compute it from
 * the record alone, so the sender's count and the receiver's agree.
 */
export const recordCost = (r: FileRecord): number =>
  200 + r.path.length * 2 + (r.target?.length ?? 0) * 2 + r.blocks.length * 67 + Object.keys(r.version).length * 30

/** Cost of a record that failed to decode: what it could have held at most, cheaply bounded. */
const UNDECODED_COST = 200

/**
 * Is the record consistent with itself, as our own scanner would have made it? Sizes,
 * block size, block count and hash must agree, so no number a peer sends can make us
 * do more work than the file it describes.
 */
const inconsistency = (r: FileRecord, hasher: HasherApi): string | undefined => {
  const emptyContent = r.size === 0 && r.blocks.length === 0 && r.blockSize === MIN_BLOCK_SIZE
  if (r.deleted) return r.blocks.length === 0 ? undefined : "a deleted entry with blocks"
  switch (r.kind) {
    case "dir":
      return emptyContent && r.target === undefined ? undefined : "a folder with content"
    case "symlink":
      if (!emptyContent || !r.target) return "a symlink without a target, or with content"
      if (r.target.includes("\0")) return "a symlink target with NUL"
      return hasher.hash(Buffer.from(r.target)) === r.hash ? undefined : "a symlink whose hash is not its target's"
    case "file":
      if (r.target !== undefined) return "a file with a link target"
      if (r.blockSize !== blockSizeFor(r.size)) return `block size ${r.blockSize} for a file of ${r.size} bytes`
      if (r.blocks.length !== Math.ceil(r.size / r.blockSize)) return `${r.blocks.length} blocks for a file of ${r.size} bytes`
      return fileHash(hasher, r.blocks, r.size) === r.hash ? undefined : "the block list does not match the file hash"
  }
}

/** The verdict on one record from a peer; `cost` is credited back to the peer whatever it is. */
export type Admission =
  | { readonly _tag: "Accepted"; readonly record: FileRecord; readonly cost: number }
  | { readonly _tag: "Refused"; readonly path: string; readonly reason: string; readonly cost: number }
  /** Nothing to do, nothing wrong: a tombstone past its retention for a path we never had. */
  | { readonly _tag: "Expired"; readonly cost: number }

/**
 * Check one raw record from a peer, with what we hold for its path: decoded by the
 * Schema (every number bounded), path safe, contents consistent, and no claim of
 * edits made by this replica that this replica never made (only we bump our counter,
 * so a peer that does is lying, and the counter could otherwise be pushed towards
 * overflow). A refused record is dropped alone; the session goes on. Our own record
 * is looked up only when the verdict depends on it.
 */
export const admitRecord = <E, R>(
  raw: unknown,
  hasher: HasherApi,
  ourReplica: string,
  /** What we hold for a path, if anything. */
  lookup: (path: string) => Effect.Effect<Option.Option<LocalRecord>, E, R>
): Effect.Effect<Admission, E, R> => {
  const decoded = decodeRecord(raw)
  if (Either.isLeft(decoded)) {
    const path = typeof raw === "object" && raw !== null && typeof (raw as { path?: unknown }).path === "string"
      ? ((raw as { path: string }).path).slice(0, 256)
      : "?"
    const reason = ParseResult.TreeFormatter.formatErrorSync(decoded.left).replace(/\s+/g, " ").slice(0, 300)
    return Effect.succeed({ _tag: "Refused", path, reason: `malformed record: ${reason}`, cost: UNDECODED_COST })
  }
  const record = decoded.right
  const cost = recordCost(record)
  const refuse = (reason: string): Admission => ({ _tag: "Refused", path: record.path, reason, cost })
  const path = validatePeerPath(record.path)
  if (Either.isLeft(path)) return Effect.succeed(refuse(path.left.reason))
  const problem = inconsistency(record, hasher)
  if (problem) return Effect.succeed(refuse(problem))
  const claimed = record.version[ourReplica]
  if (claimed === undefined && !record.deleted) return Effect.succeed({ _tag: "Accepted", record, cost })
  return Effect.map(lookup(record.path), (found): Admission => {
    const local = Option.getOrUndefined(found)
    if (claimed !== undefined && claimed > (local?.version[ourReplica] ?? 0)) {
      return refuse("it claims edits of this replica that this replica never made")
    }
    if (!record.deleted) return { _tag: "Accepted", record, cost }
    // Tombstones are stored as we would make them (no content, dated no later than now),
    // and one past its retention is not taken up again: it was dropped here, or soon will be.
    if (local === undefined && record.mtimeMs < Date.now() - TOMBSTONE_RETENTION_DAYS * 86_400_000) return { _tag: "Expired", cost }
    return { _tag: "Accepted", record: asTombstone(record, record.mtimeMs), cost }
  })
}
