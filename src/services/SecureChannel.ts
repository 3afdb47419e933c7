import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { ConnectionClosed, HandshakeError, ProtocolError } from "../domain/Errors.js"
import type { Connection } from "./Transport.js"

/** An authenticated, encrypted, framed message pipe to one peer. */
export interface Channel {
  /** The peer's proven Ed25519 public key, hex. */
  readonly peerId: string
  readonly remoteLabel: string
  /** Seal and send one frame. Concurrent callers are serialised. `plaintext` may be reused once this completes. */
  readonly send: (plaintext: Uint8Array) => Effect.Effect<void, ConnectionClosed>
  /** Seal and send several frames, in order, in one write (a batch of small files). */
  readonly sendAll: (plaintexts: ReadonlyArray<Uint8Array>) => Effect.Effect<void, ConnectionClosed>
  /** Receive and open the next frame. Fails on tampering, oversize, or EOF. */
  readonly receive: Effect.Effect<Uint8Array, ConnectionClosed | ProtocolError>
  readonly close: Effect.Effect<void>
}

/** Turns a raw connection into a Channel: handshake, peer authentication, session keys. */
export interface SecureChannelApi {
  /** Run the initiator side of the handshake. `expectedPeerId` (from discovery) must match the proven key. */
  readonly initiate: (connection: Connection, expectedPeerId?: string) => Effect.Effect<Channel, HandshakeError>
  /** Run the responder side of the handshake. */
  readonly accept: (connection: Connection) => Effect.Effect<Channel, HandshakeError>
}

/** The secure channel. The default layer is `SecureChannelLive`. */
export class SecureChannel extends Context.Tag("dsync/SecureChannel")<SecureChannel, SecureChannelApi>() {}

/** Largest plaintext of one data frame: a block at the largest block size plus headers. */
export const MAX_FRAME_PLAINTEXT = 16 * 1024 * 1024 + 1024
/** Handshake frames are small and unencrypted. */
export const MAX_HANDSHAKE_FRAME = 1024
