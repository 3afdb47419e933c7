import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as CipherNode from "../src/layers/CipherNode.js"
import * as CurvesNoble from "../src/layers/CurvesNoble.js"
import * as CurvesNode from "../src/layers/CurvesNode.js"
import * as IdentityEphemeral from "../src/layers/IdentityEphemeral.js"
import * as SecureChannelLive from "../src/layers/SecureChannelLive.js"
import { connectionPair } from "../src/layers/TransportMemory.js"
import { Curves, type CurvesApi } from "../src/services/Curves.js"
import { Identity } from "../src/services/Identity.js"
import { SecureChannel } from "../src/services/SecureChannel.js"

const node = Effect.runSync(Effect.provide(Curves, CurvesNode.layer))
const noble = Effect.runSync(Effect.provide(Curves, CurvesNoble.layer))
const impls: ReadonlyArray<CurvesApi> = [node, noble]
/** Every (a, b) pair of implementations, both orders and each with itself. */
const pairs = impls.flatMap((a) => impls.map((b) => [a, b] as const))
const label = (a: CurvesApi, b: CurvesApi) => `${a.name} / ${b.name}`

const fromHex = (hex: string) => new Uint8Array(Buffer.from(hex, "hex"))
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
const utf8 = (s: string) => new TextEncoder().encode(s)
const flip = (bytes: Uint8Array, index: number, bit = 0x01) => {
  const copy = bytes.slice()
  copy[index]! ^= bit
  return copy
}
/** Little-endian 32 bytes of `value` (below 2^256). */
const le32 = (value: bigint) => {
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++, value >>= 8n) out[i] = Number(value & 0xffn)
  return out
}
const fromLe = (bytes: Uint8Array) => bytes.reduceRight((acc, b) => (acc << 8n) | BigInt(b), 0n)
const P = 2n ** 255n - 19n
/** The Ed25519 group order. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n

describe("Curves: X25519", () => {
  for (const [a, b] of pairs) {
    it(`secrets agree both ways (${label(a, b)})`, () => {
      for (let i = 0; i < 20; i++) {
        const ka = a.generateX25519()
        const kb = b.generateX25519()
        expect(ka.publicKey.length).toBe(32)
        expect(kb.publicKey.length).toBe(32)
        const sa = a.sharedSecret(ka.privateKey, kb.publicKey)
        const sb = b.sharedSecret(kb.privateKey, ka.publicKey)
        expect(sa?.length).toBe(32)
        expect(toHex(sa!)).toBe(toHex(sb!))
        expect(sa!.some((x) => x !== 0)).toBe(true)
      }
    })
  }

  // Low-order u-coordinates (RFC 7748 section 7; the libsodium blocklist), canonical and with
  // bit 255 set (which X25519 ignores), and u >= p forms of them: the shared secret would be
  // all zeros whatever our private key, so both implementations must give undefined.
  const lowOrder = [
    "0000000000000000000000000000000000000000000000000000000000000000", // 0
    "0100000000000000000000000000000000000000000000000000000000000000", // 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p - 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p (= 0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1 (= 1)
    "0000000000000000000000000000000000000000000000000000000000000080", // 0, bit 255 set
    "0100000000000000000000000000000000000000000000000000000000000080", // 1, bit 255 set
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, bit 255 set
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" // p - 1, bit 255 set
  ]

  for (const impl of impls) {
    it(`${impl.name}: all-zero, low-order and malformed peer keys give undefined, never a throw`, () => {
      const own = impl.generateX25519()
      for (const hex of lowOrder) expect(impl.sharedSecret(own.privateKey, fromHex(hex)), hex).toBeUndefined()
      for (const length of [0, 1, 31, 33, 64]) {
        expect(impl.sharedSecret(own.privateKey, new Uint8Array(length).fill(9))).toBeUndefined()
      }
      // control: an ordinary point (the base point, u = 9) gives a secret
      expect(impl.sharedSecret(own.privateKey, le32(9n))?.length).toBe(32)
    })
  }

  it("a private key is usable only with the implementation that made it (a defect, not undefined)", () => {
    const peer = node.generateX25519().publicKey
    expect(() => node.sharedSecret(noble.generateX25519().privateKey, peer)).toThrow(/another Curves implementation/)
    expect(() => noble.sharedSecret(node.generateX25519().privateKey, peer)).toThrow(/another Curves implementation/)
    expect(() => node.sign(noble.generateEd25519().privateKey, utf8("m"))).toThrow(/another Curves implementation/)
    expect(() => noble.sign(node.generateEd25519().privateKey, utf8("m"))).toThrow(/another Curves implementation/)
  })
})

describe("Curves: Ed25519", () => {
  // RFC 8032 section 7.1, tests 1-3: public key, message, signature.
  const rfc8032 = [
    [
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
      "",
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    ],
    [
      "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
      "72",
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    ],
    [
      "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
      "af82",
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
    ]
  ] as const

  for (const impl of impls) {
    it(`${impl.name}: RFC 8032 test vectors verify, and not with a flipped bit`, () => {
      for (const [key, message, sig] of rfc8032) {
        expect(impl.verify(fromHex(key), fromHex(message), fromHex(sig))).toBe(true)
        expect(impl.verify(fromHex(key), fromHex(message), flip(fromHex(sig), 63, 0x10))).toBe(false)
      }
    })
  }

  for (const [signer, verifier] of pairs) {
    it(`a signature by one verifies with the other; tampering fails (${label(signer, verifier)})`, () => {
      const { privateKey, publicKey } = signer.generateEd25519()
      const other = signer.generateEd25519().publicKey
      expect(publicKey.length).toBe(32)
      for (const message of [new Uint8Array(0), utf8("dsync-hs/1 transcript"), new Uint8Array(10_000).fill(7)]) {
        const sig = signer.sign(privateKey, message)
        expect(sig.length).toBe(64)
        expect(verifier.verify(publicKey, message, sig)).toBe(true)
        // the message
        if (message.length > 0) expect(verifier.verify(publicKey, flip(message, message.length - 1), sig)).toBe(false)
        expect(verifier.verify(publicKey, new Uint8Array([...message, 0]), sig)).toBe(false)
        // the signature: R, S, S + L (the same S mod L, not canonical), zeros, wrong lengths
        expect(verifier.verify(publicKey, message, flip(sig, 0))).toBe(false)
        expect(verifier.verify(publicKey, message, flip(sig, 40))).toBe(false)
        const sPlusL = sig.slice()
        sPlusL.set(le32(fromLe(sig.subarray(32)) + L), 32)
        expect(verifier.verify(publicKey, message, sPlusL)).toBe(false)
        expect(verifier.verify(publicKey, message, new Uint8Array(64))).toBe(false)
        expect(verifier.verify(publicKey, message, sig.subarray(0, 63))).toBe(false)
        expect(verifier.verify(publicKey, message, new Uint8Array([...sig, 0]))).toBe(false)
        // the key
        expect(verifier.verify(other, message, sig)).toBe(false)
        expect(verifier.verify(flip(publicKey, 3), message, sig)).toBe(false)
        expect(verifier.verify(publicKey.subarray(0, 31), message, sig)).toBe(false)
        expect(verifier.verify(new Uint8Array([...publicKey, 0]), message, sig)).toBe(false)
      }
    })
  }

  // Keys nobody holds a private key for. Small-order points (the 8 torsion points; x = 0 ones
  // also with the sign bit set, a non-canonical encoding): with R = identity and S = 0 the
  // signature equation holds for every message (OpenSSL 3.0 on its own accepts that). Non-canonical
  // y >= p: RFC 8032 refuses them. Not a point at all (y = 2). Both implementations must say false.
  const smallOrderY = [0n, 1n, P - 1n, fromLe(fromHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")), fromLe(fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))]
  const withSign = (y: bigint) => [le32(y), le32(y + 2n ** 255n)]
  const badKeys = [
    ...smallOrderY.flatMap(withSign),
    ...[P, P + 1n, P + 2n, P + 18n, 2n].flatMap(withSign)
  ]
  const identity = le32(1n)
  const forged = new Uint8Array([...identity, ...new Uint8Array(32)]) // R = identity, S = 0

  for (const impl of impls) {
    it(`${impl.name}: small-order, non-canonical and off-curve keys are refused, never a throw`, () => {
      for (const key of badKeys) {
        for (const message of [new Uint8Array(0), utf8("anything at all")]) {
          expect(impl.verify(key, message, forged), toHex(key)).toBe(false)
        }
      }
      // A non-canonical R (y = p + 1, the identity) with a real key fails too.
      const { privateKey, publicKey } = impl.generateEd25519()
      const message = utf8("m")
      const sig = impl.sign(privateKey, message)
      expect(impl.verify(publicKey, message, new Uint8Array([...le32(P + 1n), ...sig.subarray(32)]))).toBe(false)
      expect(impl.verify(new Uint8Array(0), message, new Uint8Array(0))).toBe(false)
    })
  }

  it("IdentityEphemeral signs with the Curves layer it is given; the other verifies", () =>
    Effect.gen(function*() {
      for (const [layer, verifier] of [[CurvesNode.layer, noble], [CurvesNoble.layer, node]] as const) {
        const identity = yield* Effect.provide(IdentityEphemeral.make, layer)
        expect(identity.peerId).toBe(toHex(identity.publicKey))
        const message = utf8("hello")
        expect(verifier.verify(identity.publicKey, message, identity.sign(message))).toBe(true)
      }
    }).pipe(Effect.runSync))
})

// ---- handshakes across implementations ----

/** One side of a handshake: the secure channel with its identity, on `curves`. */
const peer = (curves: Layer.Layer<Curves>, options: SecureChannelLive.SecureChannelOptions = {}) =>
  Effect.provide(
    Effect.all({ secure: SecureChannel, identity: Identity }),
    SecureChannelLive.makeLayer(options).pipe(
      Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer)),
      Layer.provideMerge(curves)
    )
  )

