import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberMap from "effect/FiberMap"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { ConnectionClosed, ProtocolError } from "../domain/Errors.js"
import type { FileRecord } from "../domain/FileRecord.js"
import {
  type BlockData,
  Bye,
  FileRequest,
  FilesRequest,
  Hello,
  IndexAck,
  IndexBatch,
  IndexFrom,
  type Message,
  Ping,
  PROTOCOL,
  StreamCancel,
  StreamEnd,
  Upcoming as UpcomingMessage
} from "../domain/Messages.js"
import { compressBlock } from "../lib/Lz4Block.js"
import { printable, showPath } from "../lib/Printable.js"
import { blockDataFrame, blockFrameLength, blockPayload, decodeFrame, encodeBlockData, encodeMessage, setBlockIndex } from "../lib/Wire.js"
import { FileIndex, type LocalRecord } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Events, NodeEvent, publish as publishEvent } from "../services/Events.js"
import { RateLimiter } from "../services/RateLimiter.js"
import { Hasher } from "../services/Hasher.js"
import { shortId } from "../services/Identity.js"
import type { Channel } from "../services/SecureChannel.js"
import { type BlockSink, BlockUnavailable, type BlockSource, type ServedBlock, Transfer } from "../services/Transfer.js"
import { admitRecord, recordCost } from "./IncomingRecords.js"
import { type ProgressTicket, trackPeerProgress } from "./IndexProgress.js"
import type { Backlog } from "./Backlog.js"
import type { PathLocks } from "../lib/PathLocks.js"
import type { Recheck } from "./Recheck.js"
import { makePuller } from "./Puller.js"
import type { Swarm } from "./Swarm.js"
import { makeSentFiles, type SentFiles } from "./SentFiles.js"
import { type Echoes, makeEchoes } from "./Echoes.js"
import { Upcoming } from "../services/Upcoming.js"
import { validatePeerPath } from "../lib/SafePath.js"
import { randomBytes } from "node:crypto"

/** How a session notices a dead or stuck peer. */
export interface SessionTiming {
  /** A ping is sent this often, so an idle but healthy peer hears from us. */
  readonly keepalive: Duration.DurationInput
  /** Nothing heard from the peer for this long ends the session. */
  readonly idleTimeout: Duration.DurationInput
  /**
   * A file stream that delivers less than FLOOR_BYTES_PER_SECOND over this long is
   * cancelled (and the file tried again later), so a slow peer cannot hold a slot.
   */
  readonly slowStreamWindow: Duration.DurationInput
}

/** Timings in production: a ping every 15 s, 45 s of silence ends a session, 10 s slow-stream window. */
export const defaultTiming: SessionTiming = {
  keepalive: Duration.seconds(15),
  idleTimeout: Duration.seconds(45),
  slowStreamWindow: Duration.seconds(10)
}

/** The floor rate of a file stream. */
export const FLOOR_BYTES_PER_SECOND = 64 * 1024

/** The services a peer session runs on. */
export type SessionServices = FileIndex | Folder | Hasher | Events | RateLimiter | Transfer

/** What `runSession` needs besides the channel. */
export interface SessionOptions {
  /** Our instance name, told to the peer. */
  readonly name: string
  /** Shared by all sessions: what is left to pull. */
  readonly backlog: Backlog
  /**
   * Shared by all sessions: one apply per path at a time. When two peers announce one new
   * version, the second waits for the first and finds it here: it is fetched once.
   */
  readonly paths: PathLocks
  /** Shared by all sessions: written paths looked at again. */
  readonly recheck: Recheck
  /** Shared by all sessions: every peer, for large files pulled from several. */
  readonly swarm: Swarm
  readonly timing: SessionTiming
  /** Unacknowledged index record cost allowed each way (INDEX_WINDOW; tests use a small one). */
  readonly indexWindow: number
  /** Done when the node's first scan is: sessions run during it, its records sent as they come. */
  readonly indexed: Effect.Effect<void>
}

const INDEX_BATCH = 500
/** Paths of a peer's records remembered besides the index's SentBy (Echoes: a mesh's duplicates): ~2 MB at most. */
const ECHO_MEMORY = 10_000
/** JSON bytes per index message: a quarter of the frame limit, whatever the records hold. */
const INDEX_FRAME_BUDGET = 4 * 1024 * 1024
const HELLO_TIMEOUT = Duration.seconds(10)
/** Files streamed to the peer at once; more requests wait their turn. */
const SERVING = 16
/** Requests a peer may have open (we open at most 16): more is a flood, and ends the session. */
const MAX_OPEN_STREAMS = 256

