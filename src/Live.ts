import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Stream from "effect/Stream"
import { defaults, type NodeConfig, type PeerAddress } from "./domain/Config.js"
import type { RateLimits } from "./services/RateLimiter.js"
import { ConfigError } from "./domain/Errors.js"
import * as CipherNode from "./layers/CipherNode.js"
import * as CurvesNode from "./layers/CurvesNode.js"
import * as DiscoveryMdns from "./layers/DiscoveryMdns.js"
import * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
import * as EventsPubSub from "./layers/EventsPubSub.js"
import * as UpcomingPubSub from "./layers/UpcomingPubSub.js"
import * as FolderLocal from "./layers/FolderLocal.js"
import * as RateLimiterTokenBucket from "./layers/RateLimiterTokenBucket.js"
import * as HasherBlake3 from "./layers/HasherBlake3.js"
import * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
import * as IndexSqlite from "./layers/IndexSqlite.js"
import * as SecureChannelLive from "./layers/SecureChannelLive.js"
import * as TransferBlocks from "./layers/TransferBlocks.js"
import * as TransportTcp from "./layers/TransportTcp.js"
import * as WatcherParcel from "./layers/WatcherParcel.js"
import { Discovery, merge as mergeDiscovery } from "./services/Discovery.js"
import type { Cipher } from "./services/Cipher.js"
import type { Identity } from "./services/Identity.js"
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
  /** How peers are found (it may use the node's Identity); default: dial `peers` (DiscoveryStatic). */
  readonly discovery?: Layer.Layer<Discovery, ConfigError, Identity>
  /** Transfer slots and bandwidth caps (defaults: 4 files at once, no cap). */
  readonly limits?: Partial<RateLimits>
  /** Shared-secret passphrase: only peers with the same one can complete a handshake. */
  readonly secret?: SecureChannelLive.SharedSecret
  /** Group (as parseGroup returns it): only peers of the same group complete a handshake. */
  readonly group?: string
  /** The AEAD sealing session frames; default CipherNode (OpenSSL). */
  readonly cipher?: Layer.Layer<Cipher>
}

/**
 * Every service a node needs for one folder, over the given transport: the real
 * cipher, identity, index, watcher and ignore rules; peers (and the optional shared
 * secret) from the settings.
 */
export const nodeLayer = <E>(transport: Layer.Layer<Transport, E>, settings: FolderSettings) =>
  TransferBlocks.layer.pipe(Layer.provideMerge(Layer.mergeAll(
    SecureChannelLive.makeLayer({
      ...(settings.secret === undefined ? {} : { secret: settings.secret }),
      ...(settings.group === undefined ? {} : { group: settings.group })
    }),
    transport,
    RateLimiterTokenBucket.layer({ ...defaultLimits, ...settings.limits }),
    HasherBlake3.layerWithWorkers(),
    IndexSqlite.layer(settings.root),
    FolderLocal.layer(settings.root, settings.excludes),
    WatcherParcel.layer,
    settings.discovery ?? DiscoveryStatic.layer(settings.peers),
    EventsPubSub.layer,
    UpcomingPubSub.layer
  )), Layer.provideMerge(Layer.merge(settings.cipher ?? CipherNode.layer, IdentityEphemeral.layer).pipe(Layer.provideMerge(CurvesNode.layer))))

const defaultLimits: RateLimits = {
  maxConcurrentTransfers: defaults.maxConcurrentTransfers,
  maxSendRate: defaults.maxSendRate,
  maxRecvRate: defaults.maxRecvRate
}

/** mDNS discovery (when on) together with the `-a` peers; the `-a` peers alone otherwise. */
export const discoveryLayer = (config: NodeConfig): Layer.Layer<Discovery, ConfigError, Identity> =>
  config.discovery
    ? Layer.scoped(
      Discovery,
      Effect.map(
        DiscoveryMdns.make({
          name: config.name,
          port: config.port,
          ...(config.group === undefined ? {} : { group: config.group }),
          ...(config.interfaces === undefined ? {} : { interfaces: config.interfaces })
        }),
        (mdns) => mergeDiscovery(DiscoveryStatic.make(config.peers), mdns)
      )
    )
    : DiscoveryStatic.layer(config.peers)

/** The real thing: TCP, and mDNS discovery unless it is off; `cipher` as in FolderSettings. */
export const liveLayer = (config: NodeConfig, cipher?: Layer.Layer<Cipher>) =>
  nodeLayer(TransportTcp.layer, {
    ...(cipher === undefined ? {} : { cipher }),
    root: config.root,
    excludes: config.excludes,
    peers: config.peers,
    discovery: discoveryLayer(config),
    limits: { maxConcurrentTransfers: config.maxConcurrentTransfers, maxSendRate: config.maxSendRate, maxRecvRate: config.maxRecvRate },
    ...(config.secret === undefined ? {} : { secret: config.secret }),
    ...(config.group === undefined ? {} : { group: config.group })
  })

/** The library options of a node run from CLI settings. */
export const nodeOptions = (config: NodeConfig): NodeOptions => ({
  name: config.name,
  listen: { host: config.host, port: config.port },
})

/**
 * Run a node with `config` until interrupted (Ctrl-C, SIGTERM); `observe` gets every
 * event from before the node starts (the CLI renders them); `cipher` as in FolderSettings.
 */
export const runNode = (
  config: NodeConfig,
  observe: (events: Stream.Stream<NodeEvent>) => Effect.Effect<void> = () => Effect.void,
  cipher?: Layer.Layer<Cipher>
) =>
  Effect.gen(function*() {
    if (config.group !== undefined) {
      yield* Effect.logInfo(`group ${config.group}: only peers of this group can connect`)
    }
    if (config.secret !== undefined) {
      yield* Effect.logInfo("shared secret set: only peers with the same secret can connect")
    }
    yield* Effect.forkScoped(observe(yield* Effect.flatMap(Events, (events) => events.subscribe)))
    yield* Layer.build(SyncNode.layer(nodeOptions(config)))
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(liveLayer(config, cipher)),
    // a folder we cannot set up (read-only, no space) is the user's to fix: say so plainly
    Effect.catchTag("FsError", (e) => Effect.fail(new ConfigError({ message: e.message })))
  )