type Peer = Effect.Effect.Success<ReturnType<typeof peer>>

const handshake = (initiator: Peer, responder: Peer) =>
  Effect.gen(function*() {
    const { a, b } = yield* connectionPair()
    return yield* Effect.all([initiator.secure.initiate(a, responder.identity.peerId), responder.secure.accept(b)], {
      concurrency: 2
    })
  })

describe("Curves: a handshake with one side on CurvesNoble and the other on CurvesNode", () => {
  for (const secret of [undefined, utf8("a shared passphrase")]) {
    it.effect(`succeeds either way round, and data flows${secret ? " (with a shared secret)" : ""}`, () =>
      Effect.gen(function*() {
        const options = secret ? { secret } : {}
        const onNoble = yield* peer(CurvesNoble.layer, options)
        const onNode = yield* peer(CurvesNode.layer, options)
        for (const [initiator, responder] of [[onNoble, onNode], [onNode, onNoble]] as const) {
          const [i, r] = yield* handshake(initiator, responder)
          expect(i.peerId).toBe(responder.identity.peerId)
          expect(r.peerId).toBe(initiator.identity.peerId)
          yield* i.send(utf8("ping"))
          expect(new TextDecoder().decode(yield* r.receive)).toBe("ping")
          yield* r.send(utf8("pong"))
          expect(new TextDecoder().decode(yield* i.receive)).toBe("pong")
          yield* i.close
        }
      }))
  }

  it.effect("a secret mismatch still fails on both sides across implementations", () =>
    Effect.gen(function*() {
      const onNoble = yield* peer(CurvesNoble.layer, { secret: utf8("one") })
      const onNode = yield* peer(CurvesNode.layer, { secret: utf8("two") })
      const { a, b } = yield* connectionPair()
      const [ri, rr] = yield* Effect.all([Effect.either(onNoble.secure.initiate(a)), Effect.either(onNode.secure.accept(b))], {
        concurrency: 2
      })
      expect(Either.isLeft(ri) && ri.left.reason).toBe(SecureChannelLive.SECRET_MISMATCH)
      expect(Either.isLeft(rr) && rr.left.reason).toBe(SecureChannelLive.SECRET_MISMATCH)
    }))
})