/**
 * Send our index: from where the peer asked (IndexFrom), then whatever is added, never
 * more than the index window of unacknowledged record cost at a time. Records go out
 * while the first scan is still adding them; the end of the first full index is marked
 * once `indexed` (that scan) is done and all it added was sent.
 */
const sendIndex = (
  send: (m: Message) => Effect.Effect<void, ConnectionClosed>,
  window: IndexWindow,
  from: Effect.Effect<number>,
  indexed: Effect.Effect<void>,
  echoes: Echoes
) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    // what the peer asked for; past our newest record, its count of ours is from an older
    // index (restored from a copy?): everything
    const after = yield* from
    let sent = after > (yield* index.sequence) ? 0 : after
    let scanned = false
    let initialDone = false
    let count = 0
    const drain = Effect.gen(function*() {
      while (true) {
        const { records, through } = yield* index.since(sent, INDEX_BATCH, echoes.session)
        if (through === sent) break
        const batches = byEncodedSize(records.filter((r) => !echoes.isEcho(r)))
        // the last batch says how far this run goes (an empty one when all were left out)
        if (batches.length === 0) batches.push({ records: [], cost: 0 })
        for (const [i, batch] of batches.entries()) {
          yield* window.reserve(batch.cost)
          const last = i === batches.length - 1 ? { through } : {}
          yield* send(new IndexBatch({ records: batch.records.map(toWire), initialDone: false, ...last }))
          count += batch.records.length
        }
        sent = through
      }
      if (!scanned || initialDone) return
      initialDone = true
      yield* send(new IndexBatch({ records: [], initialDone: true }))
      yield* Effect.logDebug(`sent our index: ${count} records after sequence ${after}`)
    })
    const scanDone = Stream.fromEffect(Effect.zipRight(indexed, Effect.sync(() => void (scanned = true))))
    yield* Stream.runForEach(Stream.merge(index.sequenceChanges, scanDone), () => drain)
  })

/** The sender's side of index flow control: cost sent and not yet acknowledged. */
interface IndexWindow {
  /** Wait until `cost` more fits (a batch alone may exceed the window when nothing is outstanding). */
  readonly reserve: (cost: number) => Effect.Effect<void>
  readonly acknowledge: (credit: number) => Effect.Effect<void>
}

const makeIndexWindow = (size: number) => Effect.gen(function*() {
  let outstanding = 0
  const freed = yield* Queue.sliding<void>(1)
  const window: IndexWindow = {
    reserve: (cost) =>
      Effect.gen(function*() {
        while (outstanding > 0 && outstanding + cost > size) yield* Queue.take(freed)
        outstanding += cost
      }),
    acknowledge: (credit) =>
      Effect.suspend(() => {
        outstanding = Math.max(0, outstanding - credit)
        return Queue.offer(freed, undefined)
      })
  }
  return window
})

const toWire = ({ inode: _inode, sentBy: _sentBy, ...record }: LocalRecord): FileRecord => record

/**
 * Split records into runs that each encode well under the frame limit: 500 records of
 * 2048 blocks each would be ~70 MB of JSON, and a frame carries at most 16 MiB. Each
 * run comes with its record cost, which the index window counts.
 */
export const byEncodedSize = (records: ReadonlyArray<LocalRecord>, limit = INDEX_FRAME_BUDGET) => {
  const batches: Array<{ records: Array<LocalRecord>; cost: number }> = []
  let current: { records: Array<LocalRecord>; cost: number } = { records: [], cost: 0 }
  for (const record of records) {
    const cost = recordCost(record)
    if (current.records.length > 0 && current.cost + cost > limit) {
      batches.push(current)
      current = { records: [], cost: 0 }
    }
    current.records.push(record)
    current.cost += cost
  }
  if (current.records.length > 0) batches.push(current)
  return batches
}

/** The frame that carries block `index` of `stream`: LZ4 bytes when that is smaller, else `raw` (its frame, `data` in it). */
const blockFrame = (stream: number, index: number, data: Uint8Array, raw: Uint8Array) => {
  const compressed = compressBlock(data)
  return compressed ? encodeBlockData(stream, index, true, compressed) : raw
}

