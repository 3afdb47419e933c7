import { Deferred, Duration, Effect, Fiber, FiberMap, Option, Ref, Schedule, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { ConnectionClosed, ProtocolError } from "../domain/Errors.js"
import { blockLength, type FileRecord } from "../domain/FileRecord.js"
import {
  type BlockData,
  FileRequest,
  Hello,
  IndexBatch,
  type Message,
  Ping,
  PROTOCOL,
  StreamCancel,
  StreamEnd
} from "../domain/Messages.js"
import { compressBlock } from "../lib/Lz4Block.js"
import { validatePeerPath } from "../lib/SafePath.js"
import { blockDataFrame, blockFrameLength, blockPayload, decodeFrame, encodeBlockData, encodeMessage, setBlockIndex } from "../lib/Wire.js"
import { FileIndex, type LocalRecord } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Hasher } from "../services/Hasher.js"
import { shortId } from "../services/Identity.js"
import type { Channel } from "../services/SecureChannel.js"
import { type BlockSink, BlockUnavailable, type BlockSource } from "./ApplyRemote.js"
import { makePuller } from "./Puller.js"

/** How a session notices a dead or stuck peer. */
export interface SessionTiming {
  /** A ping is sent this often, so an idle but healthy peer hears from us. */
  readonly keepalive: Duration.DurationInput
  /** Nothing heard from the peer for this long ends the session. */
  readonly idleTimeout: Duration.DurationInput
  /** A block request unanswered for this long ends the session. */
  readonly requestTimeout: Duration.DurationInput
}

export const defaultTiming: SessionTiming = {
  keepalive: Duration.seconds(15),
  idleTimeout: Duration.seconds(45),
  requestTimeout: Duration.seconds(30)
}

export interface SessionOptions {
  /** Our instance name, told to the peer. */
  readonly name: string
  /** Shared by all sessions: files being pulled at once (`max_concurrent_transfers`). */
  readonly transfers: Effect.Semaphore
  readonly timing: SessionTiming
}

const INDEX_BATCH = 500
/** JSON bytes per index message: a quarter of the frame limit, whatever the records hold. */
const INDEX_FRAME_BUDGET = 4 * 1024 * 1024
const HELLO_TIMEOUT = Duration.seconds(10)
/** Files streamed to the peer at once; more requests wait their turn. */
const SERVING = 16
/** Requests a peer may have open (we open at most 16): more is a flood, and ends the session. */
const MAX_OPEN_STREAMS = 256

/** Send our index: everything since the last record sent, again whenever the index grows. */
const sendIndex = (send: (m: Message) => Effect.Effect<void, ConnectionClosed>) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const sent = yield* Ref.make(0)
    const initialDone = yield* Ref.make(false)
    const drain = Effect.gen(function*() {
      while (true) {
        const records = yield* index.since(yield* Ref.get(sent), INDEX_BATCH)
        if (records.length === 0) break
        for (const batch of byEncodedSize(records)) {
          yield* send(new IndexBatch({ records: batch.map(toWire), initialDone: false }))
          yield* Ref.set(sent, batch[batch.length - 1]!.sequence)
        }
      }
      if (!(yield* Ref.getAndSet(initialDone, true))) yield* send(new IndexBatch({ records: [], initialDone: true }))
    })
    yield* Stream.runForEach(index.sequenceChanges, () => drain)
  })

const toWire = ({ inode: _inode, ...record }: LocalRecord): FileRecord => record

/** Rough JSON size of a record: its block hashes dominate (64 hex digits and quotes each). */
const encodedSize = (r: LocalRecord) => 400 + r.path.length * 2 + r.blocks.length * 67

/**
 * Split records into runs that each encode well under the frame limit: 500 records of
 * 2048 blocks each would be ~70 MB of JSON, and a frame carries at most 16 MiB.
 */
export const byEncodedSize = (records: ReadonlyArray<LocalRecord>, limit = INDEX_FRAME_BUDGET) => {
  const batches: Array<Array<LocalRecord>> = []
  let current: Array<LocalRecord> = []
  let size = 0
  for (const record of records) {
    if (current.length > 0 && size + encodedSize(record) > limit) {
      batches.push(current)
      current = []
      size = 0
    }
    current.push(record)
    size += encodedSize(record)
  }
  if (current.length > 0) batches.push(current)
  return batches
}

