import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { promisify } from "node:util"
import { blockLength, blockSizeFor, type FileRecord } from "../domain/FileRecord.js"
import { BlockWriter } from "../lib/BlockWriter.js"
import { fsSync, fsTry } from "../lib/FsTry.js"
import { letEventLoopTurn } from "../lib/EventLoop.js"
import { decompressBlock } from "../lib/Lz4Block.js"
import { FsError } from "../domain/Errors.js"
import { createPart, partFiles } from "../lib/PartFile.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { Events, NodeEvent, publish as publishEvent } from "../services/Events.js"
import { type BlockLocation, FileIndex } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"
import { type BlockRequest, type BlockSource, BlockUnavailable, type Fetched, type FileVersion, type ServedBlock, Transfer, type TransferApi } from "../services/Transfer.js"
import { Upcoming, type UpcomingApi, type UpcomingFile } from "../services/Upcoming.js"
import { parentOf } from "../lib/SafePath.js"
import { showPath } from "../lib/Printable.js"

const fsync = promisify(fs.fsync)

/** A block from a local file, re-verified (the file may have changed since its scan). */
const readLocalBlock = (disk: RootedFs, location: BlockLocation | undefined, hasher: HasherApi, hash: string, size: number) => {
  if (!location || location.size !== size) return undefined
  try {
    const data = disk.readBlock(location.path, location.offset, size)
    return data.length === size && hasher.hash(data) === hash ? data : undefined
  } catch {
    return undefined
  }
}

/** A received block, decompressed, if it is `size` bytes; else undefined. */
const receivedBlock = (received: Uint8Array, compressed: boolean, size: number) => {
  const data = compressed ? decompressBlock(received, size) : received
  return data && data.length === size ? data : undefined
}

/** A received block, decompressed, if it is the `size` bytes hashing to `hash`; else undefined. */
const verifiedBlock = (hasher: HasherApi, received: Uint8Array, compressed: boolean, size: number, hash: string | undefined) => {
  const data = receivedBlock(received, compressed, size)
  return data && hasher.hash(data) === hash ? data : undefined
}

/**
 * A new part file for `relPath` (in the part folder, made if missing), open for writing,
 * with a writer for its blocks; closed with the scope (see createPart), once the writes
 * queued in it are done.
 */
const openPart = (disk: RootedFs, relPath: string, tag: string) =>
  Effect.gen(function*() {
    let fd = -1
    const part = yield* createPart(disk, relPath, tag, (p) => void (fd = disk.createExclusive(p, 0o600)))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(fd)))
    const writer = new BlockWriter(fd)
    yield* Effect.addFinalizer(() => writer.drained) // (finalizers run last first: before the close)
    return { part, fd, writer }
  })

/** A peer's mode as we apply it: permission bits only, never setuid, setgid or sticky. */
const modeOf = (remote: FileRecord) => remote.mode & 0o777

/**
 * Give the open part file `remote`'s mtime and mode; the mode only where it differs (a
 * part made with it keeps it, unless the umask took bits of it). Returns its stat after.
 */
const setTimesAndMode = (fd: number, remote: FileRecord): fs.Stats => {
  fs.futimesSync(fd, new Date(), remote.mtimeMs / 1000)
  const st = fs.fstatSync(fd)
  if ((st.mode & 0o777) === modeOf(remote)) return st
  fs.fchmodSync(fd, modeOf(remote))
  return fs.fstatSync(fd)
}

/** Local block copies made between two turns of the event loop: sessions and keepalives keep running. */
const COPY_BYTES_PER_TURN = 16 * 1024 * 1024

/** Free space a download must leave on the disk: 1% of it, at least 64 MiB. */
const reserveFor = (total: number) => Math.max(total / 100, 64 * 1024 * 1024)

/** Refuse a download that would fill the disk (a peer may announce a file of any size up to the cap). */
const ensureSpace = (disk: RootedFs, size: number) =>
  fsSync("statfs", ".", () => fs.statfsSync(disk.root)).pipe(
    Effect.flatMap((st) => {
      const free = st.bavail * st.bsize
      return size + reserveFor(st.blocks * st.bsize) <= free
        ? Effect.void
        : Effect.fail(new BlockUnavailable({ reason: `not enough free space (${size} bytes needed, ${free} free)` }))
    }),
    Effect.catchTag("FsError", () => Effect.void) // no statfs here: go on, a full disk fails the write
  )

