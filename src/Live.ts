import { Effect, Layer } from "effect"
import type { NodeConfig } from "./domain/Config.js"
import { ConfigError } from "./domain/Errors.js"
import * as CipherNode from "./layers/CipherNode.js"
import * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
import * as FolderLocal from "./layers/FolderLocal.js"
import * as HandshakeGuardTokenBucket from "./layers/HandshakeGuardTokenBucket.js"
import * as HasherBlake3 from "./layers/HasherBlake3.js"
import * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
import * as IndexSqlite from "./layers/IndexSqlite.js"
import * as SecureChannelLive from "./layers/SecureChannelLive.js"
import * as TransportTcp from "./layers/TransportTcp.js"
import * as WatcherParcel from "./layers/WatcherParcel.js"
import { startNode } from "./programs/SyncNode.js"

/** Every service a node needs, with the real implementations, for one folder. */
export const liveLayer = (config: NodeConfig) =>
  Layer.mergeAll(
    SecureChannelLive.layer.pipe(Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer))),
    TransportTcp.layer,
    HandshakeGuardTokenBucket.layer(),
    HasherBlake3.layer,
    IndexSqlite.layer(config.root),
    FolderLocal.layer(config.root, config.excludes),
    WatcherParcel.layer,
    DiscoveryStatic.layer(config.peers)
  )

/** Run a node with `config` until interrupted (Ctrl-C, SIGTERM). */
export const runNode = (config: NodeConfig) =>
  Effect.gen(function*() {
    if (config.discovery) {
      yield* Effect.logInfo("mDNS discovery is not in this version yet: dialling the peers given with -a / peer only")
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
