import { describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { Effect } from "effect"
import * as CipherNoble from "../src/layers/CipherNoble.js"
import * as CipherNode from "../src/layers/CipherNode.js"
import { Cipher, type CipherApi } from "../src/services/Cipher.js"

const both = Effect.all([
  Effect.provide(Cipher, CipherNode.layer),
  Effect.provide(Cipher, CipherNoble.layer)
])

const bytes = (n: number) => new Uint8Array(randomBytes(n))
const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0

describe("Cipher", () => {
  it.effect("RFC 8439 test vector (2.8.2) without AAD matches both implementations", () =>
    Effect.gen(function*() {
      // Key and nonce from RFC 8439 §2.8.2; both must agree with each other and round-trip.
      const key = new Uint8Array(Buffer.from("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "hex"))
      const nonce = new Uint8Array(Buffer.from("070000004041424344454647", "hex"))
      const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99")
      const [node, noble] = yield* both
      const a = node.seal(key, nonce, plaintext)
      expect(a.length).toBe(plaintext.length + 16)
      // First ciphertext bytes from the RFC (keystream does not depend on AAD).
      expect(Buffer.from(a.subarray(0, 8)).toString("hex")).toBe("d31a8d34648e60db")
      expect(same(noble.seal(key, nonce, plaintext), a)).toBe(true)
    }))

  for (const size of [0, 1, 63, 64, 65, 1000, 1024 * 1024, 2.5 * 1024 * 1024 + 3]) {
    it.effect(`node and noble agree and interoperate (${size} bytes)`, () =>
      Effect.gen(function*() {
        const [node, noble] = yield* both
        const key = bytes(32)
        const nonce = bytes(12)
        const plaintext = bytes(size)
        const fromNode = node.seal(key, nonce, plaintext)
        const fromNoble = noble.seal(key, nonce, plaintext)
        expect(fromNode.length).toBe(size + 16)
        expect(same(fromNode, fromNoble)).toBe(true)
        expect(same(noble.open(key, nonce, fromNode), plaintext)).toBe(true)
        expect(same(node.open(key, nonce, fromNoble), plaintext)).toBe(true)
        if (size > 0) expect(same(fromNode.subarray(0, size), plaintext)).toBe(false)
      }))
  }

  const rejects = (name: string, cipher: () => CipherApi) =>
    it.effect(`${name}: tampering and wrong inputs give undefined`, () =>
      Effect.sync(() => {
        const c = cipher()
        const key = bytes(32)
        const nonce = bytes(12)
        const plaintext = bytes(100)
        const sealed = c.seal(key, nonce, plaintext)
        expect(same(c.open(key, nonce, sealed), plaintext)).toBe(true)
        const flip = (i: number) => {
          const copy = sealed.slice()
          copy[i]! ^= 1
          return copy
        }
        expect(c.open(key, nonce, flip(0))).toBeUndefined() // ciphertext
        expect(c.open(key, nonce, flip(sealed.length - 1))).toBeUndefined() // tag
        const otherNonce = nonce.slice()
        otherNonce[11]! ^= 1
        expect(c.open(key, otherNonce, sealed)).toBeUndefined()
        expect(c.open(bytes(32), nonce, sealed)).toBeUndefined()
        expect(c.open(key, nonce, sealed.subarray(0, sealed.length - 1))).toBeUndefined() // truncated
        expect(c.open(key, nonce, new Uint8Array(5))).toBeUndefined() // shorter than a tag
        const empty = c.seal(key, nonce, new Uint8Array(0))
        expect(c.open(key, nonce, empty)?.length).toBe(0)
        empty[0]! ^= 1
        expect(c.open(key, nonce, empty)).toBeUndefined()
      }))

  rejects("node", () => Effect.runSync(Effect.provide(Cipher, CipherNode.layer)))
  rejects("noble", () => Effect.runSync(Effect.provide(Cipher, CipherNoble.layer)))

  it.effect("sealParts gives the same bytes as seal, as ciphertext and tag", () =>
    Effect.gen(function*() {
      const [node, noble] = yield* both
      const key = bytes(32)
      const nonce = bytes(12)
      for (const plaintext of [bytes(0), bytes(1000), bytes(200_000), bytes(3 * 1024 * 1024 + 1)]) {
        for (const cipher of [node, noble]) {
          const [ciphertext, tag] = cipher.sealParts(key, nonce, plaintext)
          expect(ciphertext.length).toBe(plaintext.length)
          expect(tag.length).toBe(16)
          expect(same(new Uint8Array(Buffer.concat([ciphertext, tag])), cipher.seal(key, nonce, plaintext))).toBe(true)
        }
      }
    }))
})
