import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import { chunkFor, hashChunk, HashReadError } from "./BlockHashing.js"

/** A worker could not be started or died: the caller may hash on its own thread instead. */
export class HashPoolError extends Data.TaggedError("HashPoolError")<{ readonly message: string }> {}

/** Hashing files' blocks on worker threads. */
export interface HashWorkers {
  /** Workers running now (started on demand, gone after IDLE_MS). */
  readonly live: () => number
  /** Workers hashing now. */
  readonly busy: () => number
  /**
   * Hex hashes of the `blockSize` blocks of the first `size` bytes of the open file
   * `fd`, read and hashed by the workers in parallel slices. `fd` must stay open until
   * this ends; an interruption waits for the workers to let go of it.
   */
  readonly hashBlocks: (fd: number, size: number, blockSize: number) => Effect.Effect<ReadonlyArray<string>, HashReadError | HashPoolError>
  /**
   * Each of the files at `paths` (opened without following a link; paths that stay valid
   * on another thread) read whole and hashed in `blockSize` blocks, when it is a regular
   * file of at most `maxSize` bytes; else undefined. A job's files are read several at
   * a time (in the thread pool), and come back in the order asked.
   */
  readonly hashSmallFiles: (
    paths: ReadonlyArray<string>,
    maxSize: number,
    blockSize: number
  ) => Effect.Effect<ReadonlyArray<SmallFileHash | undefined>, HashPoolError>
}

/** A small file hashed whole on a worker: its stat before reading it and after. */
export interface SmallFileHash {
  readonly ino: number
  readonly size: number
  readonly mtimeMs: number
  readonly blocks: ReadonlyArray<string>
  readonly after: { readonly size: number; readonly mtimeMs: number }
}

/** A slice is at least this large: a job's round trip (~0.1 ms) stays small beside its hashing. */
const MIN_SLICE = 32 * 1024 * 1024
/** Bytes a worker reads per step: between two steps it checks whether it was cancelled. */
const WORKER_CHUNK = 1024 * 1024
const WORKER_HEAP = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 }
/**
 * Files of a job a worker reads at once (in the thread pool): from a cold cache each
 * read waits on the disk, and the disk takes many at once (10,000 small files, cold:
 * 0.8 s read one after another, 0.4 s eight at a time).
 */
const SMALL_FILE_LANES = 8
/** Workers idle this long exit: their memory (an isolate, a read buffer) is given back. */
const IDLE_MS = 250

type Reply =
  | { readonly hashes: Array<string> }
  | { readonly readError: string }
  | { readonly cancelled: true }
  | { readonly small: Array<SmallFileHash | null> }

/** Slices of a file's blocks, or whole small files. */
type JobMessage =
  | { fd: number; start: number; end: number; blockSize: number; chunk: number; cancel: Int32Array }
  | { paths: ReadonlyArray<string>; maxSize: number; blockSize: number }

interface Job {
  readonly message: JobMessage
  started: boolean
  settle: (reply: Reply | HashPoolError) => void
}

/**
 * The worker's program, as source (an `eval` worker needs no file of its own, so the
 * same code runs from the library's modules, the bundled CLI and the tests): the main
 * thread's `hashChunk`, over hash-wasm's BLAKE3 resolved from this module.
 */
