import { type Cipher as NodeCipher, createCipheriv, createDecipheriv, type Decipher } from "node:crypto"
import { Layer } from "effect"
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

/** ChaCha20-Poly1305 through OpenSSL: the fast default. */
export const layer = Layer.succeed(Cipher, {
  name: "node:crypto",
  seal: (key, nonce, plaintext, headroom = 0) => {
    const cipher = createCipheriv(ALGORITHM, key, nonce, OPTIONS)
    const out = new Uint8Array(headroom + plaintext.length + TAG_BYTES) // headroom || ciphertext || tag
    transform(cipher, plaintext, out.subarray(headroom))
    cipher.final()
    out.set(cipher.getAuthTag(), headroom + plaintext.length)
    return out
  },
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
