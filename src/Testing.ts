import { Layer } from "effect"
import type { PeerAddress } from "./domain/Config.js"
import * as CipherNode from "./layers/CipherNode.js"
import * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
import * as FolderLocal from "./layers/FolderLocal.js"
import * as HandshakeGuardTokenBucket from "./layers/HandshakeGuardTokenBucket.js"
import * as HasherBlake3 from "./layers/HasherBlake3.js"
import * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
import * as IndexSqlite from "./layers/IndexSqlite.js"
import * as SecureChannelLive from "./layers/SecureChannelLive.js"
import * as TransportMemory from "./layers/TransportMemory.js"
import * as WatcherParcel from "./layers/WatcherParcel.js"

export interface MemoryNodeConfig {
  readonly network: TransportMemory.MemoryNetwork
  /** This node's host name on the memory network. */
  readonly host: string
  readonly root: string
  readonly peers: ReadonlyArray<PeerAddress>
  readonly excludes?: ReadonlyArray<string>
}

/**
 * The services of a node whose network is in memory (real folder, index and watcher):
 * several such nodes sync inside one process, with no sockets.
 */
export const memoryNodeLayer = (config: MemoryNodeConfig) =>
  Layer.mergeAll(
    SecureChannelLive.layer.pipe(Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer))),
    TransportMemory.layer(config.network, config.host),
    HandshakeGuardTokenBucket.layer(),
    HasherBlake3.layer,
    IndexSqlite.layer(config.root),
    FolderLocal.layer(config.root, config.excludes ?? []),
    WatcherParcel.layer,
    DiscoveryStatic.layer(config.peers)
  )

export { cutAll, makeNetwork, type MemoryNetwork } from "./layers/TransportMemory.js"