const workerSource = (hashWasmPath: string) => `"use strict"
const { parentPort } = require("node:worker_threads")
const fs = require("node:fs")
const { createBLAKE3 } = require(${JSON.stringify(hashWasmPath)})
const hashChunk = ${hashChunk.toString()}
const ready = createBLAKE3()
let buffer = Buffer.alloc(0)
const SMALL_OPEN = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK
const readWhole = (fd, into, size) => new Promise((resolve) => fs.read(fd, into, 0, size, 0, (e, n) => resolve(e ? -1 : n)))
const hashSmall = async (hashBlock, lane, path, maxSize, blockSize) => {
  let fd = -1
  try {
    fd = fs.openSync(path, SMALL_OPEN)
    const before = fs.fstatSync(fd)
    if (!before.isFile() || before.size > maxSize) return null
    if (lane.buffer.length < before.size) lane.buffer = Buffer.allocUnsafe(Math.max(before.size, 64 * 1024))
    const got = before.size === 0 ? 0 : await readWhole(fd, lane.buffer, before.size)
    const blocks = []
    if (!hashChunk(() => got, hashBlock, fd, lane.buffer, 0, before.size, blockSize, blocks)) return null
    const after = fs.fstatSync(fd)
    return { ino: before.ino, size: before.size, mtimeMs: before.mtimeMs, blocks, after: { size: after.size, mtimeMs: after.mtimeMs } }
  } catch {
    return null
  } finally {
    if (fd >= 0) fs.closeSync(fd)
  }
}
const hashSmallFiles = async (hashBlock, paths, maxSize, blockSize) => {
  const small = new Array(paths.length).fill(null)
  let next = 0
  const lane = async () => {
    const own = { buffer: Buffer.alloc(0) }
    while (next < paths.length) {
      const at = next++
      small[at] = await hashSmall(hashBlock, own, paths[at], maxSize, blockSize)
    }
  }
  await Promise.all(Array.from({ length: Math.min(${SMALL_FILE_LANES}, paths.length) }, lane))
  return small
}
parentPort.on("message", async (message) => {
  if (message.paths) {
    const blake3 = await ready
    const hashBlock = (data) => blake3.init().update(data).digest("hex")
    return parentPort.postMessage({ small: await hashSmallFiles(hashBlock, message.paths, message.maxSize, message.blockSize) })
  }
  const { fd, start, end, blockSize, chunk, cancel } = message
  try {
    const blake3 = await ready
    const hashBlock = (data) => blake3.init().update(data).digest("hex")
    if (buffer.length < Math.min(chunk, end - start)) buffer = Buffer.allocUnsafe(Math.min(chunk, end - start))
    const hashes = []
    for (let position = start; position < end; position += chunk) {
      if (Atomics.load(cancel, 0) !== 0) return parentPort.postMessage({ cancelled: true })
      const want = Math.min(chunk, end - position)
      if (!hashChunk(fs.readSync, hashBlock, fd, buffer, position, want, blockSize, hashes)) {
        return parentPort.postMessage({ readError: "file shrank while reading" })
      }
    }
    parentPort.postMessage({ hashes })
  } catch (e) {
    parentPort.postMessage({ readError: e instanceof Error ? e.message : String(e) })
  }
})
`

/** Block-aligned slices of [0, size): about one per worker, more for a large file so a slow worker holds back less. */
const slicesOf = (size: number, blockSize: number, workers: number): Array<readonly [number, number]> => {
  const blocks = Math.ceil(size / blockSize)
  const wanted = Math.min(blocks, Math.max(workers, Math.min(workers * 4, Math.floor(size / MIN_SLICE))))
  const perSlice = Math.ceil(blocks / wanted)
  const slices: Array<readonly [number, number]> = []
  for (let first = 0; first < blocks; first += perSlice) {
    slices.push([first * blockSize, Math.min(size, (first + perSlice) * blockSize)])
  }
  return slices
}

/**
 * A pool of up to `workers` hash workers, started on first use and stopped once idle for
 * `idleMs` (unref'd: they never keep the process alive); all stopped with the scope.
 */
