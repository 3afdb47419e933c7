import { Deferred, Duration, Effect, Fiber, FiberSet, Option, Ref, Schedule, Stream } from "effect"
import * as path from "node:path"
import { ConnectionClosed, ProtocolError } from "../domain/Errors.js"
import type { FileRecord } from "../domain/FileRecord.js"
import { BlockError, BlockRequest, type BlockData, Hello, IndexBatch, type Message, Ping, PROTOCOL } from "../domain/Messages.js"
import { readBlockInto } from "../lib/BlockIO.js"
import { compressBlock, decompressBlock } from "../lib/Lz4Block.js"
import { validatePeerPath } from "../lib/SafePath.js"
import { blockDataFrame, blockPayload, decodeFrame, encodeBlockData, encodeMessage } from "../lib/Wire.js"
import { FileIndex, type LocalRecord } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Hasher } from "../services/Hasher.js"
import { shortId } from "../services/Identity.js"
import type { Channel } from "../services/SecureChannel.js"
import { BlockUnavailable, type BlockSource } from "./ApplyRemote.js"
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
const HELLO_TIMEOUT = Duration.seconds(10)
/** Block requests from the peer served at once; more wait (the peer bounds what it sends). */
const SERVING = 32

type Reply = BlockData | BlockError

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
        yield* send(new IndexBatch({ records: records.map(toWire), initialDone: false }))
        yield* Ref.set(sent, records[records.length - 1]!.sequence)
      }
      if (!(yield* Ref.getAndSet(initialDone, true))) yield* send(new IndexBatch({ records: [], initialDone: true }))
    })
    yield* Stream.runForEach(index.sequenceChanges, () => drain)
  })

const toWire = ({ inode: _inode, ...record }: LocalRecord): FileRecord => record

/** Answer one block request from our disk, if the block is still what our index says. */
const serveBlock = (request: BlockRequest, send: (frame: Uint8Array) => Effect.Effect<void, ConnectionClosed>) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const folder = yield* Folder
    const refuse = (reason: string) => send(encodeMessage(new BlockError({ id: request.id, reason })))
    const record = Option.getOrUndefined(yield* index.get(request.path))
    const blockIndex = record ? request.offset / record.blockSize : -1
    if (
      !record || record.deleted || record.kind !== "file" || !Number.isInteger(blockIndex) ||
      record.blocks[blockIndex] !== request.hash || Math.min(record.blockSize, record.size - request.offset) !== request.size
    ) return yield* refuse("no such block")
    const abs = path.join(folder.root, request.path)
    // Read straight into the reply frame. The receiver checks each block's hash, so a file
    // that changed since it was indexed is caught there; a short read is caught here.
    const frame = blockDataFrame(request.id, request.size)
    const data = blockPayload(frame)
    const read = yield* Effect.try(() => readBlockInto(abs, request.offset, data)).pipe(Effect.orElseSucceed(() => -1))
    if (read !== request.size) return yield* refuse("block changed")
    const compressed = compressBlock(data)
    yield* send(compressed ? encodeBlockData(request.id, true, compressed) : frame)
  })

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
    // Block requests waiting for an answer, oldest first (Map keeps insertion order).
    const pending = new Map<number, { readonly reply: Deferred.Deferred<Reply>; readonly sentAt: number }>()
    const requestMillis = Duration.toMillis(options.timing.requestTimeout)
    // One watchdog instead of a timer per frame or per request (both on the hot path):
    // a silent peer, or one that stops answering block requests, ends the session.
    const watchdog = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(10, Math.min(idleMillis, requestMillis) / 4)))
        const now = Date.now()
        if (now - lastHeard > idleMillis) return yield* new ConnectionClosed({ reason: "idle timeout" })
        const oldest = pending.values().next().value
        if (oldest && now - oldest.sentAt > requestMillis) {
          return yield* new ConnectionClosed({ reason: "the peer stopped answering block requests" })
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

    let nextId = 0
    const source: BlockSource = {
      fetch: (request) => {
        const id = nextId = (nextId + 1) >>> 0
        return Effect.gen(function*() {
          const reply = yield* Deferred.make<Reply>()
          pending.set(id, { reply, sentAt: Date.now() })
          // built from a validated record: skip re-validating on this per-block path
          yield* send(new BlockRequest({ id, ...request }, true)).pipe(
            Effect.mapError((e) => new BlockUnavailable({ reason: e.reason }))
          )
          const answer = yield* Deferred.await(reply)
          if (answer._tag === "BlockError") return yield* new BlockUnavailable({ reason: answer.reason })
          if (!answer.compressed) return answer.data
          const data = decompressBlock(answer.data, request.size)
          return data ?? (yield* new BlockUnavailable({ reason: "bad compressed block" }))
        }).pipe(Effect.ensuring(Effect.sync(() => pending.delete(id))))
      }
    }

    const puller = yield* makePuller(source, options.transfers)

    const serving = yield* FiberSet.make()
    const serveSlots = yield* Effect.makeSemaphore(SERVING)
    const dispatch = (frame: Message | BlockData): Effect.Effect<void, ProtocolError, FileIndex | Folder | Hasher> => {
      switch (frame._tag) {
        case "BlockData":
        case "BlockError": {
          const waiting = pending.get(frame.id)
          pending.delete(frame.id)
          return waiting ? Deferred.succeed(waiting.reply, frame) : Effect.logDebug(`late reply ${frame.id} ignored`)
        }
        case "BlockRequest":
          return FiberSet.run(serving, serveSlots.withPermits(1)(serveBlock(frame, sendFrame))).pipe(Effect.asVoid)
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