/**
 * A download begun from a peer's `Upcoming` announcement, before the file's record: its
 * part file (owned by `scope`), and the hash of each block written, computed here. The
 * record's `fetchInto` keeps the blocks whose hash it lists and fetches the rest.
 */
interface HeadStart {
  /** The peer it comes from. */
  readonly peerId: string
  readonly path: string
  readonly size: number
  readonly part: string
  readonly fd: number
  readonly writer: BlockWriter
  readonly hashes: Array<string | undefined>
  /** Its stream has ended, however. */
  readonly done: Deferred.Deferred<void>
  readonly scope: Scope.CloseableScope
  fiber?: Fiber.RuntimeFiber<void>
  /** Bytes written so far. */
  received: number
}

/** Stop a head start's stream (and its wait for a record); its sink writes nothing after. */
const stopStream = (head: HeadStart) => (head.fiber ? Fiber.interrupt(head.fiber) : Effect.void)

/** How long a head start that has ended waits for its record before its part file goes. */
const HEAD_START_CLAIM_WINDOW = Duration.seconds(30)

/** A file the size of an announced one, its blocks counted: what serving and fetching it need. */
const announcedShape = (size: number) => {
  const blockSize = blockSizeFor(size)
  return { size, blockSize, count: Math.ceil(size / blockSize) }
}

/**
 * Publish a download's start, and then (`ticking`) its progress every PROGRESS_INTERVAL
 * while the scope lasts: from a ticker, not from the per-block hot path.
 */
const reportTransfer = (
  report: { readonly path: string; readonly peerId: string },
  bytes: number,
  fetchBytes: number,
  ticking: boolean,
  received: () => number
) =>
  Effect.gen(function*() {
    const events = yield* Events
    yield* events.publish(NodeEvent.TransferStarted({ ...report, bytes, fetchBytes }))
    if (!ticking) return
    yield* Effect.forkScoped(
      Effect.suspend(() => events.publish(NodeEvent.TransferProgress({ ...report, received: received(), fetchBytes }))).pipe(
        Effect.delay(PROGRESS_INTERVAL),
        Effect.forever
      )
    )
  })

/**
 * Download `remote` into a `.part` file in the part folder: blocks found locally are
 * copied, the rest fetched from the peer; every block is hash-checked, the file fsynced,
 * its mode and mtime set through the descriptor. The part file is removed if anything
 * fails or the fiber is interrupted. With a head start for it, its part file is taken
 * over once its stream ends, and only the blocks it lacks or got wrong are fetched.
 */
