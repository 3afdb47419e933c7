import { createBLAKE3 } from "hash-wasm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Hasher } from "../services/Hasher.js"

/**
 * BLAKE3 through hash-wasm. The WASM instance is created once (that part is async);
 * afterwards init/update/digest are synchronous, so each call below runs start to
 * finish without yielding and the single shared instance is never interleaved.
 */
export const layer: Layer.Layer<Hasher> = Layer.effect(
  Hasher,
  Effect.map(Effect.promise(() => createBLAKE3()), (blake3) => ({
    hash: (data) => blake3.init().update(data).digest("hex"),
    hashParts: (parts) => {
      const h = blake3.init()
      for (const part of parts) h.update(part)
      return h.digest("hex")
    }
  }))
)
