import { chacha20poly1305 } from "@noble/ciphers/chacha.js"
import { Layer } from "effect"
import { Cipher, TAG_BYTES } from "../services/Cipher.js"

/** Pure-JS ChaCha20-Poly1305: a fallback, and a cross-check of the node implementation. */
export const layer = Layer.succeed(Cipher, {
  name: "@noble/ciphers",
  seal: (key, nonce, plaintext, headroom = 0) => {
    const sealed = chacha20poly1305(key, nonce).encrypt(plaintext)
    if (headroom === 0) return sealed
    const out = new Uint8Array(headroom + sealed.length)
    out.set(sealed, headroom)
    return out
  },
  open: (key, nonce, sealed) => {
    if (sealed.length < TAG_BYTES) return undefined
    try {
      return chacha20poly1305(key, nonce).decrypt(sealed)
    } catch {
      return undefined // tag mismatch
    }
  }
})
