import { createHash, createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from "node:crypto"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { parseGroup } from "../domain/Config.js"
import { ConnectionClosed, HandshakeError, ProtocolError } from "../domain/Errors.js"
import { encodeFrame, frameHeader, FrameReader } from "../lib/Framing.js"
import { Cipher, type CipherApi, KEY_BYTES, NONCE_BYTES, TAG_BYTES } from "../services/Cipher.js"
import { Curves, type CurvesApi } from "../services/Curves.js"
import { Identity, type IdentityApi, shortId } from "../services/Identity.js"
import {
  type Channel,
  MAX_FRAME_PLAINTEXT,
  MAX_HANDSHAKE_FRAME,
  SecureChannel,
  type SecureChannelApi
} from "../services/SecureChannel.js"
import type { Connection } from "../services/Transport.js"

/** Handshake protocol label and version; also the first bytes of every signed transcript. */
export const HANDSHAKE_PROTOCOL = "dsync-hs/1"
/** A handshake not finished within this is dropped. */
export const HANDSHAKE_TIMEOUT: Duration.DurationInput = Duration.seconds(5)
/** The session ends before a nonce counter gets here (far below where 8 bytes would wrap). */
export const NONCE_LIMIT = 2 ** 48

/** Why a handshake fails when the peer proves another shared secret, or refuses our proof. */
export const SECRET_MISMATCH = "the peer does not know the shared secret (or uses another one)"
/** Why a handshake fails when the peer shows no proof at all while we have a secret. */
export const SECRET_ABSENT_THERE = "the peer does not know the shared secret (it has none set)"
/** Why a handshake fails when the peer proves a secret and we have none. */
export const SECRET_ABSENT_HERE = "the peer uses a shared secret and we have none (see --secret-file)"
/** What the peer is told (in a reject) for any of the above: nothing about either secret. */
export const SECRET_REJECT = "shared secret mismatch"
/** What the peer is told (in a reject) when its group is not ours. */
export const GROUP_REJECT = "group mismatch"
/** Why a handshake fails when the peer proves the key we hold. */
export const OWN_ID = "peer presented our own id"

const describeGroup = (group: string | undefined) => (group === undefined ? "no group" : `group ${group}`)

/**
 * Why a handshake fails when the two sides are in different groups (`theirs` null: the
 * peer refused ours without saying its own).
 */
export const groupMismatch = (ours: string | undefined, theirs: string | undefined | null): string =>
  theirs === null
    ? `the peer is in another group (we are in ${describeGroup(ours)}; see --group)`
    : `the peer is in ${describeGroup(theirs)}, we are in ${describeGroup(ours)} (see --group)`

// ---- wire messages (plaintext JSON frames; byte fields are lowercase hex) ----
// Each is written with its own Schema (`writeMessage`) and read with it (`readMessage`): the
// field order of a Struct is its encoding order, so the bytes are what they were when these
// were object literals (peers of either kind interoperate).

const Hex = (bytes: number) => Schema.String.pipe(Schema.pattern(new RegExp(`^[0-9a-f]{${bytes * 2}}$`)))
const Proto = Schema.Literal(HANDSHAKE_PROTOCOL)
/** A group name as parseGroup leaves it (lower case, bounded): anything else is a malformed message. */
const GroupName = Schema.String.pipe(Schema.maxLength(64), Schema.filter((g) => parseGroup(g) === g))

const Hello = Schema.Struct({ t: Schema.Literal("hello"), proto: Proto, challenge: Hex(32), eph: Hex(32) })
const InitiatorAuth = Schema.Struct({
  t: Schema.Literal("auth"),
  proto: Proto,
  id: Hex(32),
  challenge: Hex(32),
  eph: Hex(32),
  sig: Hex(64),
  /** Present only when the sender has a shared secret: HMAC-SHA256 (see `secretProof`). */
  proof: Schema.optional(Hex(32)),
  /** Present only when the sender is in a group; its signature covers it (see `transcript`). */
  group: Schema.optional(GroupName)
})
const ResponderAuth = Schema.Struct({
  t: Schema.Literal("auth"),
  proto: Proto,
  id: Hex(32),
  sig: Hex(64),
  proof: Schema.optional(Hex(32)),
  group: Schema.optional(GroupName)
})
const Reject = Schema.Struct({ t: Schema.Literal("reject"), reason: Schema.String.pipe(Schema.maxLength(256)) })
/** Read before the full schema, so a version mismatch is reported as such and not as "malformed". */
const Envelope = Schema.Struct({ t: Schema.String, proto: Schema.optional(Schema.Unknown) })

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())
const decodeEnvelope = Schema.decodeUnknownEither(Envelope)
const decodeReject = Schema.decodeUnknownEither(Reject)

