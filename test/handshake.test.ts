import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Layer, Redacted, Stream, TestClock } from "effect"
import {
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes
} from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { HandshakeError } from "../src/domain/Errors.js"
import * as CipherNoble from "../src/layers/CipherNoble.js"
import * as CipherNode from "../src/layers/CipherNode.js"
import * as CurvesNoble from "../src/layers/CurvesNoble.js"
import * as CurvesNode from "../src/layers/CurvesNode.js"
import * as IdentityEphemeral from "../src/layers/IdentityEphemeral.js"
import { deriveSecretKey, makeLayer, type SecureChannelOptions } from "../src/layers/SecureChannelLive.js"
import { connectionPair } from "../src/layers/TransportMemory.js"
import { encodeFrame, FrameReader } from "../src/lib/Framing.js"
import { Cipher } from "../src/services/Cipher.js"
import type { Curves } from "../src/services/Curves.js"
import { Identity, type IdentityApi } from "../src/services/Identity.js"
import { type Channel, MAX_HANDSHAKE_FRAME, SecureChannel } from "../src/services/SecureChannel.js"
import type { Connection } from "../src/services/Transport.js"
import { startNode } from "../src/programs/SyncNode.js"
import { Discovery, make as makeDiscovery } from "../src/services/Discovery.js"
import { makeNetwork, type MemoryNetwork, memoryNodeLayer } from "../src/Testing.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { captureLogs } from "./support/nodes.js"

// ---- helpers ----

/** A fresh identity, signing with `curves` (node:crypto unless told). */
const newIdentity = (curves: Layer.Layer<Curves> = CurvesNode.layer) => Effect.provide(IdentityEphemeral.make, curves)

const node = (
  options: SecureChannelOptions & { identity?: IdentityApi; cipher?: Layer.Layer<Cipher>; curves?: Layer.Layer<Curves> } = {}
) =>
  Effect.gen(function*() {
    const curves = options.curves ?? CurvesNode.layer
    const identity = options.identity ?? (yield* newIdentity(curves))
    const layer = makeLayer(options).pipe(
      Layer.provide(Layer.succeed(Identity, identity)),
      Layer.provide(options.cipher ?? CipherNode.layer),
      Layer.provide(curves)
    )
    const api = yield* Effect.provide(SecureChannel, layer)
    return { ...api, identity }
  })

type Node = Effect.Effect.Success<ReturnType<typeof node>>

const text = new TextEncoder()
const toJson = (frame: Uint8Array): any => JSON.parse(Buffer.from(frame).toString("utf8"))
const fromJson = (value: unknown) => text.encode(JSON.stringify(value))
const sendJson = (c: Connection, value: unknown) => c.write(encodeFrame(fromJson(value)))
const readJson = (reader: FrameReader) => Effect.map(reader.read(1 << 20), toJson)
const hex = (n: number, byte = 0xab) => Buffer.alloc(n, byte).toString("hex")
const bytes = (n: number, seed: number) => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff
  return out
}
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0

/** Run both sides at once; neither result hides the other. */
const both = (initiator: Node, responder: Node, a: Connection, b: Connection, expectedPeerId?: string) =>
  Effect.all([Effect.either(initiator.initiate(a, expectedPeerId)), Effect.either(responder.accept(b))], {
    concurrency: 2
  })

const reasonOf = (e: Either.Either<Channel, HandshakeError>) => (Either.isLeft(e) ? e.left.reason : "succeeded")

type Direction = "i2r" | "r2i"
/** Rewrites (or drops, with undefined) the `index`-th frame going in `direction`. */
type Rewrite = (direction: Direction, index: number, frame: Uint8Array) => Uint8Array | ReadonlyArray<Uint8Array> | undefined

/**
 * A man in the middle: the initiator talks to `initiatorEnd`, the responder to `responderEnd`,
 * and every frame between them passes through `rewrite`.
 */
const relay = (rewrite: Rewrite) =>
  Effect.gen(function*() {
    const left = yield* connectionPair({ a: "initiator", b: "relay" })
    const right = yield* connectionPair({ a: "relay", b: "responder" })
    const pump = (from: Connection, to: Connection, direction: Direction) =>
      Effect.gen(function*() {
        const reader = new FrameReader(from)
        for (let index = 0;; index++) {
          const out = rewrite(direction, index, yield* reader.read(1 << 25))
          for (const frame of out === undefined ? [] : out instanceof Uint8Array ? [out] : out) {
            yield* to.write(encodeFrame(frame))
          }
        }
      }).pipe(Effect.ignore, Effect.ensuring(to.close))
    yield* Effect.fork(pump(left.b, right.a, "i2r"))
    yield* Effect.fork(pump(right.a, left.b, "r2i"))
    return { initiatorEnd: left.a, responderEnd: right.b }
  })

