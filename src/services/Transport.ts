import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { PeerAddress } from "../domain/Config.js"
import type { ConnectionClosed, TransportError } from "../domain/Errors.js"

/** A reliable, ordered byte stream to one remote (a TCP socket, or an in-memory pipe). */
export interface Connection {
  /** Remote IP (or memory host name), used for per-source rate limiting and logs. */
  readonly remoteHost: string
  readonly remoteLabel: string
  /** Next chunk of bytes, as the transport delivers them; fails once the stream has ended. */
  readonly read: Effect.Effect<Uint8Array, ConnectionClosed>
  /**
   * Queue bytes for sending, as one contiguous piece (several parts are written back to
   * back, gathered without copying where the transport can); waits while the transport
   * applies backpressure.
   */
  readonly write: (...parts: ReadonlyArray<Uint8Array>) => Effect.Effect<void, ConnectionClosed>
  /** Close both directions now. Idempotent. */
  readonly close: Effect.Effect<void>
}

/** Connections to and from peers: listen for them, or dial one. */
export interface TransportApi {
  /**
   * Listen for connections; each one is handed to `onConnection` in its own fiber,
   * and closed when that effect ends. Stops listening when the scope closes.
   * Returns the bound address (port 0 picks a free port).
   */
  readonly listen: (
    address: PeerAddress,
    onConnection: (connection: Connection) => Effect.Effect<void>
  ) => Effect.Effect<PeerAddress, TransportError, Scope.Scope>
  /** Dial a peer; the connection closes with the scope. */
  readonly dial: (address: PeerAddress) => Effect.Effect<Connection, TransportError, Scope.Scope>
}

/** The network. Layers: `TransportTcp` (the real one) and `TransportMemory` (in-process, for tests). */
export class Transport extends Context.Tag("dsync/Transport")<Transport, TransportApi>() {}