/**
 * A handshake failure we tell the peer about (as a reject message) before closing;
 * `told` replaces the reason in the reject when the peer should learn less than our log.
 */
class Abort extends Data.TaggedError("Abort")<{
  readonly reason: string
  readonly told?: string
  readonly mismatch?: HandshakeError["mismatch"]
}> {}

// ---- crypto helpers (X25519 and Ed25519 are the Curves service's; hashes stay on node:crypto) ----

const toHex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
const fromHex = (hex: string) => new Uint8Array(Buffer.from(hex, "hex"))
const utf8 = new TextEncoder()
const LABEL = utf8.encode(HANDSHAKE_PROTOCOL)
const INITIATOR = Uint8Array.of(0x49) // "I"
const RESPONDER = Uint8Array.of(0x52) // "R"
const GROUP_TAG = 0x67 // "g"

/** The values both sides exchanged; all fixed-length, so plain concatenation is unambiguous. */
interface Exchange {
  readonly responderChallenge: Uint8Array
  readonly initiatorChallenge: Uint8Array
  readonly responderEph: Uint8Array
  readonly initiatorEph: Uint8Array
}

/**
 * What one role signs: binds the label, the role, both challenges and both ephemeral keys
 * (and the responder's, the initiator's id), then the signer's group, when it has one, as
 * "g", its length and its bytes: without a group the bytes are what they always were.
 */
const transcript = (role: Uint8Array, x: Exchange, initiatorId: Uint8Array | undefined, group: string | undefined): Uint8Array =>
  Buffer.concat([
    LABEL,
    role,
    x.responderChallenge,
    x.initiatorChallenge,
    x.responderEph,
    x.initiatorEph,
    ...(initiatorId ? [initiatorId] : []),
    ...(group === undefined ? [] : [Uint8Array.of(GROUP_TAG, Buffer.byteLength(group)), utf8.encode(group)])
  ])

/**
 * One key per direction, from the X25519 secret (and the shared-secret key, when set),
 * salted with the whole exchange including both ids.
 */
const deriveKeys = (
  dh: Uint8Array,
  x: Exchange,
  initiatorId: Uint8Array,
  responderId: Uint8Array,
  secretKey: Uint8Array | undefined
) => {
  const salt = createHash("sha256")
    .update(Buffer.concat([LABEL, x.responderChallenge, x.initiatorChallenge, x.responderEph, x.initiatorEph, initiatorId, responderId]))
    .digest()
  // Without a shared secret the input is exactly what it always was (peers without the option interoperate).
  const ikm = secretKey ? Buffer.concat([dh, secretKey]) : dh
  const key = (info: string) => new Uint8Array(hkdfSync("sha256", ikm, salt, info, KEY_BYTES))
  return { i2r: key("dsync/1 i2r"), r2i: key("dsync/1 r2i") }
}

// ---- the optional shared secret ----

/** scrypt salt: fixed, for domain separation (the passphrase is the only secret input). */
const SECRET_SALT = "dsync-secret/1"
const PROOF_LABEL = utf8.encode("dsync-secret-proof/1")

/**
 * The 32-byte key for a shared-secret passphrase: scrypt N=2^15, r=8, p=1 (about 0.1-0.2 s
 * and 32 MiB), so that each guess at a passphrase costs as much to whoever tries it offline.
 */