const roundTrip = (from: Channel, to: Channel, sizes: ReadonlyArray<number>, seed: number) =>
  Effect.all([
    Effect.forEach(sizes, (n, i) => from.send(bytes(n, seed + i))),
    Effect.forEach(sizes, (n, i) =>
      Effect.map(to.receive, (got) => {
        expect(got.length).toBe(n)
        expect(same(got, bytes(n, seed + i))).toBe(true)
      }))
  ], { concurrency: 2 })

// ---- tests ----

describe("SecureChannel handshake", () => {
  it.effect("succeeds both ways with proven ids; data round-trips, including 4 MiB frames", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      // also checks node/noble interop on the wire: bob seals, signs and does X25519 with noble
      const bob = yield* node({ cipher: CipherNoble.layer, curves: CurvesNoble.layer })
      const { a, b } = yield* connectionPair()
      const [ri, rr] = yield* both(alice, bob, a, b, bob.identity.peerId)
      const initiator = Either.getOrThrow(ri)
      const responder = Either.getOrThrow(rr)
      expect(initiator.peerId).toBe(bob.identity.peerId)
      expect(responder.peerId).toBe(alice.identity.peerId)
      const sizes = [0, 1, 1000, 4 * 1024 * 1024, 5]
      yield* roundTrip(initiator, responder, sizes, 1)
      yield* roundTrip(responder, initiator, sizes, 2)
      // Concurrent senders are serialised: every frame opens, in some order.
      yield* Effect.all(Array.from({ length: 20 }, (_, i) => initiator.send(bytes(100, i))), { concurrency: "unbounded" })
      const got = yield* Effect.all(Array.from({ length: 20 }, () => responder.receive))
      expect(got.map((g) => g[0]).sort((x, y) => x! - y!)).toEqual(Array.from({ length: 20 }, (_, i) => i))
      // sendAll: several frames in one write, each sealed under the next nonce, in order
      const batch = [bytes(10, 7), bytes(0, 8), bytes(70_000, 9), bytes(3, 10)]
      yield* initiator.sendAll(batch)
      yield* initiator.send(bytes(5, 11))
      for (const frame of [...batch, bytes(5, 11)]) expect(same(yield* responder.receive, frame)).toBe(true)
      yield* initiator.close
      expect((yield* Effect.flip(responder.receive))._tag).toBe("ConnectionClosed")
    }))

  it.effect("an unmodified relay does not disturb the handshake (control for the relay tests)", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const bob = yield* node()
      const mitm = yield* relay((_d, _i, frame) => frame)
      const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
      yield* roundTrip(Either.getOrThrow(ri), Either.getOrThrow(rr), [10, 70000], 3)
    }))

  it.effect("handshake messages are their Schemas' encodings, byte for byte the JSON of the literals we used to send", () =>
    Effect.gen(function*() {
      // Field order is part of the wire format: peers running the object-literal encoder
      // wrote exactly these keys in this order, with no whitespace.
      const layouts = {
        hello: ["t", "proto", "challenge", "eph"],
        initiatorAuth: ["t", "proto", "id", "challenge", "eph", "sig"],
        responderAuth: ["t", "proto", "id", "sig"]
      }
      for (const secret of [undefined, passphrase("layout")]) {
        const alice = yield* node(secret ? { secret } : {})
        const bob = yield* node(secret ? { secret } : {})
        const frames: Record<Direction, Array<string>> = { i2r: [], r2i: [] }
        const mitm = yield* relay((direction, index, frame) => {
          if (index < 2) frames[direction].push(Buffer.from(frame).toString("utf8"))
          return frame
        })
        const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
        expect(Either.isRight(ri) && Either.isRight(rr)).toBe(true)
        const [hello, responderAuth] = frames.r2i
        const [initiatorAuth] = frames.i2r
        const withProof = (keys: Array<string>) => (secret ? [...keys, "proof"] : keys)
        for (
          const [raw, keys] of [
            [hello, layouts.hello],
            [initiatorAuth, withProof(layouts.initiatorAuth)],
            [responderAuth, withProof(layouts.responderAuth)]
          ] as const
        ) {
          const parsed = JSON.parse(raw!)
          expect(Object.keys(parsed)).toEqual(keys)
          expect(raw).toBe(JSON.stringify(parsed))
        }
        expect(JSON.parse(initiatorAuth!).id).toBe(alice.identity.peerId)
      }
      // A reject, too: {"t":"reject","reason":...} and nothing else.
      const alice = yield* node()
      const c = yield* connectionPair()
      const fiber = yield* Effect.fork(alice.initiate(c.a))
      yield* sendJson(c.b, { t: "hello", proto: "dsync-hs/1", challenge: "zz", eph: hex(32) })
      const reject = Buffer.from(yield* new FrameReader(c.b).read(1 << 20)).toString("utf8")
      expect(reject).toBe(JSON.stringify({ t: "reject", reason: "malformed hello message" }))
      expect((yield* Effect.flip(Fiber.join(fiber))).reason).toBe("malformed hello message")
    }))

  it.effect("a relay swapping the ephemeral keys is detected by both sides", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const bob = yield* node()
      const mitmKey = hex(32, 0x09) // the relay's own X25519 public key, in place of each side's
      const mitm = yield* relay((_direction, index, frame) => {
        if (index > 0) return frame
        const message = toJson(frame)
        expect(message.eph).toMatch(/^[0-9a-f]{64}$/) // hello (r2i) and initiator auth (i2r) both carry one
        return fromJson({ ...message, eph: mitmKey })
      })
      const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
      expect(reasonOf(rr)).toBe("bad signature")
      expect(reasonOf(ri)).toBe("rejected by peer: bad signature")
    }))

  it.effect("a tampered signature is rejected (initiator's and responder's)", () =>
    Effect.gen(function*() {
      const flipSig = (target: Direction) => (direction: Direction, index: number, frame: Uint8Array) => {
        if (direction !== target || index !== (target === "i2r" ? 0 : 1)) return frame
        const message = toJson(frame)
        const sig = Buffer.from(message.sig, "hex")
        sig[5]! ^= 0x01
        return fromJson({ ...message, sig: sig.toString("hex") })
      }
      const alice = yield* node()
      const bob = yield* node()
      const m1 = yield* relay(flipSig("i2r"))
      const [ri1, rr1] = yield* both(alice, bob, m1.initiatorEnd, m1.responderEnd)
      expect(reasonOf(rr1)).toBe("bad signature")
      expect(reasonOf(ri1)).toContain("rejected by peer")
      const m2 = yield* relay(flipSig("r2i"))
      const [ri2] = yield* both(alice, bob, m2.initiatorEnd, m2.responderEnd)
      expect(reasonOf(ri2)).toBe("bad signature")
    }))

  it.effect("auth messages replayed from an earlier session are rejected", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const bob = yield* node()
      const recorded: Record<Direction, Array<Uint8Array>> = { i2r: [], r2i: [] }
      const recorder = yield* relay((direction, index, frame) => {
        if (index < 2) recorded[direction].push(frame.slice())
        return frame
      })
      const [ok] = yield* both(alice, bob, recorder.initiatorEnd, recorder.responderEnd)
      expect(Either.isRight(ok)).toBe(true)

      // Replay alice's auth to bob: bob's fresh challenge is not in it.
      const c1 = yield* connectionPair()
      const victim = yield* Effect.fork(bob.accept(c1.b))
      yield* readJson(new FrameReader(c1.a)) // bob's new hello
      yield* c1.a.write(encodeFrame(recorded.i2r[0]!))
      expect((yield* Effect.flip(Fiber.join(victim))).reason).toBe("bad signature")

      // Replay bob's hello and auth to alice: alice's fresh challenge is not in it.
      const c2 = yield* connectionPair()
      const victim2 = yield* Effect.fork(alice.initiate(c2.a))
      yield* c2.b.write(encodeFrame(recorded.r2i[0]!))
      yield* readJson(new FrameReader(c2.b)) // alice's new auth
      yield* c2.b.write(encodeFrame(recorded.r2i[1]!))
      expect((yield* Effect.flip(Fiber.join(victim2))).reason).toBe("bad signature")
    }))

  it.effect("a wrong protocol version is rejected with a clear reason, and the peer is told", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      // Fake responder speaking a newer version.
      const c1 = yield* connectionPair()
      const fiber = yield* Effect.fork(alice.initiate(c1.a))
      yield* sendJson(c1.b, { t: "hello", proto: "dsync-hs/2", challenge: hex(32), eph: hex(32, 9), extra: 1 })
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error.reason).toBe("protocol version mismatch: peer speaks \"dsync-hs/2\", we speak \"dsync-hs/1\"")
      const told = yield* readJson(new FrameReader(c1.b))
      expect(told).toEqual({ t: "reject", reason: error.reason })

      // Fake initiator speaking an older version, against an honest responder.
      const c2 = yield* connectionPair()
      const fiber2 = yield* Effect.fork(alice.accept(c2.b))
      const reader = new FrameReader(c2.a)
      expect((yield* readJson(reader)).proto).toBe("dsync-hs/1")
      yield* sendJson(c2.a, { t: "auth", proto: "dsync-hs/0" })
      expect((yield* Effect.flip(Fiber.join(fiber2))).reason).toContain("peer speaks \"dsync-hs/0\"")
      expect((yield* readJson(reader)).reason).toContain("protocol version mismatch")
    }))

  it.effect("oversized and malformed handshake frames are rejected", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const c1 = yield* connectionPair()
      const fiber = yield* Effect.fork(alice.initiate(c1.a))
      const header = new Uint8Array(4)
      new DataView(header.buffer).setUint32(0, MAX_HANDSHAKE_FRAME + 1)
      yield* c1.b.write(header) // the body never comes: it must not be waited for
      expect((yield* Effect.flip(Fiber.join(fiber))).reason).toContain("exceeds the limit")

      const c2 = yield* connectionPair()
      const fiber2 = yield* Effect.fork(alice.initiate(c2.a))
      yield* sendJson(c2.b, { t: "hello", proto: "dsync-hs/1", challenge: "zz", eph: hex(32) })
      expect((yield* Effect.flip(Fiber.join(fiber2))).reason).toBe("malformed hello message")

      const c3 = yield* connectionPair()
      const fiber3 = yield* Effect.fork(alice.initiate(c3.a))
      yield* c3.b.write(encodeFrame(text.encode("not json")))
      expect((yield* Effect.flip(Fiber.join(fiber3))).reason).toBe("malformed hello message")
    }))

  it.effect("times out at the default deadline when the peer says nothing", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const { a, b } = yield* connectionPair()
      const fiber = yield* Effect.fork(alice.initiate(a))
      yield* TestClock.adjust(Duration.millis(4900))
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.millis(200))
      expect((yield* Effect.flip(Fiber.join(fiber))).reason).toBe("timeout")
      // The connection was closed: the silent peer sees the end of the stream.
      expect((yield* Effect.flip(b.read))._tag).toBe("ConnectionClosed")
    }))

  it.live("the deadline can be shortened (responder, 200 ms)", () =>
    Effect.gen(function*() {
      const alice = yield* node({ handshakeTimeout: "200 millis" })
      const { a, b } = yield* connectionPair()
      const started = Date.now()
      const error = yield* Effect.flip(alice.accept(b))
      expect(error.reason).toBe("timeout")
      expect(Date.now() - started).toBeLessThan(2000)
      yield* a.read // hello
      expect((yield* Effect.flip(a.read))._tag).toBe("ConnectionClosed")
    }))

  it.effect("a peer presenting our own id is rejected", () =>
    Effect.gen(function*() {
      const identity = yield* newIdentity()
      const alice = yield* node({ identity })
      const clone = yield* node({ identity })
      const { a, b } = yield* connectionPair()
      const [ri, rr] = yield* both(clone, alice, a, b)
      expect(reasonOf(rr)).toBe("peer presented our own id")
      // the dialling side learns it dialled itself: a mismatch, which the dialler does not retry
      expect(reasonOf(ri)).toBe("we dialled ourselves (the peer has our own id)")
      expect(Either.isLeft(ri) && ri.left.mismatch).toBe("peerId")
    }))

  it.effect("an all-zero X25519 shared secret is rejected", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const { a, b } = yield* connectionPair()
      const fiber = yield* Effect.fork(alice.accept(b))
      yield* readJson(new FrameReader(a))
      // The zero point: any shared secret computed with it is all zeros.
      yield* sendJson(a, { t: "auth", proto: "dsync-hs/1", id: hex(32, 1), challenge: hex(32), eph: hex(32, 0), sig: hex(64) })
      expect((yield* Effect.flip(Fiber.join(fiber))).reason).toBe("all-zero shared secret")
    }))

  it.effect("a proven key that differs from the expected peer id is rejected", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const bob = yield* node()
      const { a, b } = yield* connectionPair()
      const advertised = hex(32, 0x11)
      const [ri] = yield* both(alice, bob, a, b, advertised)
      expect(reasonOf(ri)).toBe(`peer id mismatch: expected 11111111, peer proved ${bob.identity.peerId.slice(0, 8)}`)
    }))

  it.effect("a tampered, replayed or dropped data frame makes receive fail with ProtocolError", () =>
    Effect.gen(function*() {
      const alice = yield* node()
      const bob = yield* node()
      const scenario = (rewrite: (frame: Uint8Array) => Uint8Array | ReadonlyArray<Uint8Array> | undefined) =>
        Effect.gen(function*() {
          // i2r frame 0 is the initiator's auth; frame 1 is the first data frame.
          const mitm = yield* relay((direction, index, frame) => (direction === "i2r" && index === 1 ? rewrite(frame) : frame))
          const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
          const initiator = Either.getOrThrow(ri)
          const responder = Either.getOrThrow(rr)
          yield* initiator.send(bytes(100, 1))
          yield* initiator.send(bytes(100, 2))
          const first = yield* Effect.either(responder.receive)
          return Either.isRight(first) ? yield* Effect.either(responder.receive) : first
        })
      const flipped = yield* scenario((frame) => {
        const copy = frame.slice()
        copy[10]! ^= 0x80
        return copy
      })
      expect(Either.isLeft(flipped) && flipped.left).toMatchObject({ _tag: "ProtocolError", reason: "decryption failed" })
      const replayed = yield* scenario((frame) => [frame, frame])
      expect(Either.isLeft(replayed) && replayed.left).toMatchObject({ _tag: "ProtocolError", reason: "decryption failed" })
      const dropped = yield* scenario(() => undefined)
      expect(Either.isLeft(dropped) && dropped.left).toMatchObject({ _tag: "ProtocolError", reason: "decryption failed" })
      // Control: untouched frames open.
      const clean = yield* scenario((frame) => frame)
      expect(Either.isRight(clean)).toBe(true)
    }))
})

