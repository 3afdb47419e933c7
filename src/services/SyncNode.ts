import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type { PeerAddress } from "../domain/Config.js"
import type { FileRecord } from "../domain/FileRecord.js"
import type { NodeEvent } from "./Events.js"

/**
 * A running dsync node, as its embedding app sees it. Its layer (`SyncNode.layer` in
 * programs/SyncNode.ts) owns the node's whole life: the node starts when the layer is
 * built and stops (listener, sessions, watcher, index) when the layer's scope closes.
 *
 * @since 0.2.0
 * @category node
 */
export interface SyncNodeApi {
  /** Where the node listens (the actual port when 0 was asked for). */
  readonly address: PeerAddress
  /** This run's Ed25519 public key, hex: what peers see. */
  readonly peerId: string
  /** The folder replica's id, kept in its index across runs. */
  readonly replicaId: string
  /** Peer ids with a live session. */
  readonly connectedPeers: Effect.Effect<ReadonlyArray<string>>
  /** What the index holds for a folder-relative path (tombstones included). */
  readonly record: (relPath: string) => Effect.Effect<Option.Option<FileRecord>>
  /** What happens from now on: peers, files received and sent, conflicts, refusals, progress. */
  readonly events: Stream.Stream<NodeEvent>
}

/**
 * @since 0.2.0
 * @category node
 */
export class SyncNode extends Context.Tag("dsync/SyncNode")<SyncNode, SyncNodeApi>() {}