export const deriveSecretKey = (passphrase: Uint8Array): Uint8Array => {
  if (passphrase.length === 0) throw new Error("empty shared secret")
  return new Uint8Array(scryptSync(passphrase, SECRET_SALT, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }))
}

/**
 * What a side sends to prove it knows the shared secret: HMAC-SHA256 keyed with the derived
 * key over the role, the exchange, the X25519 secret and the ids known so far. The X25519
 * secret in it means only the two ends of this handshake can check (or guess against) it:
 * an eavesdropper who recorded the handshake has nothing to test passphrases against.
 */
const secretProof = (
  secretKey: Uint8Array,
  role: Uint8Array,
  x: Exchange,
  dh: Uint8Array,
  initiatorId: Uint8Array,
  responderId?: Uint8Array
): Uint8Array =>
  new Uint8Array(
    createHmac("sha256", secretKey)
      .update(Buffer.concat([
        PROOF_LABEL,
        role,
        x.responderChallenge,
        x.initiatorChallenge,
        x.responderEph,
        x.initiatorEph,
        dh,
        initiatorId,
        ...(responderId ? [responderId] : [])
      ]))
      .digest()
  )

/**
 * Checks the peer's `proof` field against our secret (or our lack of one). Undefined when
 * it is as expected; otherwise the failure (the peer is told only SECRET_REJECT).
 */
const checkProof = (secretKey: Uint8Array | undefined, proof: string | undefined, expected: () => Uint8Array) => {
  if (secretKey === undefined) return proof === undefined ? undefined : new Abort({ reason: SECRET_ABSENT_HERE, told: SECRET_REJECT })
  if (proof === undefined) return new Abort({ reason: SECRET_ABSENT_THERE, told: SECRET_REJECT })
  return timingSafeEqual(fromHex(proof), expected()) ? undefined : new Abort({ reason: SECRET_MISMATCH, told: SECRET_REJECT })
}

/** The passphrase bytes of a shared secret as given to the layer. */
export type SharedSecret = Uint8Array | Redacted.Redacted<Uint8Array>


/** 4 zero bytes then the 8-byte little-endian counter. */
const nonceFor = (counter: number): Uint8Array => {
  const nonce = new Uint8Array(NONCE_BYTES)
  const view = new DataView(nonce.buffer)
  view.setUint32(4, counter >>> 0, true)
  view.setUint32(8, Math.floor(counter / 2 ** 32), true)
  return nonce
}

// ---- handshake I/O ----

/**
 * Encodes `message` with the Schema the peer decodes it with, then JSON: a value the Schema
 * refuses (a bug of ours) fails the handshake instead of going out.
 */
const writeMessage = <A, I>(connection: Connection, schema: Schema.Schema<A, I>, message: NoInfer<A>) =>
  Schema.encode(schema)(message).pipe(
    Effect.mapError((e) => new HandshakeError({ reason: `cannot encode our handshake message: ${e.message}` })),
    Effect.flatMap((encoded) =>
      connection.write(encodeFrame(utf8.encode(JSON.stringify(encoded)))).pipe(
        Effect.mapError((e) => new HandshakeError({ reason: `connection closed: ${e.reason}` }))
      )
    )
  )

/** Strip control characters from a peer's text before it reaches our logs. */
const printable = (text: string) => text.replace(/[^\x20-\x7e]/g, "?")

