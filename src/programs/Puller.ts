import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { FileRecord } from "../domain/FileRecord.js"
import { MAX_REQUEST_FILES } from "../domain/Messages.js"
import { showPath } from "../lib/Printable.js"
import type { BlockSource } from "../services/Transfer.js"
import type { ProgressTicket } from "./IndexProgress.js"
import type { PathLocks } from "../lib/PathLocks.js"
import type { Recheck } from "./Recheck.js"
import { applyRemote, applyRemoteFiles, isSmallFile, needsApply } from "./ApplyRemote.js"
import type { Backlog } from "./Backlog.js"

/** Files applied at once within one session (the node-wide limit is the transfer slots). */
const SESSION_CONCURRENCY = 16
/**
 * Small files (one block) fetched together, in one request under one transfer slot: as
 * many as a request may name. Per batch come a request, a lookup of local blocks, an
 * index commit and a round of fiber steps; 64 to a batch against 32, 10,000 files took
 * 6.0-6.6 s against 6.5-7.1 s and the receiver 5.4-6.0 CPU-s against 6.2-6.7.
 */
export const SMALL_BATCH = MAX_REQUEST_FILES
/** Bytes of one batch of small files: held in memory until written (16 batches in flight at most). */
const SMALL_BATCH_BYTES = 1024 * 1024
const MAX_ATTEMPTS = 5
const RETRY_DELAY = Duration.seconds(1)

const depth = (r: FileRecord) => r.path.split("/").length

/**
 * The order that keeps a folder consistent: folders (shallow first), files, then
 * symlinks one at a time (so a link never races a file beneath its path), file
 * deletions, then folder deletions one at a time, deepest first (a folder empties first).
 */
export const applyOrder = (records: ReadonlyArray<FileRecord>) => ({
  dirs: records.filter((r) => !r.deleted && r.kind === "dir").sort((a, b) => depth(a) - depth(b)),
  files: records.filter((r) => !r.deleted && r.kind === "file"),
  links: records.filter((r) => !r.deleted && r.kind === "symlink"),
  fileDeletions: records.filter((r) => r.deleted && r.kind !== "dir"),
  dirDeletions: records.filter((r) => r.deleted && r.kind === "dir").sort((a, b) => depth(b) - depth(a))
})

/** A record waiting to be applied, with what it costs to hold (returned to the peer as credit when done). */
export interface Pending {
  readonly record: FileRecord
  readonly cost: number
  /** Its batch in the session's index progress. */
  readonly ticket?: ProgressTicket
}