const fetchInto = (remote: FileRecord, source: BlockSource, head: HeadStart | undefined) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const index = yield* FileIndex
    const disk = (yield* Folder).fs
    let opened: { readonly part: string; readonly fd: number; readonly writer: BlockWriter }
    if (head) {
      // its stream stopped before its descriptor closes (a sink never writes to a closed one)
      yield* Effect.addFinalizer((exit) => Effect.zipRight(stopStream(head), Scope.close(head.scope, exit)))
      yield* Deferred.await(head.done)
      yield* Effect.mapError(head.writer.settled, (cause) => new FsError({ op: "write", path: head.part, cause }))
      opened = head
    } else {
      yield* ensureSpace(disk, remote.size)
      opened = yield* openPart(disk, remote.path, remote.hash.slice(0, 8))
    }
    const { part, fd, writer } = opened
    // blocks we already have (old version, a copy, a renamed file, the trash) are not fetched;
    // the copies are bounded by the file's size and yield to the event loop as they go
    const local = yield* index.findBlocks(remote.blocks)
    const missing: Array<number> = []
    let headStarted = 0
    let headStartedBytes = 0
    let sinceYield = 0
    for (let i = 0; i < remote.blocks.length; i++) {
      const size = blockLength(remote, i)
      if (head?.hashes[i] === remote.blocks[i]) {
        headStarted++
        headStartedBytes += size
        continue
      }
      const data = readLocalBlock(disk, local.get(remote.blocks[i]!), hasher, remote.blocks[i]!, size)
      if (!data) {
        missing.push(i)
        continue
      }
      yield* fsSync("write", part, () => writer.write(data, i * remote.blockSize))
      sinceYield += size
      if (sinceYield >= COPY_BYTES_PER_TURN) {
        sinceYield = 0
        yield* letEventLoopTurn
      }
    }
    const fetchBytes = missing.reduce((sum, i) => sum + blockLength(remote, i), 0)
    // a head start's blocks count as fetched already
    let received = headStartedBytes
    // (a one-block file has no progress to report)
    yield* reportTransfer({ path: remote.path, peerId: source.peerId }, remote.size, fetchBytes + headStartedBytes, missing.length > 1 || head !== undefined, () => received)
    if (missing.length > 0) {
      yield* source.fetchBlocks({ path: remote.path, hash: remote.hash, blocks: missing }, (index, data0, compressed) => {
        const size = blockLength(remote, index)
        const data = verifiedBlock(hasher, data0, compressed, size, remote.blocks[index])
        if (!data) return `block ${index} failed its hash check (changed while sent?)`
        try {
          writer.write(data, index * remote.blockSize)
          received += size
          return undefined
        } catch (cause) {
          return `cannot write ${part}: ${cause instanceof Error ? cause.message : String(cause)}`
        }
      })
    }
    yield* Effect.mapError(writer.settled, (cause) => new FsError({ op: "write", path: part, cause }))
    // In the thread pool: the event loop goes on with other files meanwhile, and the
    // fsyncs of files finishing together reach the disk in one journal commit. Not
    // interrupted halfway: the descriptor stays open until the fsync is done with it.
    yield* Effect.uninterruptible(fsTry("sync", part, () => fsync(fd)))
    yield* fsSync("set mtime and mode", part, () => setTimesAndMode(fd, remote))
    if (head) yield* Effect.logDebug(`${showPath(remote.path)}: ${headStarted} of ${remote.blocks.length} blocks fetched before its record`)
    return { part, fetched: missing.length + headStarted, fetchedBytes: fetchBytes + headStartedBytes }
  })

/**
 * Fetch the blocks of `file`, announced by `source` while it hashes it, into a part file
 * (in the part folder), each block's hash computed as it is written (see HeadStart).
 * Only for a path where nothing is, in a folder that exists: no folder of the user's is
 * made, and nothing of ours is replaced or looked at, before the record is there to be
 * checked. Not for a file whose first block we have: likely a copy or a rename, which
 * costs no transfer.
 */
const startHeadStart = (file: UpcomingFile, source: BlockSource) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const hasher = yield* Hasher
    const disk = folder.fs
    if (yield* folder.isIgnored(file.path, false)) return undefined
    if (Option.exists(yield* index.get(file.path), (known) => !known.deleted)) return undefined
    if ((yield* index.findBlocks([file.first])).size > 0) return undefined // a copy or a rename: its record will say what to copy
    const parent = parentOf(file.path)
    const free = yield* fsSync("stat", file.path, () => disk.lstat(file.path) === undefined && (parent === "" || disk.lstat(parent)?.isDirectory() === true))
    if (!free) return undefined
    yield* ensureSpace(disk, file.size)
    const shape = announcedShape(file.size)
    const scope = yield* Scope.make()
    const made = yield* Effect.either(Scope.extend(openPart(disk, file.path, file.token.slice(0, 8)), scope))
    if (Either.isLeft(made)) return yield* Effect.as(Scope.close(scope, Exit.void), undefined)
    const { part, fd, writer } = made.right
    const head: HeadStart = {
      peerId: source.peerId, path: file.path, size: file.size, part, fd, writer, hashes: [], done: yield* Deferred.make<void>(), scope, received: 0
    }
    const sink = (i: number, payload: Uint8Array, compressed: boolean) => {
      const size = blockLength(shape, i)
      const data = receivedBlock(payload, compressed, size)
      if (!data) return `block ${i} is not the ${size} bytes announced`
      try {
        writer.write(data, i * shape.blockSize)
      } catch (cause) {
        return `cannot write ${head.part}: ${cause instanceof Error ? cause.message : String(cause)}`
      }
      head.hashes[i] = hasher.hash(data)
      head.received += size
      return undefined
    }
    const blocks = Array.from({ length: shape.count }, (_, i) => i)
    const stream = Effect.scoped(Effect.zipRight(
      reportTransfer({ path: file.path, peerId: source.peerId }, file.size, file.size, true, () => head.received),
      Effect.ignore(source.fetchBlocks({ path: file.path, hash: file.token, blocks }, sink))
    ))
    return { head, stream }
  }).pipe(Effect.orElseSucceed(() => undefined))

