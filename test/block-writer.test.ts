import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlockWriter } from "../src/lib/BlockWriter.js"
import { tempDir } from "./support/fs.js"

/** The thread pool's threads (libuv's default is 4; the test runs with what the process has). */
const POOL = Number(process.env.UV_THREADPOOL_SIZE ?? 4)

/**
 * Hold every thread of the pool: each waits to open a FIFO for reading until a writer
 * comes. Returns the release: a writer, which lets every open through.
 */
const holdThreadPool = (dir: string) => {
  const fifo = path.join(dir, "hold.fifo")
  execFileSync("mkfifo", [fifo])
  const readers: Array<Promise<void>> = []
  for (let i = 0; i < POOL; i++) {
    readers.push(new Promise((resolve) => fs.open(fifo, "r", (_e, fd) => (fd === undefined ? resolve() : fs.close(fd, () => resolve())))))
  }
  return Effect.promise(async () => {
    // every reader is waiting in the pool by now: one writer lets them all through
    const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
    await Promise.all(readers)
    fs.closeSync(fd)
  })
}

const block = (byte: number, size: number) => Buffer.alloc(size, byte)

/** A new file `part` in a temporary folder, open with `flags` until the scope closes. */
const partFile = (flags: "w+" | "r") =>
  Effect.gen(function*() {
    const dir = yield* tempDir()
    const file = path.join(dir, "part")
    fs.writeFileSync(file, "")
    const fd = yield* Effect.acquireRelease(Effect.sync(() => fs.openSync(file, flags)), (fd) => Effect.sync(() => fs.closeSync(fd)))
    return { dir, file, fd }
  })

describe("BlockWriter", () => {
  it.live("writes in the thread pool: write returns before the bytes are in the file, settled once they are", () =>
    Effect.gen(function*() {
      const { dir, file, fd } = yield* partFile("w+")
      const writer = new BlockWriter(fd)
      const release = holdThreadPool(dir)
      yield* Effect.sleep("50 millis") // the pool's threads are all waiting on the FIFO
      writer.write(block(1, 4096), 4096)
      writer.write(block(2, 4096), 0)
      // nothing can have run: every thread of the pool is held
      expect(fs.fstatSync(fd).size).toBe(0)
      const settling = yield* Effect.fork(writer.settled)
      yield* Effect.sleep("50 millis")
      expect(settling.unsafePoll()).toBeNull() // still waiting for its writes
      yield* release
      yield* Fiber.join(settling)
      expect(fs.readFileSync(file)).toEqual(Buffer.concat([block(2, 4096), block(1, 4096)]))
    }).pipe(Effect.scoped))

  it.live("past its queue limit it writes on the calling thread (memory stays bounded)", () =>
    Effect.gen(function*() {
      const { dir, file, fd } = yield* partFile("w+")
      const writer = new BlockWriter(fd, 4096)
      const release = holdThreadPool(dir)
      yield* Effect.sleep("50 millis")
      writer.write(block(1, 4096), 0) // queued: within the limit
      writer.write(block(2, 4096), 4096) // over it: written at once
      expect(fs.readFileSync(file).subarray(4096)).toEqual(block(2, 4096))
      yield* release
      yield* writer.settled
      expect(fs.readFileSync(file)).toEqual(Buffer.concat([block(1, 4096), block(2, 4096)]))
    }).pipe(Effect.scoped))

  it.live("a failed write fails settled, and the next write throws it", () =>
    Effect.gen(function*() {
      const { fd } = yield* partFile("r") // not open for writing: EBADF
      const writer = new BlockWriter(fd)
      writer.write(block(1, 10), 0)
      const exit = yield* Effect.exit(writer.settled)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(() => writer.write(block(2, 10), 10)).toThrow(/EBADF/)
      yield* writer.drained // errors aside: what the owner waits for before closing
    }).pipe(Effect.scoped))
})
