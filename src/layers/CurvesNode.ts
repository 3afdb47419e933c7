import {
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify
} from "node:crypto"
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

// Raw 32-byte public keys go in and out of OpenSSL as JWK (`x` is the key, base64url): measured
// here (Node 20, OpenSSL 3.0) about 11x faster to import and 70x faster to export than DER
// SubjectPublicKeyInfo, which goes through OpenSSL 3's decoder framework (~0.5 ms a handshake).
const importPublic = (crv: "X25519" | "Ed25519", raw: Uint8Array): KeyObject => {
  const x = Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString("base64url")
  return createPublicKey({ key: { kty: "OKP", crv, x }, format: "jwk" })
}

const exportPublic = (publicKey: KeyObject): Uint8Array =>
  new Uint8Array(Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url"))

class NodeX25519Key implements X25519PrivateKey {
  readonly [PrivateKeyTypeId] = "X25519" as const
  constructor(readonly key: KeyObject) {}
}

class NodeEd25519Key implements Ed25519PrivateKey {
  readonly [PrivateKeyTypeId] = "Ed25519" as const
  constructor(readonly key: KeyObject) {}
}

const foreign = (what: string): never => foreignKey(what, "node:crypto")

const generateX25519 = () => {
  const { privateKey, publicKey } = generateKeyPairSync("x25519")
  return { publicKey: exportPublic(publicKey), privateKey: new NodeX25519Key(privateKey) }
}

const sharedSecret = (privateKey: X25519PrivateKey, peerPublicKey: Uint8Array): Uint8Array | undefined => {
  const own = privateKey instanceof NodeX25519Key ? privateKey.key : foreign("an X25519")
  if (peerPublicKey.length !== X25519_BYTES) return undefined
  let secret: Buffer
  try {
    secret = diffieHellman({ privateKey: own, publicKey: importPublic("X25519", peerPublicKey) })
  } catch {
    return undefined // OpenSSL 3 refuses the low-order points itself ("failed during derivation")
  }
  return isAllZero(secret) ? undefined : new Uint8Array(secret)
}

const generateEd25519 = () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519")
  return { publicKey: exportPublic(publicKey), privateKey: new NodeEd25519Key(privateKey) }
}

const sign = (privateKey: Ed25519PrivateKey, message: Uint8Array): Uint8Array =>
  new Uint8Array(nodeSign(null, message, privateKey instanceof NodeEd25519Key ? privateKey.key : foreign("an Ed25519")))

/**
 * The y-coordinates (little-endian, sign bit clear) of the 8 points of small order: 0, 1, p-1
 * and the two of order 8. A public key with one of these y, either sign bit, is refused.
 */
const SMALL_ORDER_Y = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
].map((hex) => Buffer.from(hex, "hex"))

/**
 * What OpenSSL does not check and RFC 8032 (strict) and @noble/curves do: the key's y is below
 * p = 2^255 - 19 (a canonical encoding), and the point is not of small order. OpenSSL accepts
 * a small-order key with the signature (R = identity, S = 0) for every message (checked with
 * OpenSSL 3.0): such a key proves nothing, so it is refused here as in CurvesNoble.
 */
const strictPublicKey = (publicKey: Uint8Array): boolean => {
  const y = Buffer.from(publicKey)
  y[31]! &= 0x7f
  // y >= p only when y is p..2^255-1: ed ff .. ff 7f and above
  let high = y[31] === 0x7f && y[0]! >= 0xed
  for (let i = 1; high && i < 31; i++) high = y[i] === 0xff
  if (high) return false
  return !SMALL_ORDER_Y.some((bad) => bad.equals(y))
}

const verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
  if (publicKey.length !== ED25519_PUBLIC_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return false
  if (!strictPublicKey(publicKey)) return false
  try {
    // OpenSSL itself refuses S >= L and a non-canonical R (it compares R's encoding).
    return nodeVerify(null, message, importPublic("Ed25519", publicKey), signature)
  } catch {
    return false // not a point on the curve
  }
}

/** The node:crypto implementation as a plain value (what `layer` provides). */
export const curves: CurvesApi = { name: "node:crypto", generateX25519, sharedSecret, generateEd25519, sign, verify }

/**
 * X25519 and Ed25519 through OpenSSL: the default, 10-30x faster than the pure-JS
 * CurvesNoble (design.md section 1).
 */
export const layer: Layer.Layer<Curves> = Layer.succeed(Curves, curves)