/**
 * Stream the requested blocks of one file version to the peer, in order, then StreamEnd.
 * Sending waits while the connection's write queue is full: that is the flow control.
 */
const serveFile = (request: FileRequest, sendFrame: (frame: Uint8Array) => Effect.Effect<void, ConnectionClosed>) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const folder = yield* Folder
    const end = (error?: string) =>
      sendFrame(encodeMessage(new StreamEnd({ stream: request.stream, ...(error === undefined ? {} : { error }) })))
    const record = Option.getOrUndefined(yield* index.get(request.path))
    if (!record || record.deleted || record.kind !== "file" || record.hash !== request.hash) {
      return yield* end("no such file version here (changed since?)")
    }
    const abs = path.join(folder.root, request.path)
    const fd = yield* Effect.acquireRelease(
      Effect.try(() => fs.openSync(abs, "r")),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    ).pipe(Effect.option)
    if (Option.isNone(fd)) return yield* end("cannot open the file")
    // One frame buffer for the whole stream: sending seals (copies) it before we read the
    // next block into it, so each block costs no new allocation here.
    const scratch = blockDataFrame(request.stream, 0, record.blockSize)
    for (const i of request.blocks) {
      if (i >= record.blocks.length) return yield* end(`no block ${i}`)
      const size = blockLength(record, i)
      // Read straight into the frame. The receiver checks each block's hash, so a file
      // changed since it was indexed is caught there; a short read is caught here.
      const frame = setBlockIndex(scratch.subarray(0, blockFrameLength(size)), i)
      const data = blockPayload(frame)
      const read = yield* Effect.try(() => fs.readSync(fd.value, data, 0, size, i * record.blockSize)).pipe(
        Effect.orElseSucceed(() => -1)
      )
      if (read !== size) return yield* end("the file changed while being sent")
      const compressed = compressBlock(data)
      yield* sendFrame(compressed ? encodeBlockData(request.stream, i, true, compressed) : frame)
    }
    yield* end()
  }).pipe(Effect.scoped)

/** A stream we asked for: where its blocks go, which are still due, and who waits for the end. */
interface IncomingStream {
  readonly sink: BlockSink
  readonly due: Set<number>
  readonly done: Deferred.Deferred<void, BlockUnavailable>
  lastHeard: number
}

/**
 * One sync session over an established secure channel: exchange hellos and indexes,
 * serve the peer's block requests, and pull what the peer has that should win here.
 * Ends (failing) when the connection closes or the peer breaks the protocol.
 */
