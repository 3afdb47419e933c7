import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { formatAddress, type PeerAddress } from "../domain/Config.js"
import { FsError } from "../domain/Errors.js"
import { TOMBSTONE_RETENTION_DAYS } from "../domain/FileRecord.js"
import { Events, NodeEvent } from "../services/Events.js"
import { SyncNode, type SyncNodeApi } from "../services/SyncNode.js"

export { SyncNode, type SyncNodeApi } from "../services/SyncNode.js"
import { Discovery } from "../services/Discovery.js"
import { FileIndex } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { RateLimiter } from "../services/RateLimiter.js"
import { Identity, shortId } from "../services/Identity.js"
import { SecureChannel } from "../services/SecureChannel.js"
import { Transport, type Connection } from "../services/Transport.js"
import { RESCAN_ALL, Watcher } from "../services/Watcher.js"
import { defaultTiming, runSession, type SessionOptions, type SessionServices, type SessionTiming } from "./PeerSession.js"
import { indexedAsIs, statOrGone, scanAll, scanPath, scanTree, vanishedFolder } from "./Scanner.js"
import { makeSessions, type SessionOutcome } from "./Sessions.js"
import { makeBacklog } from "./Backlog.js"
import { makePathLocks } from "../lib/PathLocks.js"
import { makeRecheck } from "./Recheck.js"
import { makeSwarm } from "./Swarm.js"
import { makeDialers } from "./Dialers.js"
import { purgeTrash } from "./Trash.js"
import { IGNORE_FILE_NAME } from "../lib/Ignore.js"
import { printable } from "../lib/Printable.js"
import { INDEX_WINDOW } from "../domain/Messages.js"

/**
 * How a node runs, apart from which folder, transport and discovery it uses (those are
 * layers). A library setting, not a command line: see NodeConfig for the CLI's.
 *
 * @since 0.1.0
 * @category node
 */
export interface NodeOptions {
  /** Told to peers, shown in their logs. */
  readonly name: string
  /** Where to listen (port 0: any free one; see SyncNodeApi.address). */
  readonly listen: PeerAddress
  /** Overrides of the session timeouts (tests use short ones). */
  readonly timing?: Partial<SessionTiming>
  /** Override of the index flow-control window (tests use a small one); both peers must agree. */
  readonly indexWindow?: number
  /** Override of the reconnect delays (tests that partition the network use short ones). */
  readonly reconnect?: ReconnectDelays
  /** How often the whole folder is rescanned, for changes no watcher event reported (default 5 minutes). */
  readonly rescanInterval?: Duration.DurationInput
}

/** @deprecated since 0.2.0: the node's interface is SyncNodeApi. */
export type NodeHandle = SyncNodeApi

const FULL_RESCAN_INTERVAL = Duration.minutes(5)
const WATCHER_START_TIMEOUT = Duration.seconds(2)
/** Restart a failed watcher after 1 s, backing off to a minute. */
const WATCHER_RESTART = Schedule.exponential(Duration.seconds(1)).pipe(Schedule.union(Schedule.spaced(Duration.minutes(1))))

/** How long a peer that cannot be reached waits before the next dial: doubling from `first` to `max`. */
export interface ReconnectDelays {
  readonly first: Duration.DurationInput
  readonly max: Duration.DurationInput
}

/** Reconnect delays in production: 0.5 s doubling to 30 s. */
export const defaultReconnect: ReconnectDelays = { first: Duration.millis(500), max: Duration.seconds(30) }

/** Reconnect delays, jittered so peers don't dial in lockstep. */
const reconnectSchedule = (delays: ReconnectDelays) =>
  Schedule.exponential(delays.first).pipe(
    Schedule.jittered,
    Schedule.union(Schedule.spaced(delays.max)),
    // a session that lasted a while starts the backoff over
    Schedule.resetAfter(Duration.seconds(60))
  )

