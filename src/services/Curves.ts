import * as Context from "effect/Context"

/**
 * Marks the private-key handles of {@link CurvesApi}: only the layer that made a handle knows
 * what is inside it (a node:crypto `KeyObject`, or raw bytes for the pure-JS layer).
 */
export const PrivateKeyTypeId: unique symbol = Symbol.for("dsync/Curves/PrivateKey")

/** The type of {@link PrivateKeyTypeId}. */
export type PrivateKeyTypeId = typeof PrivateKeyTypeId

/**
 * An X25519 private key, opaque. Usable only with the `Curves` implementation that made it
 * (another one refuses it as a defect); never serialised, never leaves memory.
 */
export interface X25519PrivateKey {
  readonly [PrivateKeyTypeId]: "X25519"
}

/** An Ed25519 private key, opaque; usable only with the `Curves` implementation that made it. */
export interface Ed25519PrivateKey {
  readonly [PrivateKeyTypeId]: "Ed25519"
}

/** A fresh X25519 key pair: the 32-byte public key (RFC 7748 u-coordinate) and its private handle. */
export interface X25519KeyPair {
  readonly publicKey: Uint8Array
  readonly privateKey: X25519PrivateKey
}

/** A fresh Ed25519 key pair: the 32-byte public key (RFC 8032 encoding) and its private handle. */
export interface Ed25519KeyPair {
  readonly publicKey: Uint8Array
  readonly privateKey: Ed25519PrivateKey
}

/**
 * Key exchange (X25519, RFC 7748) and signatures (Ed25519, RFC 8032). Synchronous, like
 * `CipherApi`: each call is a fraction of a millisecond to a millisecond of CPU. Implementations agree on every input: public keys and signatures made
 * by one are accepted by the other, and both refuse the same malformed ones.
 */
export interface CurvesApi {
  /** Which implementation this is, for logs and benchmarks. */
  readonly name: string
  /** A fresh ephemeral X25519 key pair. */
  readonly generateX25519: () => X25519KeyPair
  /**
   * The 32-byte X25519 shared secret of our private key and a peer's public key; undefined
   * when the peer's key is not 32 bytes or is a low-order point (the result would be all
   * zeros, a secret anyone knows). Never throws for any peer input.
   */
  readonly sharedSecret: (privateKey: X25519PrivateKey, peerPublicKey: Uint8Array) => Uint8Array | undefined
  /** A fresh Ed25519 key pair. */
  readonly generateEd25519: () => Ed25519KeyPair
  /** The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032). */
  readonly sign: (privateKey: Ed25519PrivateKey, message: Uint8Array) => Uint8Array
  /**
   * Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`, with the
   * strict RFC 8032 checks: a wrong length, a key or signature part that is not a canonical
   * encoding of a point, an `S` not below the group order, and a small-order public key
   * (which anyone can "sign" for) all give false. Never throws for any input.
   */
  readonly verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
}

/** X25519 and Ed25519. The default layer is `CurvesNode` (OpenSSL); `CurvesNoble` is pure JS. */
export class Curves extends Context.Tag("dsync/Curves")<Curves, CurvesApi>() {}

/** Bytes of an X25519 public key or shared secret. */
export const X25519_BYTES = 32
/** Bytes of an Ed25519 public key. */
export const ED25519_PUBLIC_BYTES = 32
/** Bytes of an Ed25519 signature. */
export const ED25519_SIGNATURE_BYTES = 64

/** True when every byte is zero (constant time in the length). */
export const isAllZero = (bytes: Uint8Array): boolean => {
  let any = 0
  for (let i = 0; i < bytes.length; i++) any |= bytes[i]!
  return any === 0
}

/**
 * A private-key handle made by another Curves implementation: our caller's bug, not a
 * peer's input, so a defect (thrown), never a result.
 */
export const foreignKey = (what: string, implementation: string): never => {
  throw new Error(`${what} private key from another Curves implementation (this one is ${implementation})`)
}