export const make = (
  workers: number,
  options: {
    /** How long idle workers stay (default IDLE_MS). */
    readonly idleMs?: number
    /** The workers' program (default: the hashing one above); tests give one that fails. */
    readonly source?: string
  } = {}
): Effect.Effect<HashWorkers, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (!(Number.isInteger(workers) && workers >= 1)) return yield* Effect.dieMessage(`hash workers: need 1 or more, got ${workers}`)
    const idleMs = options.idleMs ?? IDLE_MS
    // resolved when a worker starts: a failure there is the pool's (the main thread hashes)
    const source = () => options.source ?? workerSource(createRequire(import.meta.url).resolve("hash-wasm"))
    const idle: Array<Worker> = []
    const busy = new Map<Worker, Job>()
    const queue: Array<Job> = []
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined

    const retire = (worker: Worker) => {
      const at = idle.indexOf(worker)
      if (at >= 0) idle.splice(at, 1)
      busy.delete(worker)
      void worker.terminate()
    }

    const stopIdleLater = () => {
      if (idleTimer !== undefined) clearTimeout(idleTimer)
      if (busy.size > 0 || queue.length > 0 || idle.length === 0) return
      idleTimer = setTimeout(() => idle.slice().forEach(retire), idleMs)
      idleTimer.unref()
    }

    const spawn = (): Worker => {
      // A worker's heap holds a slice's hex hashes only: small limits keep its isolate
      // small (-6 MB of peak RSS for two workers, measured); past them it dies, and the
      // file is hashed on the main thread.
      const worker = new Worker(source(), { eval: true, resourceLimits: WORKER_HEAP })
      worker.unref()
      worker.on("message", (reply: Reply) => {
        const job = busy.get(worker)
        busy.delete(worker)
        idle.push(worker)
        job?.settle(reply)
        dispatch()
      })
      const lost = (why: string) => {
        const job = busy.get(worker)
        retire(worker)
        job?.settle(new HashPoolError({ message: `hash worker ${why}` }))
        dispatch()
      }
      worker.on("error", (e) => lost(`failed: ${e.message}`))
      // one that exits while idle is dropped too: a job posted to it would never be answered
      worker.on("exit", (code) => busy.has(worker) ? lost(`exited (${code})`) : retire(worker))
      return worker
    }

    const dispatch = () => {
      while (queue.length > 0 && !closed) {
        let worker = idle.pop()
        if (worker === undefined && busy.size < workers) {
          try {
            worker = spawn()
          } catch (e) {
            queue.shift()!.settle(new HashPoolError({ message: `cannot start a hash worker: ${e instanceof Error ? e.message : String(e)}` }))
            continue
          }
        }
        if (worker === undefined) break
        const job = queue.shift()!
        job.started = true
        busy.set(worker, job)
        worker.postMessage(job.message)
      }
      stopIdleLater()
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (idleTimer !== undefined) clearTimeout(idleTimer)
        const stopped = new HashPoolError({ message: "hash workers stopped" })
        for (const job of [...queue.splice(0), ...busy.values()]) job.settle(stopped)
        for (const worker of [...idle, ...busy.keys()]) retire(worker)
      })
    )

    /**
     * Queue `message` and take the worker's reply with `take`. Interrupted: a queued job is
     * dropped; a running one is told to stop (through `cancel`, where it has one) and
     * waited for, so the caller lets go of what the worker reads (a descriptor, a folder)
     * only once no worker reads it.
     */
    const submit = <A, E>(message: JobMessage, take: (reply: Reply) => Effect.Effect<A, E>, cancel?: Int32Array) =>
      Effect.async<A, E | HashPoolError>((resume) => {
        const job: Job = {
          message,
          started: false,
          settle: (reply) => resume(reply instanceof HashPoolError ? Effect.fail(reply) : take(reply))
        }
        if (closed) return job.settle(new HashPoolError({ message: "hash workers stopped" }))
        queue.push(job)
        dispatch()
        return Effect.async<void>((resumeCancel) => {
          if (!job.started) {
            queue.splice(queue.indexOf(job), 1)
            return resumeCancel(Effect.void)
          }
          if (cancel) Atomics.store(cancel, 0, 1)
          job.settle = () => resumeCancel(Effect.void)
        })
      })

    const runSlice = (fd: number, start: number, end: number, blockSize: number) => {
      const cancel = new Int32Array(new SharedArrayBuffer(4))
      const message = { fd, start, end, blockSize, chunk: chunkFor(blockSize, WORKER_CHUNK), cancel }
      return submit(message, (reply) =>
        "hashes" in reply
          ? Effect.succeed(reply.hashes)
          : Effect.fail(new HashReadError({ message: "readError" in reply ? reply.readError : "cancelled" })), cancel)
    }

    // not cancelled once running (a job is a few hundred small files): waited for instead
    const hashSmallFiles = (paths: ReadonlyArray<string>, maxSize: number, blockSize: number) =>
      submit({ paths, maxSize, blockSize }, (reply) =>
        "small" in reply
          ? Effect.succeed(reply.small.map((file) => file ?? undefined) as ReadonlyArray<SmallFileHash | undefined>)
          : Effect.fail(new HashPoolError({ message: "hash worker: unexpected reply" })))

    return {
      live: () => idle.length + busy.size,
      busy: () => busy.size,
      hashBlocks: (fd, size, blockSize) =>
        Effect.map(
          Effect.forEach(slicesOf(size, blockSize, workers), ([start, end]) => runSlice(fd, start, end, blockSize), { concurrency: "unbounded" }),
          (parts) => parts.flat()
        ),
      hashSmallFiles
    } satisfies HashWorkers
  })
