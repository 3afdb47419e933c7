import { chacha20poly1305 } from "@noble/ciphers/chacha.js"
import * as Layer from "effect/Layer"
import { Cipher, TAG_BYTES } from "../services/Cipher.js"

/** Pure-JS ChaCha20-Poly1305: a fallback, and a cross-check of the node implementation. */
export const layer = Layer.succeed(Cipher, {
  name: "@noble/ciphers",
  seal: (key, nonce, plaintext) => chacha20poly1305(key, nonce).encrypt(plaintext),
  sealParts: (key, nonce, plaintext) => {
    const sealed = chacha20poly1305(key, nonce).encrypt(plaintext)
    return [sealed.subarray(0, plaintext.length), sealed.subarray(plaintext.length)]
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