// ---- micro-benchmark: DSYNC_BENCH=1 npx vitest run test/curves.test.ts -t benchmark ----

describe("Curves: benchmark", () => {
  it.live.runIf(process.env.DSYNC_BENCH)("benchmark: in-memory handshakes per second with each layer", () =>
    Effect.gen(function*() {
      const count = Number(process.env.DSYNC_BENCH_HANDSHAKES ?? 200)
      const setups = [
        ["CurvesNode both sides", CurvesNode.layer, CurvesNode.layer],
        ["CurvesNoble both sides", CurvesNoble.layer, CurvesNoble.layer],
        ["CurvesNoble initiator, CurvesNode responder", CurvesNoble.layer, CurvesNode.layer]
      ] as const
      for (const [name, initiatorCurves, responderCurves] of setups) {
        const initiator = yield* peer(initiatorCurves)
        const responder = yield* peer(responderCurves)
        const once = Effect.flatMap(handshake(initiator, responder), ([i, r]) => Effect.zipRight(i.close, r.close))
        for (let i = 0; i < 20; i++) yield* once // warm-up
        const rates: Array<number> = []
        const cpuRates: Array<number> = []
        for (let round = 0; round < 3; round++) {
          const started = performance.now()
          const cpu = process.cpuUsage()
          for (let i = 0; i < count; i++) yield* once
          const used = process.cpuUsage(cpu)
          rates.push((count * 1000) / (performance.now() - started))
          cpuRates.push((count * 1e6) / (used.user + used.system))
        }
        // one line per setup: the best of 3 rounds by wall clock and per CPU-second (both sides
        // run in this one process, so each figure counts the work of both ends)
        const show = (xs: Array<number>) => `${Math.round(Math.max(...xs))} (${xs.map(Math.round).join(", ")})`
        console.log(`${name}: ${show(rates)} handshakes/s wall, ${show(cpuRates)} per CPU-second; ${count} sequential x 3`)
      }
    }), { timeout: 300_000 })
})