export const runSession = (channel: Channel, options: SessionOptions) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const sendFrame = channel.send
    const send = (message: Message) => sendFrame(encodeMessage(message))
    // Idle detection by timestamp and a watchdog, not a timer per frame (hot path).
    const idleMillis = Duration.toMillis(options.timing.idleTimeout)
    let lastHeard = Date.now()
    const receive = channel.receive.pipe(
      Effect.tap(() => Effect.sync(() => (lastHeard = Date.now()))),
      Effect.flatMap(decodeFrame)
    )
    // Streams we are receiving, by id.
    const streams = new Map<number, IncomingStream>()
    const requestMillis = Duration.toMillis(options.timing.requestTimeout)
    // One watchdog instead of a timer per frame or per request (both on the hot path):
    // a silent peer, or one that stops sending a file it was asked for, ends the session.
    const watchdog = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(10, Math.min(idleMillis, requestMillis) / 4)))
        const now = Date.now()
        if (now - lastHeard > idleMillis) return yield* new ConnectionClosed({ reason: "idle timeout" })
        for (const incoming of streams.values()) {
          if (now - incoming.lastHeard > requestMillis) {
            return yield* new ConnectionClosed({ reason: "the peer stopped sending a file it was asked for" })
          }
        }
      }
    })

    yield* send(new Hello({ protocol: PROTOCOL, replicaId: index.replicaId, name: options.name }))
    const hello = yield* receive.pipe(
      Effect.timeoutFail({ duration: HELLO_TIMEOUT, onTimeout: () => new ProtocolError({ reason: "no hello" }) })
    )
    if (hello._tag !== "Hello") return yield* new ProtocolError({ reason: `expected Hello, got ${hello._tag}` })
    if (hello.replicaId === index.replicaId) {
      return yield* new ProtocolError({ reason: "the peer is this same folder (copied .dsync/ folder?)" })
    }
    yield* Effect.logInfo(`connected to ${hello.name} (${shortId(channel.peerId)}) at ${channel.remoteLabel}`)

    let nextStream = 0
    /** Ends a stream we receive: removed, its waiter told; a failure also tells the peer to stop. */
    const finish = (stream: number, error?: string): Effect.Effect<void> => {
      const incoming = streams.get(stream)
      if (!incoming) return Effect.void
      streams.delete(stream)
      if (error === undefined) return Deferred.succeed(incoming.done, undefined)
      return Deferred.fail(incoming.done, new BlockUnavailable({ reason: error })).pipe(
        Effect.zipRight(send(new StreamCancel({ stream }))),
        Effect.ignore
      )
    }
    const source: BlockSource = {
      fetchBlocks: (request, sink) => {
        const stream = nextStream = (nextStream + 1) >>> 0
        return Effect.gen(function*() {
          const done = yield* Deferred.make<void, BlockUnavailable>()
          streams.set(stream, { sink, due: new Set(request.blocks), done, lastHeard: Date.now() })
          // built from a validated record: skip re-validating
          yield* send(new FileRequest({ stream, path: request.path, hash: request.hash, blocks: [...request.blocks] }, true)).pipe(
            Effect.mapError((e) => new BlockUnavailable({ reason: e.reason }))
          )
          yield* Deferred.await(done)
        }).pipe(
          // torn down with the session: forget the stream, tell nobody (the connection is going)
          Effect.onInterrupt(() => Effect.sync(() => streams.delete(stream)))
        )
      }
    }

    const puller = yield* makePuller(source, options.transfers)

    const outgoing = yield* FiberMap.make<number>()
    const serveSlots = yield* Effect.makeSemaphore(SERVING)
    const dispatch = (frame: Message | BlockData): Effect.Effect<void, ProtocolError, FileIndex | Folder | Hasher> => {
      switch (frame._tag) {
        case "BlockData": {
          // hot path: plain code, no fiber per block
          const incoming = streams.get(frame.stream)
          if (!incoming) return Effect.void // a stream we cancelled: its last blocks still arrive
          if (!incoming.due.delete(frame.index)) return finish(frame.stream, `unexpected block ${frame.index}`)
          incoming.lastHeard = Date.now()
          const refused = incoming.sink(frame.index, frame.data, frame.compressed)
          return refused === undefined ? Effect.void : finish(frame.stream, refused)
        }
        case "StreamEnd": {
          const incoming = streams.get(frame.stream)
          if (!incoming) return Effect.void
          return finish(
            frame.stream,
            frame.error ?? (incoming.due.size > 0 ? `the peer sent ${incoming.due.size} blocks too few` : undefined)
          )
        }
        case "FileRequest":
          return Effect.flatMap(FiberMap.size(outgoing), (open) =>
            open >= MAX_OPEN_STREAMS
              ? Effect.fail(new ProtocolError({ reason: `more than ${MAX_OPEN_STREAMS} file requests open at once` }))
              : FiberMap.run(outgoing, frame.stream, serveSlots.withPermits(1)(serveFile(frame, sendFrame))).pipe(Effect.asVoid))
        case "StreamCancel":
          return FiberMap.remove(outgoing, frame.stream)
        case "IndexBatch":
          return Effect.gen(function*() {
            const accepted: Array<FileRecord> = []
            for (const record of frame.records) {
              const valid = validatePeerPath(record.path)
              if (valid._tag === "Right") accepted.push(record)
              else yield* Effect.logWarning(`refused path from ${shortId(channel.peerId)}: ${JSON.stringify(record.path)}: ${valid.left.reason}`)
            }
            yield* puller.offer(accepted)
          })
        case "Ping":
          return Effect.void
        case "Hello":
          return Effect.fail(new ProtocolError({ reason: "unexpected second Hello" }))
      }
    }

    const keepalive = send(new Ping()).pipe(
      Effect.repeat(Schedule.spaced(options.timing.keepalive)),
      Effect.asVoid
    )
    // All run forever; the first to fail (peer gone, idle, stalled) ends them all.
    // (Not raceAll: it waits for a success, so a failing watchdog would go unnoticed.)
    const background = yield* Effect.forkScoped(
      Effect.all([sendIndex(send), keepalive, watchdog, puller.run], { concurrency: "unbounded", discard: true })
    )
    const receiving = Effect.forever(Effect.flatMap(receive, dispatch))
    yield* Effect.raceFirst(receiving, Fiber.join(background))
  }).pipe(Effect.scoped)