/** Part files of one batch fsynced at once, in the thread pool. */
const BATCH_WRITES = 4

/** Run `f` on each of `items`, at most `limit` at a time; `f` must not reject. */
const eachLimited = async <A>(items: ReadonlyArray<A>, limit: number, f: (item: A) => Promise<void>): Promise<void> => {
  let next = 0
  const runner = async () => {
    while (next < items.length) await f(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner))
}

/**
 * `fetchInto` for many small files (at most one block each): blocks found locally are
 * copied, the rest asked for in one request and verified as they arrive; then each file
 * is created, written and given its mode and mtime, and all are fsynced in the thread
 * pool, a few at a time, so the event loop does not wait on the journal. Their bytes
 * wait in memory meanwhile: the puller bounds a batch's bytes. A file that fails (not on
 * the peer, a bad block, a disk error) fails alone, its part file removed.
 */
const fetchFilesInto = (remotes: ReadonlyArray<FileRecord>, source: BlockSource) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const index = yield* FileIndex
    const disk = (yield* Folder).fs
    const space = yield* Effect.either(ensureSpace(disk, remotes.reduce((sum, r) => sum + r.size, 0)))
    if (Either.isLeft(space)) return remotes.map(() => Either.left(space.left))
    const failures: Array<BlockUnavailable | FsError | undefined> = remotes.map(() => undefined)
    const contents: Array<{ readonly data: Uint8Array; readonly fetched: number } | undefined> = remotes.map(() => undefined)

    const local = yield* index.findBlocks(remotes.flatMap((r) => r.blocks.slice(0, 1)))
    const wanted: Array<number> = []
    remotes.forEach((remote, i) => {
      const block = remote.blocks[0]
      if (block === undefined) return void (contents[i] = { data: new Uint8Array(0), fetched: 0 }) // empty
      const data = readLocalBlock(disk, local.get(block), hasher, block, remote.size)
      if (data) contents[i] = { data, fetched: 0 }
      else wanted.push(i)
    })
    if (wanted.length > 0) {
      const files = wanted.map((i) => ({ path: remotes[i]!.path, hash: remotes[i]!.hash }))
      const request = yield* Effect.either(source.fetchFiles(files, (position, data0, compressed) => {
        const i = wanted[position]!
        const remote = remotes[i]!
        const data = verifiedBlock(hasher, data0, compressed, remote.size, remote.blocks[0])
        if (data) contents[i] = { data, fetched: 1 }
        else failures[i] = new BlockUnavailable({ reason: "it failed its hash check (changed while sent?)" })
        return undefined
      }))
      const missing = Either.isLeft(request) ? request.left : new BlockUnavailable({ reason: "the peer no longer has this version (changed since?)" })
      for (const i of wanted) if (contents[i] === undefined) failures[i] ??= missing
    }

    const parts = yield* partFiles(disk)
    const fds = remotes.map(() => -1)
    yield* Effect.addFinalizer(() => Effect.sync(() => fds.forEach((fd) => fd >= 0 && fs.closeSync(fd))))
    const partOf: Array<string | undefined> = remotes.map(() => undefined)
    const stats: Array<fs.Stats | undefined> = remotes.map(() => undefined)
    const fail = (i: number, cause: unknown) => {
      failures[i] = new FsError({ op: "write", path: remotes[i]!.path, cause })
      if (partOf[i] !== undefined) parts.remove(partOf[i]!)
    }
    /**
     * Create (with its mode), write, set mtime (and the mode, if the umask took bits of it:
     * before the fsync, so it covers them); the fsync comes after.
     */
    const writePart = (i: number, data: Uint8Array) => {
      const remote = remotes[i]!
      const part = partOf[i] = parts.reserve(remote.path, remote.hash.slice(0, 8))
      const fd = fds[i] = disk.createExclusive(part, modeOf(remote))
      if (data.length > 0 && fs.writeSync(fd, data, 0, data.length, 0) !== data.length) throw new Error("short write")
      const st = setTimesAndMode(fd, remote)
      stats[i] = st
    }
    // All made and written in one synchronous pass, their folders opened once (a batch):
    // each is a page of memory and an inode. Then fsynced in the thread pool, a few at a
    // time, where the waits for the journal are. Measured against making each in the pool
    // (an open there, then its fsync): 10,000 files 5.7-5.9 s against 6.0-6.3 s, 100,000
    // 44.0 s against 49.1 s (the receiver's CPU 43 s against 50 s); again a sitting later,
    // 10,000 files 6.1-6.3 s against 6.6-6.9 s.
    const made = disk.batch(() =>
      remotes.flatMap((_, i) => {
        if (contents[i] === undefined) return []
        try {
          writePart(i, contents[i]!.data)
          return [i]
        } catch (cause) {
          fail(i, cause)
          return []
        }
      })
    )
    // a plain promise pool, not a fiber per file (a dozen steps each); uninterruptible:
    // the fsyncs begun finish before the finalizer closes their descriptors
    yield* Effect.uninterruptible(Effect.promise(() => eachLimited(made, BATCH_WRITES, (i) => fsync(fds[i]!).catch((cause) => fail(i, cause)))))
    return remotes.map((_, i): Either.Either<Fetched, BlockUnavailable | FsError> => {
      const failure = failures[i]
      if (failure !== undefined) return Either.left(failure)
      const { data, fetched } = contents[i]!
      return Either.right({ part: partOf[i]!, fetched, fetchedBytes: fetched * data.length, stat: stats[i]! })
    })
  })

