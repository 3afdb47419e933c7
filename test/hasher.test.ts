import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { layer as HasherBlake3 } from "../src/layers/HasherBlake3.js"
import { Hasher } from "../src/services/Hasher.js"

const bytes = (s: string) => new TextEncoder().encode(s)

layer(HasherBlake3)("HasherBlake3", (it) => {
  it.effect("matches the BLAKE3 test vectors", () =>
    Effect.gen(function*() {
      const hasher = yield* Hasher
      expect(hasher.hash(new Uint8Array(0))).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
      expect(hasher.hash(bytes("abc"))).toBe("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
    }))

  it.effect("hashParts equals the hash of the concatenation, and order matters", () =>
    Effect.gen(function*() {
      const hasher = yield* Hasher
      const parts = [bytes("hello "), new Uint8Array(0), bytes("block "), new Uint8Array(100_000).fill(7)]
      const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
      let at = 0
      for (const p of parts) {
        whole.set(p, at)
        at += p.length
      }
      expect(hasher.hashParts(parts)).toBe(hasher.hash(whole))
      expect(hasher.hashParts([bytes("ab"), bytes("c")])).toBe(hasher.hash(bytes("abc")))
      expect(hasher.hashParts([bytes("c"), bytes("ab")])).not.toBe(hasher.hash(bytes("abc")))
    }))

  it.effect("a hash does not leak state into the next one", () =>
    Effect.gen(function*() {
      const hasher = yield* Hasher
      const first = hasher.hash(bytes("abc"))
      hasher.hash(bytes("something else"))
      expect(hasher.hash(bytes("abc"))).toBe(first)
    }))
})

describe("HasherBlake3 layer", () => {
  it("is usable outside Effect.gen too", async () => {
    const api = await Effect.runPromise(Effect.provide(Hasher, HasherBlake3))
    expect(api.hash(bytes("abc"))).toMatch(/^6437b3ac/)
  })
})
