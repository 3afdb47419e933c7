import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { PeerAddress } from "../domain/Config.js"

/** A peer found: where to dial it and, when advertised, its id. */
export interface DiscoveredPeer {
  readonly address: PeerAddress
  /** The id the peer advertised, when known; the handshake must prove it. */
  readonly peerId?: string
  /** The name it announced itself under (mDNS instance name), for logs. */
  readonly name?: string
}

/**
 * What discovery reports, in order: a peer found (again, or at a new address), or a peer
 * lost (it said goodbye, or stopped answering): stop dialling it, it may be found again.
 */
export type PeerChange = Data.TaggedEnum<{
  Found: { readonly peer: DiscoveredPeer }
  Lost: { readonly peerId: string }
}>

/** Constructors and matchers of PeerChange. */
export const PeerChange = Data.taggedEnum<PeerChange>()

/** Finds peers to dial. */
export interface DiscoveryApi {
  /** Each peer as it is found; a peer may appear again after it was lost. */
  readonly peers: Stream.Stream<DiscoveredPeer>
  /** Found and lost peers, in the order they happened; starts with the peers known now. */
  readonly changes: Stream.Stream<PeerChange>
  /** The node lost a peer it had found (its session ended, or a dial failed): look for it again soon. */
  readonly peerLost: (peerId: string) => Effect.Effect<void>
}

/** How the node finds peers. The default layer is `DiscoveryStatic` (the peers given by the user). */
export class Discovery extends Context.Tag("dsync/Discovery")<Discovery, DiscoveryApi>() {}

/**
 * A DiscoveryApi from what an implementation has: `changes` defaults to `peers`, each
 * found for good; `peerLost` to nothing.
 */
export const make = (impl: {
  readonly peers: Stream.Stream<DiscoveredPeer>
  readonly changes?: Stream.Stream<PeerChange>
  readonly peerLost?: (peerId: string) => Effect.Effect<void>
}): DiscoveryApi => ({
  peers: impl.peers,
  changes: impl.changes ?? Stream.map(impl.peers, (peer) => PeerChange.Found({ peer })),
  peerLost: impl.peerLost ?? (() => Effect.void)
})

/** Both discoveries at once (e.g. the `-a` peers and mDNS): their peers and changes merged, `peerLost` told to both. */
export const merge = (a: DiscoveryApi, b: DiscoveryApi): DiscoveryApi => ({
  peers: Stream.merge(a.peers, b.peers),
  changes: Stream.merge(a.changes, b.changes),
  peerLost: (peerId) => Effect.zipRight(a.peerLost(peerId), b.peerLost(peerId))
})
