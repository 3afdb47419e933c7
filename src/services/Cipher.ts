import * as Context from "effect/Context"

/**
 * ChaCha20-Poly1305 AEAD (RFC 8439): 32-byte key, 12-byte nonce, 16-byte tag appended.
 * Synchronous because it sits on the per-block hot path.
 */
export interface CipherApi {
  readonly name: string
  /** ciphertext || tag */
  readonly seal: (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array) => Uint8Array
  /**
   * The same bytes as `seal`, as [ciphertext, tag]: a caller that writes them out with a
   * gathering write saves copying the ciphertext into one buffer (the hot path).
   */
  readonly sealParts: (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array) => readonly [Uint8Array, Uint8Array]
  /** The plaintext, or undefined when the tag does not verify. */
  readonly open: (key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array) => Uint8Array | undefined
}

/** The AEAD sealing session frames. The default layer is `CipherNode` (OpenSSL); `CipherNoble` is pure JS. */
export class Cipher extends Context.Tag("dsync/Cipher")<Cipher, CipherApi>() {}

/** Poly1305 tag length: what sealing adds to a plaintext. */
export const TAG_BYTES = 16
/** Key length. */
export const KEY_BYTES = 32
/** Nonce length. */
export const NONCE_BYTES = 12
