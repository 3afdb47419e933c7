import { Effect, Layer } from "effect"
import type { NodeConfig, PeerAddress } from "./domain/Config.js"
import { ConfigError } from "./domain/Errors.js"
import * as CipherNode from "./layers/CipherNode.js"
import * as CurvesNode from "./layers/CurvesNode.js"
import * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
import * as FolderLocal from "./layers/FolderLocal.js"
import * as HandshakeGuardTokenBucket from "./layers/HandshakeGuardTokenBucket.js"
import * as HasherBlake3 from "./layers/HasherBlake3.js"
import * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
import * as IndexSqlite from "./layers/IndexSqlite.js"
import * as SecureChannelLive from "./layers/SecureChannelLive.js"
import * as TransportTcp from "./layers/TransportTcp.js"
import * as WatcherParcel from "./layers/WatcherParcel.js"
import type { Transport } from "./services/Transport.js"
import { startNode } from "./programs/SyncNode.js"

export interface FolderSettings {
  readonly root: string
  readonly excludes: ReadonlyArray<string>
  readonly peers: ReadonlyArray<PeerAddress>
  /** Shared-secret passphrase: only peers with the same one can complete a handshake. */
  readonly secret?: SecureChannelLive.SharedSecret
}

/**
 * Every service a node needs for one folder, over the given transport: the real
 * cipher, identity, index, watcher and ignore rules; peers (and the optional shared
 * secret) from the settings.
 */
export const nodeLayer = <E>(transport: Layer.Layer<Transport, E>, settings: FolderSettings) =>
  Layer.mergeAll(
    (settings.secret === undefined ? SecureChannelLive.layer : SecureChannelLive.makeLayer({ secret: settings.secret })).pipe(
      Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer)),
      Layer.provideMerge(CurvesNode.layer)
    ),
    transport,
    HandshakeGuardTokenBucket.layer(),
    HasherBlake3.layer,
    IndexSqlite.layer(settings.root),
    FolderLocal.layer(settings.root, settings.excludes),
    WatcherParcel.layer,
    DiscoveryStatic.layer(settings.peers)
  )

/** The real thing: TCP. */
export const liveLayer = (config: NodeConfig) => nodeLayer(TransportTcp.layer, config)

/** Run a node with `config` until interrupted (Ctrl-C, SIGTERM). */
export const runNode = (config: NodeConfig) =>
  Effect.gen(function*() {
    if (config.discovery) {
      yield* Effect.logInfo("mDNS discovery is not in this version yet: dialling the peers given with -a / peer only")
    }
    if (config.secret !== undefined) {
      yield* Effect.logInfo("shared secret set: only peers with the same secret can connect")
    }
    yield* startNode({
      name: config.name,
      listen: { host: config.host, port: config.port },
      maxConcurrentTransfers: config.maxConcurrentTransfers
    })
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(liveLayer(config)),
    // a folder we cannot set up (read-only, no space) is the user's to fix: say so plainly
    Effect.catchTag("FsError", (e) => Effect.fail(new ConfigError({ message: e.message })))
  )
