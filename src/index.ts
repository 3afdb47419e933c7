/**
 * dsync as a library for Effect apps.
 *
 * - Run a node: `SyncNode.layer(options)` (scoped: the node lives as long as the layer)
 *   over the services from `nodeLayer(transport, settings)` (real folder, index,
 *   watcher, crypto) or `memoryNodeLayer(...)` (an in-memory network, for tests).
 * - Watch it: `SyncNode.SyncNode` gives the running node; its `events` are a Stream of
 *   `NodeEvent`s (peers, files received and sent, conflicts, refusals, progress).
 * - Swap parts: every service (transport, discovery, secure channel, cipher, curves,
 *   index, folder, watcher, hasher, transfer, rate limiter, events) is a Context tag
 *   with its layers; pass your own where `nodeLayer` takes one.
 *
 * @example
 * const node = SyncNode.layer({ name: "laptop", listen: { host: "0.0.0.0", port: 9000 } }).pipe(
 *   Layer.provide(nodeLayer(TransportTcp.layer, { root: "./shared", excludes: [], peers: [] }))
 * )
 * Effect.gen(function*() {
 *   const api = yield* SyncNode.SyncNode
 *   yield* Stream.runForEach(api.events, (e) => Console.log(e._tag))
 * }).pipe(Effect.provide(node), Effect.scoped, Effect.runFork)
 * @since 0.1.0
 */

// The node
export * as SyncNode from "./programs/SyncNode.js"
/** Options of `SyncNode.layer`: the node's name, listen address and timing overrides. */
export type { NodeOptions } from "./programs/SyncNode.js"
/** The running node as `SyncNode.SyncNode` gives it: address, ids, peers, records and events. */
export type { SyncNodeApi } from "./services/SyncNode.js"
export { Events, type EventsApi, NodeEvent } from "./services/Events.js"
export { discoveryLayer, type FolderSettings, liveLayer, nodeLayer, nodeOptions, runNode } from "./Live.js"
export { cutAll, makeNetwork, type MemoryNetwork, type MemoryNodeConfig, memoryNodeLayer, partition } from "./Testing.js"

// Data and errors
export { defaults, formatAddress, type NodeConfig, parseGroup, parseRate, type PeerAddress } from "./domain/Config.js"
export { ConfigError, ConnectionClosed, FsError, HandshakeError, ProtocolError, TransportError, UnsafePath } from "./domain/Errors.js"
export { type FileKind, FileRecord, MAX_BLOCKS, MAX_FILE_SIZE } from "./domain/FileRecord.js"
export * as Messages from "./domain/Messages.js"
export * as Reconcile from "./domain/Reconcile.js"
export * as VersionVector from "./domain/VersionVector.js"

// Services: tags and interfaces
export { Cipher, type CipherApi } from "./services/Cipher.js"
export { Curves, type CurvesApi } from "./services/Curves.js"
export {
  type DiscoveredPeer,
  Discovery,
  type DiscoveryApi,
  make as makeDiscovery,
  merge as mergeDiscovery,
  PeerChange
} from "./services/Discovery.js"
export { type BlockLocation, FileIndex, type FileIndexApi, type LocalRecord } from "./services/FileIndex.js"
export { Folder, type FolderApi, type IgnoreMatcher } from "./services/Folder.js"
export { HandshakeGuard, type HandshakeGuardApi, HandshakeRefused } from "./services/HandshakeGuard.js"
export { Hasher, type HasherApi } from "./services/Hasher.js"
export { Identity, type IdentityApi, shortId } from "./services/Identity.js"
export { RateLimiter, type RateLimiterApi, type RateLimits } from "./services/RateLimiter.js"
export { type Channel, SecureChannel, type SecureChannelApi } from "./services/SecureChannel.js"
export { type BlockSource, BlockUnavailable, Transfer, type TransferApi } from "./services/Transfer.js"
export { type Connection, Transport, type TransportApi } from "./services/Transport.js"
export { RESCAN_ALL, Watcher, type WatcherApi } from "./services/Watcher.js"

// Layers, one module per implementation
export * as CipherNode from "./layers/CipherNode.js"
export * as CipherNoble from "./layers/CipherNoble.js"
export * as CurvesNode from "./layers/CurvesNode.js"
export * as CurvesNoble from "./layers/CurvesNoble.js"
export * as DiscoveryMdns from "./layers/DiscoveryMdns.js"
export * as DiscoveryStatic from "./layers/DiscoveryStatic.js"
export * as EventsPubSub from "./layers/EventsPubSub.js"
export * as FolderLocal from "./layers/FolderLocal.js"
export * as HandshakeGuardTokenBucket from "./layers/HandshakeGuardTokenBucket.js"
export * as HasherBlake3 from "./layers/HasherBlake3.js"
export * as IdentityEphemeral from "./layers/IdentityEphemeral.js"
export * as IndexSqlite from "./layers/IndexSqlite.js"
export * as RateLimiterTokenBucket from "./layers/RateLimiterTokenBucket.js"
export * as SecureChannelLive from "./layers/SecureChannelLive.js"
export * as TransferBlocks from "./layers/TransferBlocks.js"
export * as TransportMemory from "./layers/TransportMemory.js"
export * as TransportTcp from "./layers/TransportTcp.js"
export * as WatcherParcel from "./layers/WatcherParcel.js"
