import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { FileRecord } from "../domain/FileRecord.js"
import type { VersionVector } from "../domain/VersionVector.js"

/**
 * The session (with one peer, in this run) whose record a stored one was put in place
 * from, and the version that peer sent. The record is the peer's own while its version is
 * still this one (see `Echoes.sentBy`); any later version (an edit here, a merge) is news
 * to it. Per session, not per replica: a peer that comes back with its index restored
 * from a copy may have lost what it sent, and gets it again.
 */
export interface SentBy {
  readonly session: string
  readonly version: VersionVector
}

/** A record plus what only this machine needs: the stat key that lets a scan skip re-hashing, and who sent it. */
export interface LocalRecord extends FileRecord {
  readonly inode: number
  readonly sentBy?: SentBy
}

/** A record to store: the index assigns its sequence. */
export type NewRecord = Omit<LocalRecord, "sequence">

/** Where a block with a given hash can be read locally. */
export interface BlockLocation {
  readonly path: string
  readonly offset: number
  readonly size: number
}

/** What a scan compares with the disk to trust a stored hash (Scanner.statMatches). */
export type StatKey = Pick<LocalRecord, "kind" | "size" | "mtimeMs" | "mode" | "inode">

/** An index entry that is not a tombstone, without its block list or version: its path, kind and stat key. */
export interface LiveEntry extends StatKey {
  readonly path: string
}

/** A run of the index read by `since`. */
export interface IndexRun {
  readonly records: ReadonlyArray<LocalRecord>
  /** The sequence read up to (the `after` given, when nothing was there). */
  readonly through: number
}

/**
 * The folder's index: one record per path ever seen (deleted ones stay as tombstones),
 * numbered by a local sequence so peers can be sent "everything since N".
 */
export interface FileIndexApi {
  /** Random id of this folder replica, kept in the index across runs. */
  readonly replicaId: string
  readonly get: (path: string) => Effect.Effect<Option.Option<LocalRecord>>
  /** `get` for many paths, in order: one step for a batch, not one per path. */
  readonly getMany: (paths: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<LocalRecord>>>
  /** Store `record` under the next local sequence and announce it. */
  readonly put: (record: NewRecord) => Effect.Effect<LocalRecord>
  /** `put` for many records, in order. */
  readonly putMany: (records: ReadonlyArray<NewRecord>) => Effect.Effect<void>
  /** Refresh the stat key (mtime, inode) of an unchanged file without announcing anything. */
  readonly touch: (path: string, mtimeMs: number, inode: number) => Effect.Effect<void>
  /**
   * The next `limit` records with sequence > `after`, oldest first, less those put in place
   * from session `leaveOut` and still in the version it sent (SentBy: what that session's
   * peer holds): left out here, they are not read back only to be dropped.
   */
  readonly since: (after: number, limit: number, leaveOut?: string) => Effect.Effect<IndexRun>
  /** The entries directly in folder `dir` ("" for the top) that are not tombstones. */
  readonly liveChildren: (dir: string) => Effect.Effect<ReadonlyArray<LiveEntry>>
  /**
   * Up to `limit` entries below folder `dir` (not the top) that are not tombstones, in descending
   * path order (an entry before the folders holding it), those before `before` when
   * given: a subtree is read a page at a time, whatever its size.
   */
  readonly liveUnder: (dir: string, limit: number, before?: string) => Effect.Effect<ReadonlyArray<LiveEntry>>
  /** The blocks of `from` are now in `to` (a file moved into the trash stays a block source). */
  readonly relocateBlocks: (from: string, to: string) => Effect.Effect<void>
  /** Drop tombstones whose deletion (their mtime) is older than `beforeMs`; returns how many. */
  readonly dropTombstones: (beforeMs: number) => Effect.Effect<number>
  /** Forget block locations under a path prefix (trash entries that were purged). */
  readonly forgetBlocksUnder: (prefix: string) => Effect.Effect<void>
  /** For each hash, a local file that held such a block when it was last scanned. */
  readonly findBlocks: (hashes: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, BlockLocation>>
  /**
   * How far we have taken a peer replica's index: every record it numbered up to this is
   * applied here (0 when unknown). On reconnect the peer sends only what came after.
   */
  readonly peerProgress: (replicaId: string) => Effect.Effect<number>
  /** Remember a peer replica's progress (a bounded table: the least recently seen go first). */
  readonly setPeerProgress: (replicaId: string, after: number) => Effect.Effect<void>
  /** The highest sequence stored so far. */
  readonly sequence: Effect.Effect<number>
  /** The current sequence, then each new one. */
  readonly sequenceChanges: Stream.Stream<number>
}

/** The folder's index. The default layer is `IndexSqlite`, kept inside the folder. */
export class FileIndex extends Context.Tag("dsync/FileIndex")<FileIndex, FileIndexApi>() {}