const readMessage = <A, I>(reader: FrameReader, schema: Schema.Schema<A, I>, what: string) =>
  Effect.gen(function*() {
    const bytes = yield* reader.read(MAX_HANDSHAKE_FRAME).pipe(
      Effect.mapError((e) =>
        e._tag === "ProtocolError"
          ? new Abort({ reason: `bad ${what} frame: ${e.reason}` })
          : new HandshakeError({ reason: `connection closed: ${e.reason}` })
      )
    )
    const json = decodeJson(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"))
    const envelope = Either.flatMap(json, decodeEnvelope)
    if (Either.isLeft(json) || Either.isLeft(envelope)) return yield* new Abort({ reason: `malformed ${what} message` })
    if (envelope.right.t === "reject") {
      const reject = decodeReject(json.right)
      const reason = Either.isRight(reject) ? printable(reject.right.reason) : "(no reason)"
      return yield* new HandshakeError({ reason: `rejected by peer: ${reason}` })
    }
    const proto = envelope.right.proto
    if (proto !== undefined && proto !== HANDSHAKE_PROTOCOL) {
      const theirs = typeof proto === "string" ? JSON.stringify(printable(proto.slice(0, 64))) : "an invalid version"
      return yield* new Abort({ reason: `protocol version mismatch: peer speaks ${theirs}, we speak "${HANDSHAKE_PROTOCOL}"` })
    }
    const message = Schema.decodeUnknownEither(schema)(json.right)
    if (Either.isLeft(message)) return yield* new Abort({ reason: `malformed ${what} message` })
    return message.right
  })

// ---- the channel after the handshake ----

const makeChannel = (
  connection: Connection,
  reader: FrameReader,
  cipher: CipherApi,
  peerId: string,
  keys: { readonly send: Uint8Array; readonly receive: Uint8Array }
) =>
  Effect.gen(function*() {
    let sendCounter = 0
    let receiveCounter = 0
    // seal+write under one lock so nonce order is wire order.
    const sendLock = yield* Effect.makeSemaphore(1)

    const sendAll = (plaintexts: ReadonlyArray<Uint8Array>) =>
      sendLock.withPermits(1)(Effect.suspend(() => {
        const parts: Array<Uint8Array> = []
        for (const plaintext of plaintexts) {
          if (plaintext.length > MAX_FRAME_PLAINTEXT) {
            return Effect.dieMessage(`frame of ${plaintext.length} bytes exceeds MAX_FRAME_PLAINTEXT`)
          }
          if (sendCounter >= NONCE_LIMIT) {
            return Effect.zipRight(connection.close, Effect.fail(new ConnectionClosed({ reason: "nonce limit reached" })))
          }
          // The counter moves before the write: a nonce is never used twice, even if the write fails.
          const [ciphertext, tag] = cipher.sealParts(keys.send, nonceFor(sendCounter++), plaintext)
          parts.push(frameHeader(ciphertext.length + tag.length), ciphertext, tag)
        }
        return connection.write(...parts)
      }))
    const send = (plaintext: Uint8Array) => sendAll([plaintext])

    // The caller guarantees a single reader (the session's receive loop): no lock on this hot path.
    const receive = Effect.gen(function*() {
      if (receiveCounter >= NONCE_LIMIT) {
        yield* connection.close
        return yield* new ProtocolError({ reason: "nonce limit reached" })
      }
      // opened at once into a new buffer, so the frame bytes may be transient
      const sealed = yield* reader.readTransient(MAX_FRAME_PLAINTEXT + TAG_BYTES)
      const plaintext = cipher.open(keys.receive, nonceFor(receiveCounter), sealed)
      if (plaintext === undefined) {
        yield* connection.close
        return yield* new ProtocolError({ reason: "decryption failed" })
      }
      receiveCounter++
      return plaintext
    })

    const channel: Channel = { peerId, remoteLabel: connection.remoteLabel, send, sendAll, receive, close: connection.close }
    return channel
  })

// ---- the service ----

/** Options of `make` and `makeLayer`: the handshake deadline and an optional shared secret. */
export interface SecureChannelOptions {
  /** Deadline for the whole handshake (default HANDSHAKE_TIMEOUT). */
  readonly handshakeTimeout?: Duration.DurationInput
  /**
   * A passphrase both peers must know (non-empty). It is never sent, logged or stored: a key
   * derived from it (once, here) is mixed into the handshake proofs and the session keys.
   * Without it, the handshake is exactly the one without the option.
   */
  readonly secret?: SharedSecret
  /**
   * Our group (as parseGroup returns it): sent in our auth message and covered by our
   * signature; a peer in another group (or none) fails the handshake on both sides.
   * Not a secret, nor access control (that is `secret`): it keeps folders apart by mistake.
   * Without it, the handshake is exactly the one without the option.
   */
  readonly group?: string
}

/**
 * Builds the service: `cipher` seals the session, `identity` signs our transcripts, `curves`
 * does the ephemeral X25519 and checks the peer's Ed25519 signature. With a secret, this runs
 * scrypt once (a fraction of a second).
 */
export const make = (
  cipher: CipherApi,
  identity: IdentityApi,
  curves: CurvesApi,
  options: SecureChannelOptions = {}
): SecureChannelApi => {
  const timeout = options.handshakeTimeout ?? HANDSHAKE_TIMEOUT
  const secretKey = options.secret === undefined
    ? undefined
    : deriveSecretKey(Redacted.isRedacted(options.secret) ? Redacted.value(options.secret) : options.secret)
  const group = options.group
  if (group !== undefined && parseGroup(group) !== group) throw new Error(`invalid group name ${JSON.stringify(group)}`)
  /** The peer's group is not ours: fails both sides, and the dialler does not try again. */
  const checkGroup = (theirs: string | undefined) =>
    theirs === group ? undefined : new Abort({ reason: groupMismatch(group, theirs), told: GROUP_REJECT, mismatch: "group" })

  /** Deadline, reject message for our own refusals, and closing the connection on any failure. */
  const run = (connection: Connection, handshake: Effect.Effect<Channel, Abort | HandshakeError>) =>
    handshake.pipe(
      Effect.catchTag("Abort", (e) =>
        writeMessage(connection, Reject, { t: "reject", reason: (e.told ?? e.reason).slice(0, 256) }).pipe(
          Effect.ignore,
          Effect.zipRight(Effect.fail(new HandshakeError({ reason: e.reason, ...(e.mismatch ? { mismatch: e.mismatch } : {}) })))
        )),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new HandshakeError({ reason: "timeout" }) }),
      Effect.onError(() => connection.close)
    )

  const initiate = (connection: Connection, expectedPeerId?: string) =>
    run(
      connection,
      Effect.gen(function*() {
        const reader = new FrameReader(connection)
        const hello = yield* readMessage(reader, Hello, "hello")
        const eph = curves.generateX25519()
        const x: Exchange = {
          responderChallenge: fromHex(hello.challenge),
          initiatorChallenge: new Uint8Array(randomBytes(32)),
          responderEph: fromHex(hello.eph),
          initiatorEph: eph.publicKey
        }
        const dh = curves.sharedSecret(eph.privateKey, x.responderEph)
        if (!dh) return yield* new Abort({ reason: "all-zero shared secret" })
        yield* writeMessage(connection, InitiatorAuth, {
          t: "auth",
          proto: HANDSHAKE_PROTOCOL,
          id: identity.peerId,
          challenge: toHex(x.initiatorChallenge),
          eph: toHex(x.initiatorEph),
          sig: toHex(identity.sign(transcript(INITIATOR, x, undefined, group))),
          // We prove first: the responder answers with its proof only if ours checks out.
          ...(secretKey ? { proof: toHex(secretProof(secretKey, INITIATOR, x, dh, identity.publicKey)) } : {}),
          ...(group === undefined ? {} : { group })
        })

        const auth = yield* readMessage(reader, ResponderAuth, "auth").pipe(
          Effect.mapError((e) =>
            e._tag !== "HandshakeError"
              ? e
              : e.reason === `rejected by peer: ${SECRET_REJECT}`
              ? new HandshakeError({ reason: secretKey ? SECRET_MISMATCH : SECRET_ABSENT_HERE })
              : e.reason === `rejected by peer: ${GROUP_REJECT}`
              ? new HandshakeError({ reason: groupMismatch(group, null), mismatch: "group" })
              : e.reason === `rejected by peer: ${OWN_ID}`
              // the other end has our key: we dialled ourselves (an address of ours announced
              // with another key, or given with -a). A mismatch: the dialler stops.
              ? new HandshakeError({ reason: "we dialled ourselves (the peer has our own id)", mismatch: "peerId" })
              : e
          )
        )
        if (auth.id === identity.peerId) return yield* new Abort({ reason: OWN_ID, mismatch: "peerId" })
        const peerKey = fromHex(auth.id)
        if (!curves.verify(peerKey, transcript(RESPONDER, x, identity.publicKey, auth.group), fromHex(auth.sig))) {
          return yield* new Abort({ reason: "bad signature" })
        }
        if (expectedPeerId !== undefined && expectedPeerId.toLowerCase() !== auth.id) {
          return yield* new Abort({
            reason: `peer id mismatch: expected ${shortId(expectedPeerId)}, peer proved ${shortId(auth.id)}`,
            mismatch: "peerId"
          })
        }
        const refused = checkProof(
          secretKey,
          auth.proof,
          () => secretProof(secretKey!, RESPONDER, x, dh, identity.publicKey, peerKey)
        ) ?? checkGroup(auth.group)
        if (refused) return yield* refused
        const keys = deriveKeys(dh, x, identity.publicKey, peerKey, secretKey)
        return yield* makeChannel(connection, reader, cipher, auth.id, { send: keys.i2r, receive: keys.r2i })
      })
    )

  const accept = (connection: Connection) =>
    run(
      connection,
      Effect.gen(function*() {
        const reader = new FrameReader(connection)
        const eph = curves.generateX25519()
        const responderChallenge = new Uint8Array(randomBytes(32))
        yield* writeMessage(connection, Hello, {
          t: "hello",
          proto: HANDSHAKE_PROTOCOL,
          challenge: toHex(responderChallenge),
          eph: toHex(eph.publicKey)
        })

        const auth = yield* readMessage(reader, InitiatorAuth, "auth")
        if (auth.id === identity.peerId) return yield* new Abort({ reason: OWN_ID })
        const x: Exchange = {
          responderChallenge,
          initiatorChallenge: fromHex(auth.challenge),
          responderEph: eph.publicKey,
          initiatorEph: fromHex(auth.eph)
        }
        const dh = curves.sharedSecret(eph.privateKey, x.initiatorEph)
        if (!dh) return yield* new Abort({ reason: "all-zero shared secret" })
        const peerKey = fromHex(auth.id)
        // The signature covers the group the peer states: a relay cannot change it.
        if (!curves.verify(peerKey, transcript(INITIATOR, x, undefined, auth.group), fromHex(auth.sig))) {
          return yield* new Abort({ reason: "bad signature" })
        }
        // The initiator's proof is checked before anything of ours depends on the secret:
        // a stranger without it gets a reject and nothing to guess the passphrase against.
        const refused = checkProof(secretKey, auth.proof, () => secretProof(secretKey!, INITIATOR, x, dh, peerKey)) ??
          checkGroup(auth.group)
        if (refused) return yield* refused
        yield* writeMessage(connection, ResponderAuth, {
          t: "auth",
          proto: HANDSHAKE_PROTOCOL,
          id: identity.peerId,
          sig: toHex(identity.sign(transcript(RESPONDER, x, peerKey, group))),
          ...(secretKey ? { proof: toHex(secretProof(secretKey, RESPONDER, x, dh, peerKey, identity.publicKey)) } : {}),
          ...(group === undefined ? {} : { group })
        })
        const keys = deriveKeys(dh, x, peerKey, identity.publicKey, secretKey)
        return yield* makeChannel(connection, reader, cipher, auth.id, { send: keys.r2i, receive: keys.i2r })
      })
    )

  return { initiate, accept }
}

/** The SecureChannel service with `options`, over the Cipher, Identity and Curves services. */
export const makeLayer = (
  options: SecureChannelOptions = {}
): Layer.Layer<SecureChannel, never, Cipher | Identity | Curves> =>
  Layer.effect(
    SecureChannel,
    Effect.map(Effect.all([Cipher, Identity, Curves]), ([cipher, identity, curves]) => make(cipher, identity, curves, options))
  )

/** The SecureChannel service without a shared secret (the default). */
export const layer: Layer.Layer<SecureChannel, never, Cipher | Identity | Curves> = makeLayer()
