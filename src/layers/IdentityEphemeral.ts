import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Curves } from "../services/Curves.js"
import { Identity, type IdentityApi } from "../services/Identity.js"

/**
 * A fresh Ed25519 identity, kept only in this process's memory: its private key is a `Curves`
 * handle that is never exported. Which implementation signs is the `Curves` layer's choice
 * (CurvesNode, OpenSSL, by default).
 */
export const make: Effect.Effect<IdentityApi, never, Curves> = Effect.map(Curves, (curves) => {
  const { privateKey, publicKey } = curves.generateEd25519()
  return {
    publicKey,
    peerId: Buffer.from(publicKey).toString("hex"),
    sign: (message) => curves.sign(privateKey, message)
  }
})

/** The Identity service from {@link make}: one identity per build of the layer. */
export const layer: Layer.Layer<Identity, never, Curves> = Layer.effect(Identity, make)
