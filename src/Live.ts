import { Effect, Layer, type Stream } from "effect"
import { defaults, type NodeConfig, type PeerAddress } from "./domain/Config.js"
import type { RateLimits } from "./services/RateLimiter.js"
import { ConfigError } from "./domain/Errors.js"
import * as CipherNode from "./layers/CipherNode.js"
import * as CurvesNode from "./layers/CurvesNode.js"
import * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
import * as EventsPubSub from "./layers/EventsPubSub.js"
import * as FolderLocal from "./layers/FolderLocal.js"
import * as RateLimiterTokenBucket from "./layers/RateLimiterTokenBucket.js"
import * as HasherBlake3 from "./layers/HasherBlake3.js"
import * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
import * as IndexSqlite from "./layers/IndexSqlite.js"
import * as SecureChannelLive from "./layers/SecureChannelLive.js"
import * as TransferBlocks from "./layers/TransferBlocks.js"
import * as TransportTcp from "./layers/TransportTcp.js"
import * as WatcherParcel from "./layers/WatcherParcel.js"
import type { Discovery } from "./services/Discovery.js"
import type { Transport } from "./services/Transport.js"
import * as SyncNode from "./programs/SyncNode.js"
import type { NodeOptions } from "./programs/SyncNode.js"
import { Events, type NodeEvent } from "./services/Events.js"

/** One folder's settings for `nodeLayer`: where it is, what to skip, and how peers are found and trusted. */
export interface FolderSettings {
  readonly root: string
  readonly excludes: ReadonlyArray<string>
  /** Peers to dial (`-a`): used when no `discovery` layer is given. */
  readonly peers: ReadonlyArray<PeerAddress>
  /** How peers are found; default: dial `peers` (DiscoveryStatic). */
  readonly discovery?: Layer.Layer<Discovery>
  /** Transfer slots and bandwidth caps (defaults: 4 files at once, no cap). */
  readonly limits?: Partial<RateLimits>
  /** Shared-secret passphrase: only peers with the same one can complete a handshake. */
  readonly secret?: SecureChannelLive.SharedSecret
}

/**
 * Every service a node needs for one folder, over the given transport: the real
 * cipher, identity, index, watcher and ignore rules; peers (and the optional shared
 * secret) from the settings.
 */
export const nodeLayer = <E>(transport: Layer.Layer<Transport, E>, settings: FolderSettings) =>
  TransferBlocks.layer.pipe(Layer.provideMerge(Layer.mergeAll(
    (settings.secret === undefined ? SecureChannelLive.layer : SecureChannelLive.makeLayer({ secret: settings.secret })).pipe(
      Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer)),
      Layer.provideMerge(CurvesNode.layer)
    ),
    transport,
    RateLimiterTokenBucket.layer({ ...defaultLimits, ...settings.limits }),
    HasherBlake3.layer,
    IndexSqlite.layer(settings.root),
    FolderLocal.layer(settings.root, settings.excludes),
    WatcherParcel.layer,
    settings.discovery ?? DiscoveryStatic.layer(settings.peers),
    EventsPubSub.layer
  )))

const defaultLimits: RateLimits = {
  maxConcurrentTransfers: defaults.maxConcurrentTransfers,
  maxSendRate: defaults.maxSendRate,
  maxRecvRate: defaults.maxRecvRate
}

/** The real thing: TCP. */
export const liveLayer = (config: NodeConfig) =>
  nodeLayer(TransportTcp.layer, {
    root: config.root,
    excludes: config.excludes,
    peers: config.peers,
    limits: { maxConcurrentTransfers: config.maxConcurrentTransfers, maxSendRate: config.maxSendRate, maxRecvRate: config.maxRecvRate },
    ...(config.secret === undefined ? {} : { secret: config.secret })
  })

/** The library options of a node run from CLI settings. */
export const nodeOptions = (config: NodeConfig): NodeOptions => ({
  name: config.name,
  listen: { host: config.host, port: config.port },
})

/**
 * Run a node with `config` until interrupted (Ctrl-C, SIGTERM); `observe` gets every
 * event from before the node starts (the CLI renders them).
 */
export const runNode = (
  config: NodeConfig,
  observe: (events: Stream.Stream<NodeEvent>) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    if (config.discovery) {
      yield* Effect.logInfo("mDNS discovery is not in this version yet: dialling the peers given with -a / peer only")
    }
    if (config.secret !== undefined) {
      yield* Effect.logInfo("shared secret set: only peers with the same secret can connect")
    }
    yield* Effect.forkScoped(observe(yield* Effect.flatMap(Events, (events) => events.subscribe)))
    yield* Layer.build(SyncNode.layer(nodeOptions(config)))
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(liveLayer(config)),
    // a folder we cannot set up (read-only, no space) is the user's to fix: say so plainly
    Effect.catchTag("FsError", (e) => Effect.fail(new ConfigError({ message: e.message })))
  )