/** Rescan what the watcher reports; a changed `.dsyncignore` reloads the rules and rescans all. */
const onLocalChanges = (paths: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    if (paths.includes(IGNORE_FILE_NAME)) {
      yield* folder.reloadIgnore
      yield* Effect.logInfo(".dsyncignore changed: rules reloaded")
    }
    if (paths.includes(IGNORE_FILE_NAME) || paths.includes(RESCAN_ALL)) return yield* scanAll
    // the disk, then the index, for all paths at once: a recheck covers thousands of them
    const onDisk = yield* Effect.sync(() => folder.fs.batch(() => paths.map((rel) => statOrGone(folder.fs, rel))))
    const indexed = yield* index.getMany(paths)
    const entries = paths.map((rel, i) => ({ rel, present: onDisk[i], known: Option.getOrUndefined(indexed[i]!) }))
    // What exists first, then what vanished: after a rename the new path is announced
    // before the old one's deletion, so a peer can reuse the blocks it already has.
    // A file or link that the disk shows as indexed needs no scan (a scan would find
    // nothing): most paths of a recheck are files we just received. A folder is always
    // walked (its contents may be new), and whatever differs is scanned under its lock.
    const existing = entries.filter((e) => e.present !== undefined && !indexedAsIs(e.known, e.present))
    const vanished = entries.filter((e) => e.present === undefined && e.known !== undefined && !e.known.deleted)
    yield* Effect.forEach(existing, ({ rel, present }) =>
      Effect.gen(function*() {
        const outcome = yield* scanPath(rel)
        if (present?.isDirectory() && outcome !== "ignored") yield* scanTree(rel)
      }), { concurrency: 4, discard: true })
    yield* Effect.forEach(vanished, ({ rel, known }) => (known?.kind === "dir" ? vanishedFolder(rel) : scanPath(rel)), {
      concurrency: 4,
      discard: true
    })
  })

/**
 * A dsync node: index the folder, then listen, dial discovered peers, keep one session
 * per peer, and turn local changes into index updates. Runs until its scope closes.
 */