// ---- the optional shared secret ----

const passphrase = (s: string) => text.encode(s)

/**
 * An initiator written out by hand (so a test sees every frame the responder sends): it signs
 * a valid auth, attaches `proof(exchange, dh)` if that returns bytes, and returns the rest.
 */
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex")
const rawInitiator = (
  connection: Connection,
  identity: IdentityApi,
  proof: (exchange: Buffer, dh: Buffer) => Uint8Array | undefined
) =>
  Effect.gen(function*() {
    const reader = new FrameReader(connection)
    const hello = yield* readJson(reader)
    const { privateKey, publicKey } = generateKeyPairSync("x25519")
    const eph = publicKey.export({ type: "spki", format: "der" }).subarray(X25519_SPKI.length)
    const peerEph = createPublicKey({ key: Buffer.concat([X25519_SPKI, Buffer.from(hello.eph, "hex")]), format: "der", type: "spki" })
    const dh = diffieHellman({ privateKey, publicKey: peerEph })
    const challenge = randomBytes(32)
    const exchange = Buffer.concat([Buffer.from(hello.challenge, "hex"), challenge, Buffer.from(hello.eph, "hex"), eph])
    const sig = identity.sign(Buffer.concat([Buffer.from("dsync-hs/1I"), exchange]))
    const p = proof(exchange, dh)
    yield* sendJson(connection, {
      t: "auth",
      proto: "dsync-hs/1",
      id: identity.peerId,
      challenge: challenge.toString("hex"),
      eph: eph.toString("hex"),
      sig: Buffer.from(sig).toString("hex"),
      ...(p ? { proof: Buffer.from(p).toString("hex") } : {})
    })
    return { reader, exchange, dh }
  })

