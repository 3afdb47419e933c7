import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import * as Layer from "effect/Layer"
import {
  Curves,
  type CurvesApi,
  ED25519_PUBLIC_BYTES,
  ED25519_SIGNATURE_BYTES,
  type Ed25519PrivateKey,
  foreignKey,
  isAllZero,
  PrivateKeyTypeId,
  X25519_BYTES,
  type X25519PrivateKey
} from "../services/Curves.js"

class NobleX25519Key implements X25519PrivateKey {
  readonly [PrivateKeyTypeId] = "X25519" as const
  constructor(readonly secretKey: Uint8Array) {}
}

class NobleEd25519Key implements Ed25519PrivateKey {
  readonly [PrivateKeyTypeId] = "Ed25519" as const
  constructor(readonly secretKey: Uint8Array) {}
}

const foreign = (what: string): never => foreignKey(what, "@noble/curves")

const generateX25519 = () => {
  const { publicKey, secretKey } = x25519.keygen()
  return { publicKey, privateKey: new NobleX25519Key(secretKey) }
}

const sharedSecret = (privateKey: X25519PrivateKey, peerPublicKey: Uint8Array): Uint8Array | undefined => {
  const own = privateKey instanceof NobleX25519Key ? privateKey.secretKey : foreign("an X25519")
  if (peerPublicKey.length !== X25519_BYTES) return undefined
  try {
    const secret = x25519.getSharedSecret(own, peerPublicKey)
    return isAllZero(secret) ? undefined : secret
  } catch {
    return undefined // noble refuses the low-order points itself ("invalid private or public key received")
  }
}

const generateEd25519 = () => {
  const { publicKey, secretKey } = ed25519.keygen()
  return { publicKey, privateKey: new NobleEd25519Key(secretKey) }
}

const sign = (privateKey: Ed25519PrivateKey, message: Uint8Array): Uint8Array =>
  ed25519.sign(message, privateKey instanceof NobleEd25519Key ? privateKey.secretKey : foreign("an Ed25519"))

const verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
  if (publicKey.length !== ED25519_PUBLIC_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return false
  try {
    // zip215: false is RFC 8032 strict: canonical encodings only, and no small-order key.
    return ed25519.verify(signature, message, publicKey, { zip215: false })
  } catch {
    return false // noble throws on malformed arguments; a peer's bytes must never make us throw
  }
}

/** The @noble/curves implementation as a plain value (what `layer` provides). */
export const curves: CurvesApi = { name: "@noble/curves", generateX25519, sharedSecret, generateEd25519, sign, verify }

/**
 * Pure-JS X25519 and Ed25519 (@noble/curves): portable (no OpenSSL needed), a cross-check of
 * CurvesNode, and 10-30x slower than it (design.md section 1).
 */
export const layer: Layer.Layer<Curves> = Layer.succeed(Curves, curves)
