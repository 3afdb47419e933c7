import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"

/**
 * What a running node reports, as typed values: the CLI renders them (log lines or a
 * live progress view), an embedding app reacts to them, tests assert on them. Paths
 * and names are as received: escape them (lib/Printable) before showing them raw.
 *
 * @since 0.2.0
 * @category events
 */
export type NodeEvent = Data.TaggedEnum<{
  /** The node is up: its name, id, folder and listen address. */
  Started: { readonly name: string; readonly peerId: string; readonly folder: string; readonly address: string }
  /** A session with a peer began (after the handshake and hellos). */
  PeerConnected: { readonly peerId: string; readonly name: string; readonly address: string }
  /** A session ended; `reason` says why (peer left, timeout, protocol error). */
  PeerDisconnected: { readonly peerId: string; readonly name: string; readonly address: string; readonly reason: string }
  /** A download began: `bytes` to write, of which `fetchBytes` come from the peer (the rest is local). */
  TransferStarted: { readonly path: string; readonly peerId: string; readonly bytes: number; readonly fetchBytes: number }
  /** Bytes received so far for a download in progress (at most a few times a second per file). */
  TransferProgress: { readonly path: string; readonly peerId: string; readonly received: number; readonly fetchBytes: number }
  /** A file, folder or symlink from a peer is in place. */
  FileReceived: {
    readonly path: string
    readonly peerId: string
    readonly kind: "file" | "dir" | "symlink"
    readonly bytes: number
    readonly fetchedBytes: number
    readonly durationMs: number
  }
  /** A download failed (it is tried again later). */
  TransferFailed: { readonly path: string; readonly peerId: string; readonly reason: string }
  /** We streamed a file to a peer. */
  FileSent: { readonly path: string; readonly peerId: string; readonly bytes: number; readonly durationMs: number }
  /** A peer's deletion was applied here (the content went to the trash). */
  FileDeleted: { readonly path: string; readonly peerId: string }
  /** Concurrent edits: ours was kept as `keptAs`. */
  ConflictKept: { readonly path: string; readonly keptAs: string }
  /** Something a peer sent was refused (unsafe path, bad numbers, ...). */
  Refused: { readonly peerId: string; readonly path: string; readonly reason: string }
  /** What is still to be pulled from peers: files and bytes. */
  Backlog: { readonly files: number; readonly bytes: number }
}>

/** Constructors and matchers for NodeEvent: `NodeEvent.FileReceived({...})`, `NodeEvent.$is("Refused")`. */
export const NodeEvent = Data.taggedEnum<NodeEvent>()

/**
 * The node's event hub. Publishing never blocks sync: each subscriber has a sliding
 * buffer, so a slow reader loses old events rather than stalling transfers.
 *
 * @since 0.2.0
 * @category events
 */
export interface EventsApi {
  readonly publish: (event: NodeEvent) => Effect.Effect<void>
  /** Every event published from when the stream starts running. */
  readonly stream: Stream.Stream<NodeEvent>
  /** Subscribe now (for the scope's life): the stream has every event from this moment, even before it runs. */
  readonly subscribe: Effect.Effect<Stream.Stream<NodeEvent>, never, Scope.Scope>
}

/**
 * The node's event hub; its default layer is `EventsPubSub`.
 *
 * @since 0.2.0
 * @category events
 */
export class Events extends Context.Tag("dsync/Events")<Events, EventsApi>() {}

/** Publish `event` on the node's hub (for programs that have no `Events` in hand). */
export const publish = (event: NodeEvent): Effect.Effect<void, never, Events> =>
  Effect.flatMap(Events, (events) => events.publish(event))