/** What a puller takes from its session and the node. */
export interface PullerOptions {
  /** Hold a node-wide transfer slot (shared fairly between peers) for one file. */
  readonly withSlot: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Called once per record we are done with: `settled` when applied or replaced by a
   * newer one, not when given up on (so the session's progress does not pass it).
   */
  readonly release: (item: Pending, settled: boolean) => Effect.Effect<void>
  /** The node's count of what is left to pull. */
  readonly backlog: Backlog
  /** Node-wide: one apply per path at a time (a file is fetched once, not from each peer). */
  readonly paths: PathLocks
  /** Node-wide: paths written are looked at again a moment later. */
  readonly recheck: Recheck
  /** The session these records came in (its id), kept with what is applied: not sent back to that peer. */
  readonly from?: string
}

/**
 * Applies what a peer announces, latest record per path: a burst of updates to one
 * file coalesces. A record that failed (peer went quiet, block changed while sent,
 * disk error) is tried again a few times unless a newer record replaced it. Memory is
 * bounded by the index window: every record held has been counted against it.
 */
export const makePuller = (source: BlockSource, options: PullerOptions) =>
  Effect.gen(function*() {
    const incoming = new Map<string, Pending>()
    // the newest record offered per path not yet done: a failed one waiting to be tried
    // again is superseded by any offered after it, waiting or already applied
    const latest = new Map<string, Pending>()
    const attempts = new Map<string, number>()
    const wake = yield* Queue.sliding<void>(1)

    const bytesOf = (item: Pending) => (item.record.deleted ? 0 : item.record.size)
    // what this puller holds in the node's backlog, handed back when the session ends
    let heldFiles = 0
    let heldBytes = 0
    const adjust = (files: number, bytes: number) =>
      Effect.suspend(() => {
        heldFiles += files
        heldBytes += bytes
        return options.backlog.adjust(files, bytes)
      })
    yield* Effect.addFinalizer(() => Effect.suspend(() => adjust(-heldFiles, -heldBytes)))
    /** Done with `item`: its cost back to the peer, and out of the backlog. */
    const done = (item: Pending, settled = true) =>
      Effect.suspend(() => {
        if (latest.get(item.record.path) === item) latest.delete(item.record.path)
        return Effect.zipRight(options.release(item, settled), adjust(-1, -bytesOf(item)))
      })

    /** Take `items` in (each replacing what was waiting for its path), counted in the backlog at once. */
    const offer = (items: Iterable<Pending>) =>
      Effect.suspend(() => {
        let files = 0
        let bytes = 0
        const replaced: Array<Pending> = []
        for (const item of items) {
          const before = incoming.get(item.record.path)
          if (before) replaced.push(before)
          incoming.set(item.record.path, item)
          latest.set(item.record.path, item)
          attempts.delete(item.record.path)
          files++
          bytes += bytesOf(item)
        }
        return Effect.all([
          adjust(files, bytes),
          Effect.forEach(replaced, (item) => done(item), { discard: true }),
          incoming.size > 0 ? Queue.offer(wake, undefined) : Effect.void
        ], { discard: true })
      })

    const retryLater = (item: Pending) =>
      Effect.gen(function*() {
        const path = item.record.path
        const tries = (attempts.get(path) ?? 0) + 1
        if (tries >= MAX_ATTEMPTS) {
          attempts.delete(path)
          yield* done(item, false)
          return yield* Effect.logWarning(`giving up on ${showPath(path)} after ${tries} attempts; it is tried again on the next change or reconnect`)
        }
        yield* Effect.sleep(Duration.times(RETRY_DELAY, tries))
        if (latest.get(path) !== item) return yield* done(item) // superseded meanwhile (waiting, or applied already)
        incoming.set(path, item)
        attempts.set(path, tries)
        yield* Queue.offer(wake, undefined)
      })

    /** Done with an applied record, or try it again later. */
    const settle = (item: Pending, applied: boolean) =>
      applied
        ? Effect.zipRight(options.recheck.add(item.record.path), done(item))
        : Effect.asVoid(Effect.forkScoped(retryLater(item)))

    /** Apply one record; the caller holds the transfer slot it needs. */
    const applyOne = (item: Pending) =>
      options.paths.withPath(item.record.path)(applyRemote(item.record, source, options.from)).pipe(Effect.flatMap((applied) => settle(item, applied)))

    /**
     * Apply small files together (one request, one fsync pass); the caller holds the slot.
     * Their watcher events, from the first file written on, are left to their recheck.
     */
    const applyBatch = (items: ReadonlyArray<Pending>) => {
      const paths = items.map((item) => item.record.path)
      // (an applied one's recheck is added by `writing` as it ends)
      return options.recheck.writing(paths)(options.paths.withPaths(paths)(applyRemoteFiles(items.map((item) => item.record), source, options.from))).pipe(
        Effect.flatMap((applied) => Effect.forEach(items, (item, i) => (applied[i] ? done(item) : settle(item, false)), { discard: true }))
      )
    }

    // Effect.forEach, not Stream.mapEffect: measured 172 vs 125 files/s on
    // `npm run bench:files` (the stream's per-round setup and buffers cost more than the files)
    /** Records applied `concurrency` at a time, each under a transfer slot of its own. */
    const applyEach = (items: ReadonlyArray<Pending>, concurrency: number) =>
      Effect.forEach(items, (item) => options.withSlot(applyOne(item)), { concurrency, discard: true })

    /**
     * Files: large ones a slot each; small ones (one block) in batches of SMALL_BATCH, one
     * slot and one request per batch. A small file is a round trip, not a stream: a slot
     * and a request each left the slots waiting on latency, and each file paid its own
     * fsync and round of bookkeeping.
     */
    const applyFiles = (items: ReadonlyArray<Pending>) => {
      const batches: Array<Array<Pending>> = []
      let bytes = 0
      for (const item of items) {
        if (!isSmallFile(item.record)) continue
        const last = batches[batches.length - 1]
        if (last && last.length < SMALL_BATCH && bytes + item.record.size <= SMALL_BATCH_BYTES) {
          last.push(item)
          bytes += item.record.size
        } else {
          batches.push([item])
          bytes = item.record.size
        }
      }
      return Effect.all([
        applyEach(items.filter((item) => !isSmallFile(item.record)), SESSION_CONCURRENCY),
        Effect.forEach(batches, (batch) => options.withSlot(applyBatch(batch)), { concurrency: SESSION_CONCURRENCY, discard: true })
      ], { concurrency: "unbounded", discard: true })
    }

    /** One round: everything pending now, in the order that keeps the folder consistent. */
    const round = Effect.gen(function*() {
      const byPath = new Map([...incoming.values()].map((item) => [item.record, item]))
      incoming.clear()
      // what asks nothing here is settled at once, without a slot, a lock or a request:
      // after a first sync, the peer's index echoes every file it received from us (its
      // path is still looked at again, as an applied one is: a folder's contents that
      // our watcher missed are found then)
      const records = [...byPath.keys()]
      const needed = yield* needsApply(records)
      const wanted = records.filter((_, i) => needed[i])
      yield* Effect.forEach(records, (record, i) => (needed[i] ? Effect.void : settle(byPath.get(record)!, true)), { discard: true })
      const batch = applyOrder(wanted)
      const items = (records: ReadonlyArray<FileRecord>) => records.map((r) => byPath.get(r)!)
      yield* applyEach(items(batch.dirs), 1)
      yield* applyFiles(items(batch.files))
      yield* applyEach(items(batch.links), 1)
      yield* applyEach(items(batch.fileDeletions), SESSION_CONCURRENCY)
      yield* applyEach(items(batch.dirDeletions), 1)
    })
    // a wake-up per arrival (coalesced: the queue holds one), a round per wake-up
    const run = Stream.fromQueue(wake).pipe(Stream.runForEach(() => round))

    return { offer, run }
  })