/**
 * Send the blocks `serve` reads on `stream`, in order, then StreamEnd (with the reason
 * when it stopped short). Sending waits while the connection's write queue is full:
 * that is the flow control. Returns the blocks sent, or undefined when it stopped short.
 */
const streamBlocks = (
  stream: number,
  serve: (into: (index: number, size: number) => Uint8Array) => Stream.Stream<ServedBlock, BlockUnavailable>,
  sendFrame: (frame: Uint8Array) => Effect.Effect<void, ConnectionClosed>
) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter
    const end = (error?: string) => sendFrame(encodeMessage(new StreamEnd({ stream, ...(error === undefined ? {} : { error }) })))
    // One frame buffer for the whole stream, each block read straight into it: sending
    // seals (copies) it before the next block is read, so a block costs no allocation.
    let scratch: Uint8Array | undefined
    let frame: Uint8Array = new Uint8Array(0)
    const into = (index: number, size: number) => {
      if (scratch === undefined || blockPayload(scratch).length < size) scratch = blockDataFrame(stream, 0, size)
      frame = setBlockIndex(scratch.subarray(0, blockFrameLength(size)), index)
      return blockPayload(frame)
    }
    const blocks: Array<{ readonly index: number; readonly bytes: number }> = []
    const sent = yield* serve(into).pipe(
      Stream.runForEach(({ data, index }) => {
        const out = blockFrame(stream, index, data, frame)
        blocks.push({ index, bytes: data.length })
        // the bandwidth cap, all peers together, then the socket
        return Effect.zipRight(limiter.send(out.length), sendFrame(out))
      }),
      Effect.either
    )
    if (sent._tag === "Left") {
      if (sent.left._tag === "ConnectionClosed") return yield* sent.left
      yield* end(sent.left.reason)
      return undefined
    }
    yield* end()
    return blocks
  })

/** Serve one file version's requested blocks (FileRequest), counted in `sent`. */
const serveFile = (request: FileRequest, sent: SentFiles, sendFrame: (frame: Uint8Array) => Effect.Effect<void, ConnectionClosed>) =>
  Effect.gen(function*() {
    const transfer = yield* Transfer
    let bytes = 0
    yield* Effect.acquireUseRelease(
      sent.begin(request.path),
      () =>
        Effect.map(streamBlocks(request.stream, (into) => transfer.serve(request, into), sendFrame), (blocks) => {
          bytes = (blocks ?? []).reduce((sum, b) => sum + b.bytes, 0)
        }),
      () => sent.end(request.path, bytes)
    )
  })

/**
 * Files of a FilesRequest read and sent together: at most 1 MiB of them in memory (one
 * block each), and a few small files cost one read step and one write instead of a
 * stream element and a locked send each (serving 10,000 small files: 3.7-3.9 s of CPU
 * that way, 2.7 s this way).
 */
const FILES_PER_SEND = 8

/** Serve several whole small files (FilesRequest): those here in that version, then StreamEnd. */
const serveFiles = (request: FilesRequest, peerId: string, channel: Channel) =>
  Effect.gen(function*() {
    const transfer = yield* Transfer
    const limiter = yield* RateLimiter
    const started = Date.now()
    const sent: Array<{ readonly index: number; readonly bytes: number }> = []
    for (let at = 0; at < request.files.length; at += FILES_PER_SEND) {
      const group = request.files.slice(at, at + FILES_PER_SEND)
      // each file read straight into its own frame (`frames`, by position in the group)
      const frames = new Map<number, Uint8Array>()
      const served = yield* transfer.serveFiles(group, (position, size) => {
        const frame = blockDataFrame(request.stream, at + position, size)
        frames.set(position, frame)
        return blockPayload(frame)
      })
      const out = served.map(({ index, data }) => blockFrame(request.stream, at + index, data, frames.get(index)!))
      // the bandwidth cap, all peers together, then the socket
      yield* limiter.send(out.reduce((sum, frame) => sum + frame.length, 0))
      yield* channel.sendAll(out)
      for (const block of served) sent.push({ index: at + block.index, bytes: block.data.length })
    }
    yield* channel.send(encodeMessage(new StreamEnd({ stream: request.stream })))
    const durationMs = Date.now() - started
    for (const { index, bytes } of sent) {
      yield* publishEvent(NodeEvent.FileSent({ path: request.files[index]!.path, peerId, bytes, durationMs }))
    }
  })

