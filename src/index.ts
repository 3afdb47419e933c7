/**
 * dsync as a library: the services (Context tags and their interfaces), the layers that
 * implement them, and the programs that run a node. An Effect app can run a node with
 * `runNode(config)`, or assemble its own layers around `startNode`.
 */
export * from "./domain/Config.js"
export * from "./domain/Errors.js"
export * from "./domain/FileRecord.js"
export * as Messages from "./domain/Messages.js"
export * as Reconcile from "./domain/Reconcile.js"
export * as VersionVector from "./domain/VersionVector.js"

export * from "./services/Cipher.js"
export * from "./services/Discovery.js"
export * from "./services/FileIndex.js"
export * from "./services/Folder.js"
export * from "./services/HandshakeGuard.js"
export * from "./services/Hasher.js"
export * from "./services/Identity.js"
export * from "./services/SecureChannel.js"
export * from "./services/Transport.js"
export * from "./services/Watcher.js"

export * as CipherNode from "./layers/CipherNode.js"
export * as CipherNoble from "./layers/CipherNoble.js"
export * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
export * as FolderLocal from "./layers/FolderLocal.js"
export * as HandshakeGuardTokenBucket from "./layers/HandshakeGuardTokenBucket.js"
export * as HasherBlake3 from "./layers/HasherBlake3.js"
export * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
export * as IndexSqlite from "./layers/IndexSqlite.js"
export * as SecureChannelLive from "./layers/SecureChannelLive.js"
export * as TransportMemory from "./layers/TransportMemory.js"
export * as TransportTcp from "./layers/TransportTcp.js"
export * as WatcherParcel from "./layers/WatcherParcel.js"

export { startNode, type NodeHandle, type NodeOptions } from "./programs/SyncNode.js"
export { type FolderSettings, liveLayer, nodeLayer, runNode } from "./Live.js"
export { memoryNodeLayer, type MemoryNodeConfig } from "./Testing.js"
