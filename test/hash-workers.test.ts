import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as HasherBlake3 from "../src/layers/HasherBlake3.js"
import * as HashWorkers from "../src/lib/HashWorkers.js"
import { Hasher } from "../src/services/Hasher.js"
import { tempDir } from "./support/fs.js"

const MiB = 1024 * 1024
const BLOCK = 512 * 1024

/** A file of `size` random bytes in a new temporary folder, and its path. */
const randomFile = (size: number) =>
  Effect.map(tempDir(), (dir) => {
    const file = path.join(dir, "data.bin")
    fs.writeFileSync(file, randomBytes(size))
    return file
  })

/** Run `use` with `file` open for reading; closed afterwards. */
const withOpen = <A, E, R>(file: string, use: (fd: number) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(Effect.sync(() => fs.openSync(file, "r")), use, (fd) => Effect.sync(() => fs.closeSync(fd)))

/** Each block's hash, computed here one block at a time. */
const expectedBlocks = (file: string) =>
  Effect.map(Effect.provide(Hasher, HasherBlake3.layer), (hasher) => {
    const data = fs.readFileSync(file)
    const hashes: Array<string> = []
    for (let at = 0; at < data.length; at += BLOCK) hashes.push(hasher.hash(data.subarray(at, at + BLOCK)))
    return hashes
  })

describe("hash workers", () => {
  it.live("hash a large file's blocks in parallel slices, as the main thread does, on every worker", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(70 * MiB + 12_345) // several slices, a short last block
      const expected = yield* expectedBlocks(file)
      const pool = yield* HashWorkers.make(2)
      const hashes = yield* withOpen(file, (fd) => pool.hashBlocks(fd, fs.statSync(file).size, BLOCK))
      expect(hashes).toEqual(expected)
      expect(pool.live()).toBe(2)
    }).pipe(Effect.scoped))

  it.live("stop once idle, and start again when needed", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(3 * BLOCK)
      const pool = yield* HashWorkers.make(1, { idleMs: 50 })
      const size = fs.statSync(file).size
      const first = yield* withOpen(file, (fd) => pool.hashBlocks(fd, size, BLOCK))
      expect(pool.live()).toBe(1)
      yield* Effect.sleep("300 millis")
      expect(pool.live()).toBe(0)
      expect(yield* withOpen(file, (fd) => pool.hashBlocks(fd, size, BLOCK))).toEqual(first)
    }).pipe(Effect.scoped))

  it.live("report a file shorter than its size as a read error, and keep working", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(40 * MiB)
      const pool = yield* HashWorkers.make(2)
      const error = yield* withOpen(file, (fd) => pool.hashBlocks(fd, 80 * MiB, BLOCK)).pipe(Effect.flip)
      expect(error._tag).toBe("HashReadError")
      expect(error.message).toMatch(/shrank/)
      expect(yield* withOpen(file, (fd) => pool.hashBlocks(fd, 40 * MiB, BLOCK))).toEqual(yield* expectedBlocks(file))
    }).pipe(Effect.scoped))

  it.live("an interrupted hash returns once no worker reads the descriptor, and the pool goes on", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(96 * MiB)
      const pool = yield* HashWorkers.make(2)
      const fd = fs.openSync(file, "r")
      const fiber = yield* Effect.fork(pool.hashBlocks(fd, 96 * MiB, BLOCK))
      yield* Effect.sleep("20 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(pool.busy()).toBe(0) // none still reads the descriptor about to be closed
      fs.closeSync(fd)
      expect(yield* withOpen(file, (fd) => pool.hashBlocks(fd, 96 * MiB, BLOCK))).toEqual(yield* expectedBlocks(file))
    }).pipe(Effect.scoped))

  it.live("fail the slices of a worker that dies, and let it go", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(BLOCK)
      const source = `require("node:worker_threads").parentPort.on("message", () => process.exit(3))`
      const pool = yield* HashWorkers.make(1, { source })
      const error = yield* withOpen(file, (fd) => pool.hashBlocks(fd, BLOCK, BLOCK)).pipe(Effect.flip)
      expect(error._tag).toBe("HashPoolError")
      expect(error.message).toMatch(/exited \(3\)/)
      expect(pool.live()).toBe(0)
    }).pipe(Effect.scoped))

  it.live("refuse work once their scope is closed", () =>
    Effect.gen(function*() {
      const file = yield* randomFile(BLOCK)
      const scope = yield* Scope.make()
      const pool = yield* Scope.extend(HashWorkers.make(1), scope)
      yield* Scope.close(scope, Exit.void)
      const error = yield* withOpen(file, (fd) => pool.hashBlocks(fd, BLOCK, BLOCK)).pipe(Effect.flip)
      expect(error._tag).toBe("HashPoolError")
    }).pipe(Effect.scoped))
})

