/**
 * Young-generation collections for the CLI's process, as the cipher's buffers come and
 * go (a library leaves its host's heap alone). Apart from HeapGrowth, which runs at
 * start-up: this loads with the node only, not for --version or --help.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as CipherNode from "../layers/CipherNode.js"
import { Cipher, type CipherApi } from "../services/Cipher.js"

/**
 * Buffers the cipher makes (each frame sealed or opened: 512 KiB apiece for a large
 * file) after which the young generation is collected. They die at once, but each is a
 * small object in the young generation holding a large one outside the heap, so V8 sees
 * little to collect there and lets them pile up until the external memory forces a full
 * collection. Measured on 1 GiB, both nodes started: the receiver's peak RSS 129-137 ->
 * 110-117 MiB and its CPU 7.4-8.0 -> 5.2-5.9 s (fewer full collections), 7.5-8.0 ->
 * 5.9-6.4 s in all; 10,000 small files unchanged. 16 MiB kept most of the pile
 * (129-133 MiB).
 */
export const CHURN_BYTES = 4 * 1024 * 1024

/**
 * A young-generation collection on demand: `--expose-gc` set at run time reaches only
 * contexts made after it, so `gc` is taken from a new one. Undefined where that fails.
 */
export const youngCollection = (): (() => void) | undefined => {
  try {
    setFlagsFromString("--expose-gc")
    const gc: unknown = runInNewContext("gc")
    return typeof gc === "function" ? () => gc({ type: "minor" }) : undefined
  } catch {
    return undefined
  }
}

/**
 * `cipher`, with `collect` run once every `churnBytes` of buffers it makes, on a turn of
 * the event loop of its own (setImmediate): not inside a seal or an open, while the
 * frame at hand and its buffers are still in use.
 */
export const withYoungCollections = (collect: () => void, churnBytes = CHURN_BYTES) => (cipher: CipherApi): CipherApi => {
  let churn = 0
  let scheduled = false
  const made = (bytes: number) => {
    churn += bytes
    if (churn < churnBytes || scheduled) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      churn = 0
      collect()
    })
  }
  return {
    name: cipher.name,
    seal: (key, nonce, plaintext) => {
      made(plaintext.length)
      return cipher.seal(key, nonce, plaintext)
    },
    sealParts: (key, nonce, plaintext) => {
      made(plaintext.length)
      return cipher.sealParts(key, nonce, plaintext)
    },
    open: (key, nonce, sealed) => {
      const plaintext = cipher.open(key, nonce, sealed)
      if (plaintext !== undefined) made(plaintext.length)
      return plaintext
    }
  }
}

/** OpenSSL's cipher (CipherNode) with young collections as its buffers come and go; without, where `gc` cannot be had. */
export const collectingCipherLayer = (): Layer.Layer<Cipher> => {
  const collect = youngCollection()
  if (collect === undefined) return CipherNode.layer
  return Layer.effect(Cipher, Effect.map(Cipher, withYoungCollections(collect))).pipe(Layer.provide(CipherNode.layer))
}
