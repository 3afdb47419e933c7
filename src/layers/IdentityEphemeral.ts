import { generateKeyPairSync, sign } from "node:crypto"
import { Effect, Layer } from "effect"
import { Identity, type IdentityApi } from "../services/Identity.js"

/** A fresh Ed25519 identity, kept only in this process's memory. */
export const make: Effect.Effect<IdentityApi> = Effect.sync(() => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519")
  // The JWK `x` member is the raw 32-byte public key, base64url.
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url")
  return {
    publicKey: new Uint8Array(raw),
    peerId: raw.toString("hex"),
    // node:crypto (OpenSSL) signs and verifies much faster than pure JS.
    sign: (message) => new Uint8Array(sign(null, message, privateKey))
  }
})

export const layer: Layer.Layer<Identity> = Layer.effect(Identity, make)