/**
 * Read whole one-block files, each into the buffer `into(position, size)` gives: those
 * still what the index holds for the version asked, opened once, never through a link.
 * Any other is left out (the receiver sees it missing); a short read means it changed.
 * All at once, in order: a few small files are one step, not a stream of them, their
 * records looked up together and their folders opened once (a batch).
 */
const serveFilesFrom = (files: ReadonlyArray<FileVersion>, into: (index: number, size: number) => Uint8Array) =>
  Effect.gen(function*() {
    const records = yield* (yield* FileIndex).getMany(files.map((file) => file.path))
    const disk = (yield* Folder).fs
    const served: Array<ServedBlock> = []
    disk.batch(() =>
      files.forEach((file, position) => {
        const record = Option.getOrUndefined(records[position]!)
        if (!record || record.deleted || record.kind !== "file" || record.hash !== file.hash || record.blocks.length !== 1) return
        const data = into(position, record.size)
        let fd = -1
        try {
          fd = disk.openRead(record.path)
          if (fs.readSync(fd, data, 0, record.size, 0) === record.size) served.push({ index: position, data })
        } catch {
          // left out: the receiver sees it missing
        } finally {
          if (fd >= 0) fs.closeSync(fd)
        }
      })
    )
    return served as ReadonlyArray<ServedBlock>
  })

/** How often a download in progress reports its bytes. */
const PROGRESS_INTERVAL = Duration.millis(250)


/**
 * Read the requested blocks of one file version, in order, each into the buffer `into`
 * gives. The record must still be what the index holds for that version; the file is
 * opened once, never through a link. A short read means the file changed meanwhile (the
 * receiver's hash check catches any other change).
 */
const serveFrom = (request: BlockRequest, into: (index: number, size: number) => Uint8Array, upcoming: UpcomingApi | undefined) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const index = yield* FileIndex
    const folder = yield* Folder
    const indexed = Option.getOrUndefined(yield* index.get(request.path))
    const announced = upcoming?.find(request.hash, request.path)
    const record = indexed && !indexed.deleted && indexed.kind === "file" && indexed.hash === request.hash
      ? { size: indexed.size, blockSize: indexed.blockSize, count: indexed.blocks.length }
      : announced && announcedShape(announced.size)
    if (!record) {
      return yield* new BlockUnavailable({ reason: "no such file version here (changed since?)" })
    }
    const fd = yield* Effect.acquireRelease(
      Effect.try({ try: () => folder.fs.openRead(request.path), catch: () => new BlockUnavailable({ reason: "cannot open the file" }) }),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )
    const readBlock = (i: number) => {
      if (i >= record.count) return Effect.fail(new BlockUnavailable({ reason: `no block ${i}` }))
      const size = blockLength(record, i)
      const data = into(i, size)
      let read = -1
      try {
        read = fs.readSync(fd, data, 0, size, i * record.blockSize)
      } catch { /* reported below */ }
      return read === size
        ? Effect.succeed({ index: i, data })
        : Effect.fail(new BlockUnavailable({ reason: "the file changed while being sent" }))
    }
    return Stream.fromIterable(request.blocks).pipe(Stream.mapEffect(readBlock))
  }))

