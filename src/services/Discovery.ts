import { Context, Stream } from "effect"
import type { PeerAddress } from "../domain/Config.js"

/** A peer found: where to dial it and, when advertised, its id. */
export interface DiscoveredPeer {
  readonly address: PeerAddress
  /** The id the peer advertised, when known; the handshake must prove it. */
  readonly peerId?: string
}

/** Finds peers to dial. */
export interface DiscoveryApi {
  /** Each peer as it is found; a peer may appear again after it was lost. */
  readonly peers: Stream.Stream<DiscoveredPeer>
}

/** How the node finds peers. The default layer is `DiscoveryStatic` (the peers given by the user). */
export class Discovery extends Context.Tag("dsync/Discovery")<Discovery, DiscoveryApi>() {}
