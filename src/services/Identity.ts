import * as Context from "effect/Context"

/** This run's Ed25519 identity. Lives in memory only; never written anywhere. */
export interface IdentityApi {
  /** 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  /** Hex of the public key: the peer id advertised over mDNS. */
  readonly peerId: string
  readonly sign: (message: Uint8Array) => Uint8Array
}

/** This run's identity. The default layer is `IdentityEphemeral`: a new key pair each run. */
export class Identity extends Context.Tag("dsync/Identity")<Identity, IdentityApi>() {}

/** First 8 hex characters of a peer id, for logs. */
export const shortId = (peerId: string): string => peerId.slice(0, 8)