/** Every frame until the connection ends. */
const readAll = (reader: FrameReader) =>
  Effect.gen(function*() {
    const frames: Array<any> = []
    for (;;) {
      const next = yield* Effect.either(readJson(reader))
      if (Either.isLeft(next)) return frames
      frames.push(next.right)
    }
  })

/** The proof as the protocol defines it: HMAC-SHA256(scrypt key, label, role, exchange, X25519 secret, ids). */
const expectedProof = (key: Uint8Array, role: "I" | "R", exchange: Buffer, dh: Buffer, ...ids: Array<Uint8Array>) =>
  createHmac("sha256", key).update(Buffer.concat([Buffer.from(`dsync-secret-proof/1${role}`), exchange, dh, ...ids])).digest()

describe("SecureChannel handshake with a shared secret", () => {
  it.effect("the same secret on both sides: handshake ok, data flows; the passphrase is never on the wire", () =>
    Effect.gen(function*() {
      const secret = "correct horse battery staple"
      const alice = yield* node({ secret: passphrase(secret) })
      const bob = yield* node({ secret: Redacted.make(passphrase(secret)), cipher: CipherNoble.layer })
      const frames: Array<Uint8Array> = []
      const mitm = yield* relay((_d, _i, frame) => {
        frames.push(frame.slice())
        return frame
      })
      const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd, bob.identity.peerId)
      const initiator = Either.getOrThrow(ri)
      const responder = Either.getOrThrow(rr)
      expect(initiator.peerId).toBe(bob.identity.peerId)
      expect(responder.peerId).toBe(alice.identity.peerId)
      yield* roundTrip(initiator, responder, [0, 1, 70000], 1)
      yield* roundTrip(responder, initiator, [3, 100000], 2)
      // Both auth messages carry a proof; nothing carries the passphrase, as text or hex.
      const auths = frames.slice(0, 3).map(toJson).filter((m) => m.t === "auth")
      expect(auths).toHaveLength(2)
      for (const auth of auths) expect(auth.proof).toMatch(/^[0-9a-f]{64}$/)
      const wire = Buffer.concat(frames)
      expect(wire.includes(Buffer.from(secret))).toBe(false)
      expect(wire.includes(Buffer.from(Buffer.from(secret).toString("hex")))).toBe(false)
    }))

  it.effect("different secrets: both sides fail with a clear reason", () =>
    Effect.gen(function*() {
      const alice = yield* node({ secret: passphrase("one passphrase") })
      const bob = yield* node({ secret: passphrase("another passphrase") })
      const { a, b } = yield* connectionPair()
      const [ri, rr] = yield* both(alice, bob, a, b)
      expect(reasonOf(rr)).toBe("the peer does not know the shared secret (or uses another one)")
      expect(reasonOf(ri)).toBe("the peer does not know the shared secret (or uses another one)")
    }))

  it.effect("a secret on one side only: both sides fail, whichever side has it", () =>
    Effect.gen(function*() {
      const withSecret = yield* node({ secret: passphrase("only here") })
      const without = yield* node()
      const c1 = yield* connectionPair()
      const [ri1, rr1] = yield* both(withSecret, without, c1.a, c1.b)
      expect(reasonOf(rr1)).toBe("the peer uses a shared secret and we have none (see --secret-file)")
      expect(reasonOf(ri1)).toBe("the peer does not know the shared secret (or uses another one)")
      const c2 = yield* connectionPair()
      const [ri2, rr2] = yield* both(without, withSecret, c2.a, c2.b)
      expect(reasonOf(rr2)).toBe("the peer does not know the shared secret (it has none set)")
      expect(reasonOf(ri2)).toBe("the peer uses a shared secret and we have none (see --secret-file)")
    }))

  it.effect("the responder checks the initiator's proof first: a wrong or missing proof gets a bare reject, no proof", () =>
    Effect.gen(function*() {
      const bob = yield* node({ secret: passphrase("bob's secret") })
      const eve = yield* newIdentity()
      const wrongKey = deriveSecretKey(passphrase("a guess"))
      const attempts: ReadonlyArray<(exchange: Buffer, dh: Buffer) => Uint8Array | undefined> = [
        (exchange, dh) => expectedProof(wrongKey, "I", exchange, dh, eve.publicKey), // well-formed, wrong secret
        () => randomBytes(32),
        () => undefined
      ]
      for (const proof of attempts) {
        const { a, b } = yield* connectionPair()
        const fiber = yield* Effect.fork(bob.accept(b))
        const { reader } = yield* rawInitiator(a, eve, proof)
        // Everything bob sends after our auth: one reject saying nothing about the secret, then the end.
        expect(yield* readAll(reader)).toEqual([{ t: "reject", reason: "shared secret mismatch" }])
        expect((yield* Effect.flip(Fiber.join(fiber))).reason).toMatch(/^the peer does not know the shared secret/)
      }
    }))

  it.effect("with the right proof the responder proves itself, and the session keys depend on the secret", () =>
    Effect.gen(function*() {
      const secret = passphrase("shared by both")
      const key = deriveSecretKey(secret)
      const bob = yield* node({ secret })
      const alice = yield* newIdentity()
      const cipher = yield* Effect.provide(Cipher, CipherNode.layer)
      const { a, b } = yield* connectionPair()
      const fiber = yield* Effect.fork(bob.accept(b))
      const { dh, exchange, reader } = yield* rawInitiator(a, alice, (x, dh) => expectedProof(key, "I", x, dh, alice.publicKey))
      const auth = yield* readJson(reader)
      expect(auth.t).toBe("auth")
      expect(auth.id).toBe(bob.identity.peerId)
      expect(auth.proof).toBe(expectedProof(key, "R", exchange, dh, alice.publicKey, bob.identity.publicKey).toString("hex"))
      const channel = yield* Fiber.join(fiber)
      yield* channel.send(bytes(50, 7))
      const sealed = yield* reader.read(1 << 20)
      // The first r2i frame opens with keys from the X25519 secret plus the secret's key, and not without it.
      const salt = createHash("sha256")
        .update(Buffer.concat([Buffer.from("dsync-hs/1"), exchange, alice.publicKey, bob.identity.publicKey]))
        .digest()
      const r2i = (ikm: Buffer) => new Uint8Array(hkdfSync("sha256", ikm, salt, "dsync/1 r2i", 32))
      const nonce0 = new Uint8Array(12)
      const opened = cipher.open(r2i(Buffer.concat([dh, key])), nonce0, sealed)
      expect(opened && same(opened, bytes(50, 7))).toBe(true)
      expect(cipher.open(r2i(dh), nonce0, sealed)).toBeUndefined()
    }))

  it.effect("a relay that strips or replaces the initiator's proof cannot get through", () =>
    Effect.gen(function*() {
      const alice = yield* node({ secret: passphrase("s") })
      const bob = yield* node({ secret: passphrase("s") })
      for (const change of [(m: any) => ({ ...m, proof: undefined }), (m: any) => ({ ...m, proof: hex(32, 0x42) })]) {
        const mitm = yield* relay((direction, index, frame) =>
          direction === "i2r" && index === 0 ? fromJson(change(toJson(frame))) : frame
        )
        const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
        expect(reasonOf(rr)).toMatch(/^the peer does not know the shared secret/)
        expect(reasonOf(ri)).toBe("the peer does not know the shared secret (or uses another one)")
      }
    }))

  it.effect("an empty passphrase is refused when the layer is built", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(node({ secret: new Uint8Array(0) }))
      expect(exit._tag).toBe("Failure")
    }))

  it.live("memory nodes: same secret syncs, other secret does not; the passphrase is in no log line", () =>
    Effect.gen(function*() {
      const secret = "a-long-random-passphrase-4f9c2e"
      const logs = captureLogs()
      const start = (network: MemoryNetwork, host: string, root: string, peers: ReadonlyArray<string>, pass: string) =>
        Effect.gen(function*() {
          const layer = memoryNodeLayer({ network, host, root, peers: peers.map((h) => ({ host: h, port: 9000 })), secret: passphrase(pass) })
          const services = yield* Layer.build(layer)
          return yield* Effect.provide(startNode({ name: host, listen: { host, port: 9000 } }), services)
        })
      const run = Effect.gen(function*() {
        const a = yield* tempDir()
        const b = yield* tempDir()
        const c = yield* tempDir()
        fs.writeFileSync(path.join(a, "hello.txt"), "hi")
        const network = makeNetwork()
        yield* start(network, "a", a, ["b", "c"], secret)
        yield* start(network, "b", b, [], secret)
        yield* start(network, "c", c, [], `${secret}-not`)
        yield* eventually("sync with the same secret", () => readOr(path.join(b, "hello.txt")) === "hi")
        yield* eventually("c refuses a", () => logs.lines.some((l) => l.includes("the peer does not know the shared secret")))
        expect(fs.existsSync(path.join(c, "hello.txt"))).toBe(false)
      })
      yield* run.pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
      expect(logs.lines.join("\n")).not.toContain(secret)
    }), { timeout: 30_000 })
})

