import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Stats } from "node:fs"
import type { FsError } from "../domain/Errors.js"
import type { FileRecord } from "../domain/FileRecord.js"
import type { UpcomingFile } from "./Upcoming.js"

/** A block could not be had from the peer (gone, changed while sent, timed out, bad data). */
export class BlockUnavailable extends Data.TaggedError("BlockUnavailable")<{ readonly reason: string }> {}

/**
 * Takes each block of a stream as it arrives (synchronously, on the hot path). Returns
 * undefined when the block was taken, or why it was refused, which stops the stream.
 * `data` is the sink's from then on (it may be written out later): never reused by the caller.
 */
export type BlockSink = (index: number, data: Uint8Array, compressed: boolean) => string | undefined

/** Where remote blocks come from: the peer session. */
export interface BlockSource {
  /** The peer serving them. */
  readonly peerId: string
  /** Stream the blocks `blocks` (indexes) of version `hash` of `path` into `sink`; done when all arrived. */
  readonly fetchBlocks: (
    request: { readonly path: string; readonly hash: string; readonly blocks: ReadonlyArray<number> },
    sink: BlockSink
  ) => Effect.Effect<void, BlockUnavailable>
  /**
   * Stream several whole one-block files into `sink` in one request, each block's index
   * its file's position in `files`. Files the peer does not have (in that version) never
   * arrive; done when the peer has sent all it has. `sink` refusing a block drops that file only.
   */
  readonly fetchFiles: (files: ReadonlyArray<FileVersion>, sink: BlockSink) => Effect.Effect<void, BlockUnavailable>
}

/** One version of one file: its path and content hash. */
export interface FileVersion {
  readonly path: string
  readonly hash: string
}

/** Which blocks of which version of a file. */
export interface BlockRequest {
  readonly path: string
  /** The file version (its content hash). */
  readonly hash: string
  /** Block indexes, in the order wanted. */
  readonly blocks: ReadonlyArray<number>
}

/** One served block: `data` is the buffer `into` gave for it, filled. */
export interface ServedBlock {
  readonly index: number
  readonly data: Uint8Array
}

/** A download finished into its part file, not yet in place. */
export interface Fetched {
  /** The part file, folder-relative (in the part folder, see PartFile.PART_DIR). */
  readonly part: string
  /** Blocks and bytes that came from the peer (the rest were copied from local files). */
  readonly fetched: number
  readonly fetchedBytes: number
  /** The part file's stat once complete, when known (it keeps it when renamed into place). */
  readonly stat?: Stats
}

/**
 * Moving file contents between this folder and a peer, block by block: serving a
 * file version as a stream of blocks read from the folder, and fetching a file into a
 * verified part file (blocks found locally copied, the rest from the peer). The
 * protocol (PeerSession) decides what to ask and frames the bytes; this service does
 * the disk side.
 *
 * @since 0.2.0
 * @category transfer
 */
export interface TransferApi {
  /**
   * The blocks of `request`, read from the folder into buffers from `into(index, size)`
   * (so the caller can read straight into its send frame). Fails with why the file
   * cannot be served: no such version here, unreadable, or changed while read.
   */
  readonly serve: (
    request: BlockRequest,
    into: (index: number, size: number) => Uint8Array
  ) => Stream.Stream<ServedBlock, BlockUnavailable>
  /**
   * Fetch `record` from `source` into a new part file (see PartFile.PART_DIR): every block
   * hash-checked, the file fsynced, its mode (permission bits only) and mtime set. The
   * part file is removed if the scope closes with a failure. A head start for it
   * (`headStart`) is taken over: its part file, and the blocks in it that hash as listed.
   */
  readonly fetch: (record: FileRecord, source: BlockSource) => Effect.Effect<Fetched, BlockUnavailable | FsError, Scope.Scope>
  /**
   * Read several whole one-block files (`FileVersion`s), each into `into(position, size)`,
   * in order, with its position in `files` as its index. A file not here in that
   * version, or not of one block, is left out. The caller bounds how many at once: each
   * is up to one block in memory.
   */
  readonly serveFiles: (
    files: ReadonlyArray<FileVersion>,
    into: (index: number, size: number) => Uint8Array
  ) => Effect.Effect<ReadonlyArray<ServedBlock>>
  /**
   * `fetch` for many small (one-block) files at once: blocks found locally copied, the
   * others asked for in one request; the files fsynced together. One outcome per record,
   * in order. A part file not yet renamed into place (`settlePart`) when the scope
   * closes is removed.
   */
  readonly fetchFiles: (
    records: ReadonlyArray<FileRecord>,
    source: BlockSource
  ) => Effect.Effect<ReadonlyArray<Either.Either<Fetched, BlockUnavailable | FsError>>, never, Scope.Scope>
  /**
   * Start fetching `file`, which `source` announced while hashing it (`Upcoming`), into a
   * part file, before its record exists; `fetch` of its record takes it over. Only one at
   * a time, only for a path where nothing is, in a folder that exists; otherwise nothing
   * happens. Returns at once.
   */
  readonly headStart: (file: UpcomingFile, source: BlockSource) => Effect.Effect<void>
}

/**
 * @since 0.2.0
 * @category transfer
 */
export class Transfer extends Context.Tag("dsync/Transfer")<Transfer, TransferApi>() {}