describe("hash workers: small files whole", () => {
  it.live("hash each regular file of at most the size asked, as the main thread does; a link, a folder, a larger or missing file give nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const sizes = { "empty": 0, "one": 1000, "two-blocks": BLOCK + 5 }
      for (const [name, size] of Object.entries(sizes)) fs.writeFileSync(path.join(dir, name), randomBytes(size))
      fs.writeFileSync(path.join(dir, "large"), randomBytes(3 * BLOCK))
      fs.symlinkSync(path.join(dir, "one"), path.join(dir, "link"))
      fs.mkdirSync(path.join(dir, "sub"))
      const pool = yield* HashWorkers.make(1)
      const names = [...Object.keys(sizes), "large", "link", "sub", "missing"]
      const hashed = yield* pool.hashSmallFiles(names.map((n) => path.join(dir, n)), 2 * BLOCK, BLOCK)
      for (const [i, name] of Object.keys(sizes).entries()) {
        const file = path.join(dir, name)
        const st = fs.statSync(file)
        expect(hashed[i]).toEqual({
          ino: st.ino,
          size: st.size,
          mtimeMs: st.mtimeMs,
          blocks: st.size === 0 ? [] : yield* expectedBlocks(file),
          after: { size: st.size, mtimeMs: st.mtimeMs }
        })
      }
      expect(hashed.slice(3)).toEqual([undefined, undefined, undefined, undefined])
    }).pipe(Effect.scoped))

  it.live("a job's files read several at a time come back in the order asked, each its own", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      // sizes that finish out of order: large and small mixed, more files than read lanes
      const names = Array.from({ length: 40 }, (_, i) => `f${i}`)
      names.forEach((name, i) => fs.writeFileSync(path.join(dir, name), randomBytes(i % 3 === 0 ? BLOCK + 17 * i : 10 + i)))
      const pool = yield* HashWorkers.make(1)
      const hashed = yield* pool.hashSmallFiles(names.map((n) => path.join(dir, n)), 2 * BLOCK, BLOCK)
      for (const [i, name] of names.entries()) {
        const file = path.join(dir, name)
        expect(hashed[i]?.size).toBe(fs.statSync(file).size)
        expect(hashed[i]?.blocks).toEqual(yield* expectedBlocks(file))
      }
    }).pipe(Effect.scoped))
})

describe("HasherBlake3 with workers", () => {
  it.live("hashes small files on the calling thread and large ones on the workers, with one result", () =>
    Effect.gen(function*() {
      for (const size of [0, 1000, 20 * MiB + 7]) {
        const file = yield* randomFile(size)
        const hashes = (layer: Layer.Layer<Hasher>) =>
          Effect.provide(Effect.flatMap(Hasher, (h) => withOpen(file, (fd) => h.hashFileBlocks(fd, size, BLOCK))), layer)
        const onThread = yield* hashes(HasherBlake3.layer)
        expect(yield* hashes(HasherBlake3.layerWithWorkers(2))).toEqual(onThread)
        expect(onThread).toEqual(size === 0 ? [] : yield* expectedBlocks(file))
      }
    }).pipe(Effect.scoped))
  it.live("hash on the calling thread when a worker dies", () =>
    Effect.gen(function*() {
      const size = 20 * MiB
      const file = yield* randomFile(size)
      const source = `require("node:worker_threads").parentPort.on("message", () => process.exit(3))`
      const hashes = yield* Effect.provide(
        Effect.flatMap(Hasher, (h) => withOpen(file, (fd) => h.hashFileBlocks(fd, size, BLOCK))),
        HasherBlake3.layerWithWorkers(1, { source })
      )
      expect(hashes).toEqual(yield* expectedBlocks(file))
    }).pipe(Effect.scoped))
})
