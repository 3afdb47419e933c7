import { type Cipher as NodeCipher, createCipheriv, createDecipheriv, type Decipher } from "node:crypto"
import * as Layer from "effect/Layer"
import { Cipher, TAG_BYTES } from "../services/Cipher.js"

const ALGORITHM = "chacha20-poly1305"
const OPTIONS = { authTagLength: TAG_BYTES } as const
/**
 * Feed OpenSSL 1 MiB at a time, copying each piece into the output while it is still in cache:
 * measured ~1.8x faster on 16 MiB blocks than one `update` (which allocates a huge Buffer) plus a copy.
 */
const SLICE = 1024 * 1024

/** ChaCha20 is a stream cipher: `update` returns exactly as many bytes as it is given. */
const transform = (c: NodeCipher | Decipher, input: Uint8Array, out: Uint8Array) => {
  for (let at = 0; at < input.length; at += SLICE) out.set(c.update(input.subarray(at, at + SLICE)), at)
}

const sealParts = (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): readonly [Uint8Array, Uint8Array] => {
  const cipher = createCipheriv(ALGORITHM, key, nonce, OPTIONS)
  let ciphertext: Uint8Array
  if (plaintext.length <= SLICE) {
    ciphertext = cipher.update(plaintext) // one piece: keep OpenSSL's buffer, no copy
  } else {
    ciphertext = new Uint8Array(plaintext.length)
    transform(cipher, plaintext, ciphertext)
  }
  cipher.final()
  return [ciphertext, cipher.getAuthTag()]
}

/** ChaCha20-Poly1305 through OpenSSL: the fast default. */
export const layer = Layer.succeed(Cipher, {
  name: "node:crypto",
  seal: (key, nonce, plaintext) => {
    const [ciphertext, tag] = sealParts(key, nonce, plaintext)
    const out = new Uint8Array(ciphertext.length + TAG_BYTES)
    out.set(ciphertext)
    out.set(tag, ciphertext.length)
    return out
  },
  sealParts,
  open: (key, nonce, sealed) => {
    if (sealed.length < TAG_BYTES) return undefined
    const end = sealed.length - TAG_BYTES
    try {
      const decipher = createDecipheriv(ALGORITHM, key, nonce, OPTIONS)
      decipher.setAuthTag(sealed.subarray(end))
      let out: Uint8Array
      if (end <= SLICE) {
        out = decipher.update(sealed.subarray(0, end)) // one piece: keep OpenSSL's buffer, no copy
      } else {
        out = new Uint8Array(end)
        transform(decipher, sealed.subarray(0, end), out)
      }
      decipher.final() // throws when the tag does not verify; the plaintext is then discarded
      return out
    } catch {
      return undefined
    }
  }
})