/**
 * The Transfer service over the folder and its index. Built once per node: it holds the
 * services it needs, so callers need none.
 */
export const make = Effect.gen(function*() {
  // only these: the build's own Scope must not stand in for the caller's (part files are scoped)
  const context = Context.pick(Folder, FileIndex, Hasher, Events)(yield* Effect.context<Folder | FileIndex | Hasher | Events>())
  const upcoming = Option.getOrUndefined(yield* Effect.serviceOption(Upcoming))
  const nodeScope = yield* Effect.scope
  // one head start at a time: a peer's announcements cannot make more downloads than that
  let current: HeadStart | undefined
  let starting = false
  /**
   * The head start for `record`, taken over by its caller (undefined: none). One for its
   * path that cannot be (the file changed size meanwhile) is stopped, its part file removed.
   */
  const claim = (record: FileRecord) => {
    const head = current
    if (head === undefined || head.path !== record.path) return Effect.succeed(undefined)
    current = undefined
    // (a record's block size follows from its size: admitted records are checked for it)
    if (head.size === record.size) return Effect.succeed(head)
    return Effect.as(Effect.zipRight(stopStream(head), discard(head, "the file changed while its peer hashed it")), undefined)
  }
  /** A head start no record takes over: its part file is removed, and it is reported failed. */
  const discard = (head: HeadStart, reason: string) =>
    Effect.zipRight(
      Scope.close(head.scope, Exit.fail(reason)),
      publishEvent(NodeEvent.TransferFailed({ path: head.path, peerId: head.peerId, reason }))
    ).pipe(Effect.provide(context))
  const begin = (file: UpcomingFile, source: BlockSource) =>
    Effect.gen(function*() {
      const started = yield* startHeadStart(file, source)
      if (started === undefined) return
      const { head, stream } = started
      current = head
      // not taken over by a record in time (or the node stops): its part file goes
      const expire = Effect.suspend(() => {
        if (current !== head) return Effect.void
        current = undefined
        return discard(head, "fetched ahead, but no record came for it")
      })
      yield* Effect.logDebug(`fetching ${showPath(file.path)} while its peer hashes it`)
      head.fiber = yield* Effect.forkIn(
        stream.pipe(
          Effect.ensuring(Deferred.succeed(head.done, undefined)),
          Effect.zipRight(Effect.sleep(HEAD_START_CLAIM_WINDOW)),
          Effect.ensuring(expire),
          Effect.interruptible // (forked from an uninterruptible region)
        ),
        nodeScope
      )
    })
  const headStart = (file: UpcomingFile, source: BlockSource) =>
    Effect.suspend(() => {
      if (current !== undefined || starting) return Effect.void
      starting = true
      return Effect.ensuring(begin(file, source), Effect.sync(() => void (starting = false)))
    }).pipe(Effect.provide(context), Effect.uninterruptible)
  const api: TransferApi = {
    serve: (request, into) => serveFrom(request, into, upcoming).pipe(Stream.provideContext(context)),
    fetch: (record, source) => Effect.flatMap(claim(record), (head) => fetchInto(record, source, head)).pipe(Effect.provide(context)),
    serveFiles: (files, into) => serveFilesFrom(files, into).pipe(Effect.provide(context)),
    fetchFiles: (records, source) => fetchFilesInto(records, source).pipe(Effect.provide(context)),
    headStart
  }
  return api
})

/**
 * The Transfer service (`make`) over the node's Folder, FileIndex, Hasher and Events; with
 * `Upcoming` in the context, announced files are served too. Scoped: a head start that
 * runs when it closes stops, and its part file goes.
 */
export const layer: Layer.Layer<Transfer, never, Folder | FileIndex | Hasher | Events> = Layer.scoped(Transfer, make)