// ---- groups ----

describe("SecureChannel handshake with groups", () => {
  it.effect("the same group: handshake ok, and both auth messages carry it, last", () =>
    Effect.gen(function*() {
      const alice = yield* node({ group: "photos" })
      const bob = yield* node({ group: "photos", cipher: CipherNoble.layer })
      const frames: Record<Direction, Array<any>> = { i2r: [], r2i: [] }
      const mitm = yield* relay((direction, index, frame) => {
        // the handshake's frames: i2r auth, r2i hello and auth (the rest are sealed)
        if (index < (direction === "i2r" ? 1 : 2)) frames[direction].push(toJson(frame))
        return frame
      })
      const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd, bob.identity.peerId)
      yield* roundTrip(Either.getOrThrow(ri), Either.getOrThrow(rr), [10, 70000], 5)
      expect(Object.keys(frames.i2r[0]!)).toEqual(["t", "proto", "id", "challenge", "eph", "sig", "group"])
      expect(Object.keys(frames.r2i[1]!)).toEqual(["t", "proto", "id", "sig", "group"])
      expect(frames.i2r[0]!.group).toBe("photos")
      // with a shared secret too: the proof, then the group
      const carol = yield* node({ group: "photos", secret: passphrase("s") })
      const dave = yield* node({ group: "photos", secret: passphrase("s") })
      const auths: Array<any> = []
      const m2 = yield* relay((direction, index, frame) => {
        if (direction === "i2r" && index === 0) auths.push(toJson(frame))
        return frame
      })
      const [ci, cr] = yield* both(carol, dave, m2.initiatorEnd, m2.responderEnd)
      expect(Either.isRight(ci) && Either.isRight(cr)).toBe(true)
      expect(Object.keys(auths[0]).slice(-2)).toEqual(["proof", "group"])
    }))

  it.effect("different groups, or a group on one side only: both sides fail, saying so, as a mismatch", () =>
    Effect.gen(function*() {
      const cases = [
        [{ group: "photos" }, { group: "music" }, "the peer is in group photos, we are in group music (see --group)", "group photos"],
        [{ group: "photos" }, {}, "the peer is in group photos, we are in no group (see --group)", "group photos"],
        [{}, { group: "music" }, "the peer is in no group, we are in group music (see --group)", "no group"]
      ] as const
      for (const [initiatorOptions, responderOptions, responderReason, initiatorGroup] of cases) {
        const alice = yield* node(initiatorOptions)
        const bob = yield* node(responderOptions)
        const { a, b } = yield* connectionPair()
        const [ri, rr] = yield* both(alice, bob, a, b, bob.identity.peerId)
        expect(Either.isLeft(rr) && rr.left).toMatchObject({ reason: responderReason, mismatch: "group" })
        expect(Either.isLeft(ri) && ri.left).toMatchObject({
          reason: `the peer is in another group (we are in ${initiatorGroup}; see --group)`,
          mismatch: "group"
        })
      }
    }))

  it.effect("the signature covers the group: a relay that rewrites or strips it cannot get a peer of another group through", () =>
    Effect.gen(function*() {
      const alice = yield* node({ group: "photos" })
      const bob = yield* node({ group: "music" })
      // Rewritten to bob's group, or stripped: alice's signature no longer verifies.
      for (const change of [(m: any) => ({ ...m, group: "music" }), (m: any) => ({ ...m, group: undefined })]) {
        const mitm = yield* relay((direction, index, frame) =>
          direction === "i2r" && index === 0 ? fromJson(change(toJson(frame))) : frame
        )
        const [ri, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
        expect(reasonOf(rr)).toBe("bad signature")
        expect(reasonOf(ri)).toBe("rejected by peer: bad signature")
      }
      // A responder's group rewritten on its way back fails the initiator's check of it.
      const carol = yield* node({ group: "photos" })
      const dave = yield* node({ group: "photos" })
      const back = yield* relay((direction, index, frame) =>
        direction === "r2i" && index === 1 ? fromJson({ ...toJson(frame), group: "music" }) : frame
      )
      const [ci] = yield* both(carol, dave, back.initiatorEnd, back.responderEnd)
      expect(reasonOf(ci)).toBe("bad signature")
      // Control: the same relays, untouched, let both through.
      const clean = yield* relay((_d, _i, frame) => frame)
      const [ok] = yield* both(carol, dave, clean.initiatorEnd, clean.responderEnd)
      expect(Either.isRight(ok)).toBe(true)
    }))

  it.effect("without a group the signed transcript is exactly the old one (peers without the option interoperate)", () =>
    Effect.gen(function*() {
      const bob = yield* node()
      const alice = yield* newIdentity()
      const { a, b } = yield* connectionPair()
      const fiber = yield* Effect.fork(bob.accept(b))
      // rawInitiator signs "dsync-hs/1" + "I" + the exchange, nothing after it.
      yield* rawInitiator(a, alice, () => undefined)
      const channel = yield* Fiber.join(fiber)
      expect(channel.peerId).toBe(alice.peerId)
    }))

  it.effect("a malformed group in a peer's auth is a malformed message", () =>
    Effect.gen(function*() {
      const alice = yield* node({ group: "photos" })
      const bob = yield* node({ group: "photos" })
      const mitm = yield* relay((direction, index, frame) =>
        direction === "i2r" && index === 0 ? fromJson({ ...toJson(frame), group: "Photos Two" }) : frame
      )
      const [, rr] = yield* both(alice, bob, mitm.initiatorEnd, mitm.responderEnd)
      expect(reasonOf(rr)).toBe("malformed auth message")
    }))

  it.effect("an invalid group is refused when the layer is built", () =>
    Effect.gen(function*() {
      for (const group of ["Photos", "two words", "", "x".repeat(64)]) {
        expect((yield* Effect.exit(node({ group })))._tag).toBe("Failure")
      }
    }))

  it.live("memory nodes: the same group syncs; a peer whose announcement claims our group but is in another is refused, once, and not redialled", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const start = (network: MemoryNetwork, host: string, root: string, group: string, discovery?: (peerId: string) => Layer.Layer<Discovery>, target?: string) =>
        Effect.gen(function*() {
          const layer = memoryNodeLayer({
            network,
            host,
            root,
            peers: [],
            group,
            ...(discovery && target ? { discovery: discovery(target) } : {})
          })
          const services = yield* Layer.build(layer)
          return yield* Effect.provide(startNode({ name: host, listen: { host, port: 9000 } }), services)
        })
      const run = Effect.gen(function*() {
        const [a, b, c] = [yield* tempDir(), yield* tempDir(), yield* tempDir()]
        fs.writeFileSync(path.join(a, "hello.txt"), "hi")
        const network = makeNetwork()
        const nodeB = yield* start(network, "b", b, "photos")
        const nodeC = yield* start(network, "c", c, "music")
        // a's discovery says c is a peer (as a TXT claiming group photos would); c is in music.
        yield* start(network, "a", a, "photos", (id) =>
          Layer.succeed(Discovery, makeDiscovery({
            peers: Stream.make(
              { address: { host: "b", port: 9000 }, peerId: id, name: "b" },
              { address: { host: "c", port: 9000 }, peerId: nodeC.peerId, name: "c-liar" }
            )
          })), nodeB.peerId)
        yield* eventually("sync within the group", () => readOr(path.join(b, "hello.txt")) === "hi")
        yield* eventually("a gives up on c", () => logs.lines.some((l) => l.includes(`not dialling "c-liar"`)))
        yield* Effect.sleep("3 seconds") // several reconnect delays
        expect(fs.existsSync(path.join(c, "hello.txt"))).toBe(false)
        const refusedByC = logs.lines.filter((l) => l.includes("the peer is in group photos, we are in group music"))
        expect(refusedByC).toHaveLength(1)
        expect(logs.lines.filter((l) => l.includes(`not dialling "c-liar"`))).toEqual([
          `WARN not dialling "c-liar" (${nodeC.peerId.slice(0, 8)}) at c:9000 again: the peer is in another group (we are in group photos; see --group)`
        ])
      })
      yield* run.pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
    }), { timeout: 30_000 })
})