/** A stream we asked for: where its blocks go, which are still due, who waits for the end, and its rate. */
interface IncomingStream {
  readonly sink: BlockSink
  readonly due: Set<number>
  /** Blocks may be left out (FilesRequest: files the peer no longer has): not an error. */
  readonly partial: boolean
  readonly done: Deferred.Deferred<void, BlockUnavailable>
  /** Start of the current floor-rate window, and bytes received in it. */
  windowStart: number
  windowBytes: number
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
    const receive = Effect.flatMap(channel.receive, (bytes) => {
      lastHeard = Date.now()
      return decodeFrame(bytes)
    })
    // Streams we are receiving, by id.
    const streams = new Map<number, IncomingStream>()
    const floorMillis = Duration.toMillis(options.timing.slowStreamWindow)
    const floorBytes = (FLOOR_BYTES_PER_SECOND * floorMillis) / 1000
    // One watchdog instead of a timer per frame or per request (both on the hot path):
    // a silent peer ends the session; a stream below the floor rate is cancelled.
    const watchdog = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(10, Math.min(idleMillis, floorMillis) / 4)))
        const now = Date.now()
        if (now - lastHeard > idleMillis) return yield* new ConnectionClosed({ reason: "idle timeout" })
        for (const [stream, incoming] of streams) {
          if (now - incoming.windowStart < floorMillis) continue
          if (incoming.windowBytes < floorBytes) {
            const rate = Math.round(incoming.windowBytes / 1024 / ((now - incoming.windowStart) / 1000))
            yield* finish(stream, `the peer sent too slowly (${rate} KiB/s, the floor is ${FLOOR_BYTES_PER_SECOND / 1024} KiB/s)`)
          } else {
            incoming.windowStart = now
            incoming.windowBytes = 0
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
    // Ask for the peer's records after those we hold; remember how far we get.
    const { progress, run: progressSaver } = yield* trackPeerProgress(hello.replicaId)
    /** This session's id: what is put in place from the peer's records is kept with it (SentBy), not sent back in it. */
    const sessionId = randomBytes(8).toString("hex")
    yield* send(new IndexFrom({ after: progress.current() }))
    const peerFrom = yield* Deferred.make<number>()
    const events = yield* Events
    const peer = { peerId: channel.peerId, name: hello.name, address: channel.remoteLabel }
    const label = `${printable(hello.name)} (${shortId(channel.peerId)}) at ${printable(channel.remoteLabel)}`
    yield* Effect.logInfo(`connected to ${label}`)
    yield* events.publish(NodeEvent.PeerConnected(peer))
    yield* Effect.addFinalizer((exit) => {
      const reason = Exit.isFailure(exit) ? Option.match(Cause.failureOption(exit.cause), {
        onNone: () => "stopped",
        onSome: (e) => (typeof e === "object" && e !== null && "reason" in e ? String(e.reason) : String(e))
      }) : "ended"
      return Effect.zipRight(
        Effect.logInfo(`disconnected from ${label}: ${printable(reason)}`),
        events.publish(NodeEvent.PeerDisconnected({ ...peer, reason }))
      )
    })

    let nextStream = 0
    let ended = false
    const sessionScope = yield* Effect.scope
    // Downloads from other sessions may be waiting on our streams (the swarm): told at once.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        ended = true
        const open = [...streams.values()]
        streams.clear()
        return Effect.forEach(open, (s) => Deferred.fail(s.done, new BlockUnavailable({ reason: "the peer left" })), { discard: true })
      })
    )
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
    /** Open a stream of `blocks` into `sink` with `request(stream)`; done when it ends. */
    const openStream = (blocks: Iterable<number>, partial: boolean, sink: BlockSink, request: (stream: number) => Message) => {
      const stream = nextStream = (nextStream + 1) >>> 0
      return Effect.gen(function*() {
        if (ended) return yield* new BlockUnavailable({ reason: "the peer left" })
        const done = yield* Deferred.make<void, BlockUnavailable>()
        streams.set(stream, { sink, due: new Set(blocks), partial, done, windowStart: Date.now(), windowBytes: 0 })
        yield* send(request(stream)).pipe(Effect.mapError((e) => new BlockUnavailable({ reason: e.reason })))
        yield* Deferred.await(done)
      }).pipe(
        // not wanted any more (another peer sent it first, or the session is going): forgotten,
        // and the peer asked to stop, from a fiber of the session's own (a full socket must not hold this up)
        Effect.onInterrupt(() =>
          Effect.suspend(() =>
            streams.delete(stream) && !ended
              ? Effect.asVoid(Effect.forkIn(Effect.ignore(send(new StreamCancel({ stream }))), sessionScope))
              : Effect.void
          )
        )
      )
    }
    // requests built from validated records: not validated again
    const source: BlockSource = {
      peerId: channel.peerId,
      fetchBlocks: (request, sink) =>
        openStream(request.blocks, false, sink, (stream) =>
          new FileRequest({ stream, path: request.path, hash: request.hash, blocks: [...request.blocks] }, true)),
      fetchFiles: (files, sink) =>
        openStream(files.keys(), true, sink, (stream) => new FilesRequest({ stream, files: files.map(({ path, hash }) => ({ path, hash })) }, true))
    }

    // Index flow control, both directions: what we sent and the peer has not yet
    // applied; what the peer sent that we still hold (bounded: a peer past the window is dropped).
    const window = yield* makeIndexWindow(options.indexWindow)
    let holding = 0
    let credit = 0
    const flushCredit = Effect.suspend(() => {
      if (credit === 0) return Effect.void
      const ack = new IndexAck({ credit })
      credit = 0
      return Effect.ignore(send(ack))
    })
    const release = (cost: number, ticket?: ProgressTicket) =>
      Effect.suspend(() => {
        if (ticket) progress.finish(ticket)
        holding -= cost
        credit += cost
        return credit >= options.indexWindow / 16 ? flushCredit : Effect.void
      })
    const creditFlusher = Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(50)), flushCredit))
    yield* options.swarm.join(source)
    const limiter = yield* RateLimiter
    const puller = yield* makePuller(options.swarm.via(source), {
      withSlot: limiter.withTransferSlot(channel.peerId),
      release: (item, settled) => release(item.cost, settled ? item.ticket : undefined),
      backlog: options.backlog,
      paths: options.paths,
      recheck: options.recheck,
      from: sessionId
    })
    const hasher = yield* Hasher
    let recordsReceived = 0
    const echoes = makeEchoes(ECHO_MEMORY, sessionId)
    const receiveIndex = (batch: IndexBatch) =>
      Effect.gen(function*() {
        recordsReceived += batch.records.length
        if (batch.initialDone) yield* Effect.logInfo(`received the index of ${label}: ${recordsReceived} records`)
        const admitted = yield* Effect.forEach(batch.records, (raw) => admitRecord(raw, hasher, index.replicaId, index.get))
        const cost = admitted.reduce((sum, a) => sum + a.cost, 0)
        // (a batch alone may exceed the window when nothing is held, as the sender allows)
        if (holding > 0 && cost > 0 && holding + cost > options.indexWindow) {
          return yield* new ProtocolError({ reason: "the peer sent more index records than it was allowed to" })
        }
        holding += cost
        const accepted = []
        let last = batch.through ?? 0
        for (const a of admitted) if (a._tag === "Accepted") last = Math.max(last, a.record.sequence)
        const ticket = progress.open(last, admitted.filter((a) => a._tag === "Accepted").length)
        for (const a of admitted) {
          if (a._tag === "Accepted") {
            accepted.push({ record: a.record, cost: a.cost, ticket })
            echoes.heard(a.record)
          }
          else if (a._tag === "Expired") yield* release(a.cost)
          else {
            yield* Effect.logWarning(`refused record from ${shortId(channel.peerId)}: ${showPath(a.path)}: ${a.reason}`)
            yield* events.publish(NodeEvent.Refused({ peerId: channel.peerId, path: a.path, reason: a.reason }))
            yield* release(a.cost)
          }
        }
        yield* puller.offer(accepted)
      })

    const outgoing = yield* FiberMap.make<number>()
    const sentFiles = yield* makeSentFiles(channel.peerId)
    const serveSlots = yield* Effect.makeSemaphore(SERVING)
    /** Serve a request in its own fiber (SERVING at a time), cancellable by its stream id. */
    const serve = (stream: number, serving: Effect.Effect<void, ConnectionClosed, SessionServices>) =>
      Effect.flatMap(FiberMap.size(outgoing), (open) =>
        open >= MAX_OPEN_STREAMS
          ? Effect.fail(new ProtocolError({ reason: `more than ${MAX_OPEN_STREAMS} file requests open at once` }))
          : Effect.asVoid(FiberMap.run(outgoing, stream, serveSlots.withPermits(1)(serving))))
    const dispatch = (frame: Message | BlockData): Effect.Effect<void, ProtocolError | ConnectionClosed, SessionServices> => {
      switch (frame._tag) {
        case "BlockData": {
          // hot path: plain code, no fiber per block
          const incoming = streams.get(frame.stream)
          if (!incoming) return Effect.void // a stream we cancelled: its last blocks still arrive
          if (!incoming.due.delete(frame.index)) return finish(frame.stream, `unexpected block ${frame.index}`)
          incoming.windowBytes += frame.data.length
          const refused = incoming.sink(frame.index, frame.data, frame.compressed)
          if (refused !== undefined && !incoming.partial) return finish(frame.stream, refused)
          // the receive cap: no next frame is read until it allows, so TCP slows the sender;
          // the last block due completes the stream (its StreamEnd, following, is not waited for)
          const received = limiter.receive(frame.data.length)
          return incoming.due.size === 0 ? Effect.zipRight(received, finish(frame.stream)) : received
        }
        case "StreamEnd": {
          const incoming = streams.get(frame.stream)
          if (!incoming) return Effect.void
          return finish(
            frame.stream,
            frame.error ?? (incoming.due.size > 0 && !incoming.partial ? `the peer sent ${incoming.due.size} blocks too few` : undefined)
          )
        }
        case "FileRequest":
          return serve(frame.stream, serveFile(frame, sentFiles, sendFrame))
        case "FilesRequest":
          return serve(frame.stream, serveFiles(frame, channel.peerId, channel))
        case "StreamCancel":
          return FiberMap.remove(outgoing, frame.stream)
        case "Upcoming":
          // a path it may not name is ignored: the record that follows is refused and logged
          return Either.isRight(validatePeerPath(frame.path))
            ? Effect.flatMap(Transfer, (transfer) => transfer.headStart(frame, source))
            : Effect.void
        case "IndexBatch":
          return receiveIndex(frame)
        case "IndexAck":
          return window.acknowledge(frame.credit)
        case "IndexFrom":
          return Effect.asVoid(Deferred.succeed(peerFrom, frame.after))
        case "Ping":
          return Effect.void
        case "Bye":
          return Effect.fail(new ConnectionClosed({ reason: "the peer left" }))
        case "Hello":
          return Effect.fail(new ProtocolError({ reason: "unexpected second Hello" }))
      }
    }

    // files we are hashing, told as they start, so the peer can fetch them meanwhile
    const upcoming = yield* Effect.serviceOption(Upcoming)
    const hashing = Option.isNone(upcoming) ? Stream.empty : yield* upcoming.value.subscribe
    const announce = Stream.runForEach(hashing, ({ first, path, size, token }) => send(new UpcomingMessage({ token, path, size, first })))
    const keepalive = send(new Ping()).pipe(
      Effect.repeat(Schedule.spaced(options.timing.keepalive)),
      Effect.asVoid
    )
    // All run forever; the first to fail (peer gone, idle, stalled) ends them all.
    // (Not raceAll: it waits for a success, so a failing watchdog would go unnoticed.)
    const background = yield* Effect.forkScoped(
      Effect.all([sendIndex(send, window, Deferred.await(peerFrom), options.indexed, echoes), announce, keepalive, watchdog, creditFlusher, progressSaver, puller.run], {
        concurrency: "unbounded",
        discard: true
      })
    )
    // The peer's frames, each handled before the next is read: a slow handler (the
    // receive cap) leaves the socket unread, so TCP slows the peer. A plain loop, not a
    // Stream: the stream's machinery per frame was ~25 fiber steps, more than the frame's
    // own handling (a received small file is one frame).
    const receiving: Effect.Effect<never, ProtocolError | ConnectionClosed, SessionServices> = Effect.flatMap(
      Effect.flatMap(receive, dispatch),
      () => receiving
    )
    // Stopped (we shut down, or a newer connection replaces this one): say goodbye, so the
    // peer ends the session at once instead of waiting for the connection to time out.
    const bye = send(new Bye()).pipe(Effect.timeout(Duration.millis(500)), Effect.ignore)
    yield* Effect.raceFirst(receiving, Fiber.join(background)).pipe(Effect.onInterrupt(() => bye))
  }).pipe(Effect.scoped)