export const startNode = (options: NodeOptions) =>
  Effect.gen(function*() {
    const identity = yield* Identity
    const transport = yield* Transport
    const secure = yield* SecureChannel
    const limiter = yield* RateLimiter
    const folder = yield* Folder
    const index = yield* FileIndex
    const watcher = yield* Watcher
    const discovery = yield* Discovery
    const events = yield* Events
    const sessions = yield* makeSessions
    // the first scan: sessions start before it ends (its records are sent as they come)
    const scanned = yield* Deferred.make<void>()
    const context = yield* Effect.context<SessionServices>()
    const recheck = yield* makeRecheck(onLocalChanges)
    const sessionOptions: SessionOptions = {
      name: options.name,
      backlog: yield* makeBacklog,
      paths: makePathLocks(),
      recheck,
      swarm: makeSwarm(),
      timing: { ...defaultTiming, ...options.timing },
      indexWindow: options.indexWindow ?? INDEX_WINDOW,
      indexed: Deferred.await(scanned)
    }

    // Watch before the initial scan so nothing changed during the scan is missed.
    // A watcher that fails (e.g. out of inotify watches) is restarted, with a full
    // rescan for whatever it missed meanwhile.
    const live = yield* Deferred.make<void>()
    let starts = 0
    const watching = Stream.suspend(() =>
      starts++ === 0 ? watcher.watch(folder.root) : Stream.concat(Stream.make([RESCAN_ALL]), watcher.watch(folder.root))
    ).pipe(
      Stream.runForEach((paths) =>
        paths.length === 0
          ? Effect.asVoid(Deferred.succeed(live, undefined))
          // not held until the first scan ends: a file saved meanwhile reaches peers at once
          // (scanning is per path under its lock, so this and the scan never race on one);
          // a path a peer's change was just written to is left to its recheck
          : Effect.suspend(() => {
            const changed = paths.filter((p) => !recheck.pending(p))
            return changed.length === 0 ? Effect.void : Effect.asVoid(onLocalChanges(changed))
          })
      ),
      Effect.tapError((e) => Effect.logError(`file watcher failed, restarting it: ${e.message}`)),
      Effect.zipRight(Effect.fail(new FsError({ op: "watch", path: folder.root, cause: "stream ended" }))),
      Effect.retry(WATCHER_RESTART),
      Effect.ignore
    )
    yield* Effect.forkScoped(watching)
    // Scan once the watch is in place, so a change made during the scan is seen. A
    // watcher that cannot start does not hold the node up: it is retried, with a rescan.
    yield* Deferred.await(live).pipe(Effect.timeout(WATCHER_START_TIMEOUT), Effect.ignore)
    const session = (channel: Parameters<typeof runSession>[0], initiator: string) =>
      sessions.run(channel, initiator, runSession(channel, sessionOptions)).pipe(
        // a session that got going logs its own end, with the peer's name and address
        Effect.tapError((e) =>
          e._tag === "ConnectionClosed"
            ? Effect.logDebug(`connection to ${shortId(channel.peerId)} ended: ${printable(e.reason)}`)
            : Effect.logWarning(`closed connection to ${shortId(channel.peerId)}: ${printable(e.reason)}`)
        ),
        Effect.orElseSucceed(() => "ended" as SessionOutcome)
      )

    const inbound = (connection: Connection) =>
      limiter.guard(connection.remoteHost, secure.accept(connection)).pipe(
        // over the session caps: closed at once, before any sync
        Effect.flatMap((channel) =>
          limiter.admit(connection.remoteHost, session(channel, channel.peerId)).pipe(Effect.tapError(() => channel.close))
        ),
        // each limit is warned about by the guard when first hit; every refusal only at debug level
        Effect.catchTag("HandshakeRefused", (e) => Effect.logDebug(`refused ${connection.remoteLabel}: ${e.message}`)),
        Effect.catchTag("HandshakeError", (e) => Effect.logWarning(`handshake with ${connection.remoteLabel} failed: ${printable(e.reason)}`)),
        Effect.asVoid,
        Effect.provide(context)
      )

    const address = yield* transport.listen(options.listen, inbound)

    // Dial what discovery finds (see Dialers): one loop per peer, redialled while wanted.
    const dialers = yield* makeDialers({
      connect: (peer) => Effect.flatMap(transport.dial(peer.address), (connection) => secure.initiate(connection, peer.peerId)),
      serve: (channel) =>
        Effect.flatMap(session(channel, identity.peerId), (outcome) =>
          outcome === "duplicate" ? sessions.awaitEnd(channel.peerId) : Effect.void),
      connected: (peerId) => sessions.peers().includes(peerId),
      peerLost: discovery.peerLost,
      reconnect: reconnectSchedule(options.reconnect ?? defaultReconnect)
    })
    yield* Effect.forkScoped(Stream.runForEach(discovery.changes, dialers.onChange))
    yield* events.publish(NodeEvent.Started({ name: options.name, peerId: identity.peerId, folder: folder.root, address: formatAddress(address) }))

    yield* purgeTrash
    // Peers are served while it runs: a file they want that is not scanned yet is
    // scanned first (ApplyRemote), and a part file a download is writing is left alone.
    const scanStarted = Date.now()
    const count = yield* scanAll
    yield* Deferred.succeed(scanned, undefined)
    yield* Effect.logInfo(`indexed ${count} files and folders in ${((Date.now() - scanStarted) / 1000).toFixed(1)} s`)
    // Old tombstones go, so deletions do not fill the index forever (a peer offline for
    // longer than the retention may bring such a file back: it is then a new file).
    yield* Effect.forkScoped(
      Effect.flatMap(index.dropTombstones(Date.now() - TOMBSTONE_RETENTION_DAYS * 86_400_000), (n) =>
        n > 0 ? Effect.logInfo(`forgot ${n} deletions older than ${TOMBSTONE_RETENTION_DAYS} days`) : Effect.void).pipe(
          Effect.repeat(Schedule.spaced(Duration.hours(24)))
        )
    )
    // Safety net for events no watcher reports (network filesystems, lost events): a
    // periodic rescan. Cheap: unchanged files are recognised by size, mtime and inode.
    yield* Effect.forkScoped(
      scanAll.pipe(Effect.delay(options.rescanInterval ?? FULL_RESCAN_INTERVAL), Effect.forever)
    )

    const node: SyncNodeApi = {
      address,
      peerId: identity.peerId,
      replicaId: index.replicaId,
      connectedPeers: Effect.sync(() => sessions.peers()),
      record: index.get,
      events: events.stream
    }
    return node
  })

/**
 * The node as a scoped layer: built, it has indexed the folder and is listening and
 * dialling; its scope's end stops everything. Provide it the services (`nodeLayer`,
 * `memoryNodeLayer`, or your own).
 *
 * @example
 * const program = Effect.gen(function*() {
 *   const node = yield* SyncNode
 *   yield* node.events.pipe(Stream.runForEach((e) => Console.log(e._tag)))
 * })
 * program.pipe(Effect.provide(layer(options).pipe(Layer.provide(services))))
 * @since 0.2.0
 * @category node
 */
export const layer = (options: NodeOptions) => Layer.scoped(SyncNode, startNode(options))
