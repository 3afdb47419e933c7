import { Deferred, Duration, Effect, Ref } from "effect"
import type { FileRecord } from "../domain/FileRecord.js"
import { applyRemote, type BlockSource } from "./ApplyRemote.js"

/** Files applied at once within one session (the node-wide limit is the transfers semaphore). */
const SESSION_CONCURRENCY = 16
const MAX_ATTEMPTS = 5
const RETRY_DELAY = Duration.seconds(1)

const depth = (r: FileRecord) => r.path.split("/").length

/**
 * The order that keeps a folder consistent: folders (shallow first), files, file
 * deletions, then folder deletions one at a time, deepest first (a folder empties first).
 */
export const applyOrder = (records: ReadonlyArray<FileRecord>) => ({
  dirs: records.filter((r) => !r.deleted && r.kind === "dir").sort((a, b) => depth(a) - depth(b)),
  files: records.filter((r) => !r.deleted && r.kind !== "dir"),
  fileDeletions: records.filter((r) => r.deleted && r.kind !== "dir"),
  dirDeletions: records.filter((r) => r.deleted && r.kind === "dir").sort((a, b) => depth(b) - depth(a))
})

/**
 * Applies what a peer announces, latest record per path: a burst of updates to one
 * file coalesces. A record that failed (peer went quiet, block changed while sent,
 * disk error) is tried again a few times unless a newer record replaced it.
 */
export const makePuller = (source: BlockSource, transfers: Effect.Semaphore) =>
  Effect.gen(function*() {
    const incoming = new Map<string, FileRecord>()
    const attempts = new Map<string, number>()
    const wake = yield* Ref.make(yield* Deferred.make<void>())
    const signal = Effect.flatMap(Ref.get(wake), (d) => Deferred.succeed(d, undefined))

    const offer = (records: Iterable<FileRecord>) =>
      Effect.suspend(() => {
        for (const record of records) {
          incoming.set(record.path, record)
          attempts.delete(record.path)
        }
        return incoming.size > 0 ? signal : Effect.void
      })

    const retryLater = (record: FileRecord) =>
      Effect.gen(function*() {
        const tries = (attempts.get(record.path) ?? 0) + 1
        if (tries >= MAX_ATTEMPTS) {
          attempts.delete(record.path)
          return yield* Effect.logWarning(`giving up on ${record.path} after ${tries} attempts; it is tried again on the next change or reconnect`)
        }
        yield* Effect.sleep(Duration.times(RETRY_DELAY, tries))
        if (incoming.has(record.path)) return // superseded meanwhile
        incoming.set(record.path, record)
        attempts.set(record.path, tries)
        yield* signal
      })

    const applyAll = (records: ReadonlyArray<FileRecord>, concurrency: number) =>
      Effect.forEach(records, (record) =>
        transfers.withPermits(1)(applyRemote(record, source)).pipe(
          Effect.flatMap((done) => (done ? Effect.void : Effect.forkScoped(retryLater(record))))
        ), { concurrency, discard: true })

    const run = Effect.gen(function*() {
      while (true) {
        yield* Deferred.await(yield* Ref.get(wake))
        yield* Ref.set(wake, yield* Deferred.make<void>())
        const batch = applyOrder([...incoming.values()])
        incoming.clear()
        yield* applyAll(batch.dirs, 1)
        yield* applyAll(batch.files, SESSION_CONCURRENCY)
        yield* applyAll(batch.fileDeletions, SESSION_CONCURRENCY)
        yield* applyAll(batch.dirDeletions, 1)
      }
    })

    return { offer, run }
  })
