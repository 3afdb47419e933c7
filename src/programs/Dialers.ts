/**
 * Whom the node dials, from discovery's changes: one dial loop per peer. A loop is keyed
 * by the peer's id when discovery knows it (mDNS), else by its address (`-a`); it dials,
 * runs a session, and redials with backoff while the peer is wanted.
 *
 * - One loop per peer id: a peer heard on two interfaces is one key; a peer given with
 *   `-a` and also found by mDNS is dialled by the `-a` loop once it has proved who is
 *   there (the mDNS loop then ends with its session; mDNS does not start another).
 * - A peer lost by discovery (goodbye, expired) is not redialled; a session with it ends
 *   on its own.
 * - A mismatch (another group, or a key other than the advertised one) is logged once
 *   and that loop stops: redialling cannot help. Discovery finding the peer again (new
 *   or changed announcement) starts a new loop.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberMap from "effect/FiberMap"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { formatAddress } from "../domain/Config.js"
import type { HandshakeError, TransportError } from "../domain/Errors.js"
import { printable } from "../lib/Printable.js"
import { type DiscoveredPeer, PeerChange } from "../services/Discovery.js"
import { shortId } from "../services/Identity.js"
import type { Channel } from "../services/SecureChannel.js"

/** What the dial loops need from the node. */
export interface DialersOptions<R> {
  /** Dial the peer and run the handshake (proving `peer.peerId` when given); the connection closes with the scope. */
  readonly connect: (peer: DiscoveredPeer) => Effect.Effect<Channel, TransportError | HandshakeError, Scope.Scope | R>
  /** Run a session over the channel until it ends. */
  readonly serve: (channel: Channel) => Effect.Effect<unknown, never, R>
  /** Is a session with this peer running now (dialled by either side)? */
  readonly connected: (peerId: string) => boolean
  /** Told when a peer with a known id could not be reached or its session ended (discovery looks again). */
  readonly peerLost: (peerId: string) => Effect.Effect<void>
  /** Delays between attempts. */
  readonly reconnect: Schedule.Schedule<unknown, unknown>
}

/** One loop's state, read and written synchronously (one JS thread: no check-then-act races). */
interface Loop {
  /** The newest word on the peer (its address may change). */
  peer: DiscoveredPeer
  /** Keep dialling; false once lost. */
  wanted: boolean
}

/** A peer for log lines: `"name" (1a2b3c4d) at 10.0.0.2:9000`, as much as is known. */
export const describePeer = (peer: DiscoveredPeer): string => {
  const id = peer.peerId
  const who = [...(peer.name ? [`"${printable(peer.name)}"`] : []), ...(id ? [`(${shortId(id)})`] : [])].join(" ")
  return who === "" ? formatAddress(peer.address) : `${who} at ${formatAddress(peer.address)}`
}

/**
 * The dial loops, started and stopped by `onChange` (feed it discovery's changes); they
 * end with the caller's scope.
 */
export const makeDialers = <R>(options: DialersOptions<R>) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    const fibers = yield* FiberMap.make<string>()
    const loops = new Map<string, Loop>()
    /** Peer id → key of the loop whose session it is (the last to prove it). */
    const owners = new Map<string, string>()

    /** Stops the loop (synchronously, so a Found right after starts a new one) and frees what it owned. */
    const stop = (key: string) => {
      const loop = loops.get(key)
      if (loop === undefined) return
      loop.wanted = false
      for (const [id, owner] of owners) if (owner === key) owners.delete(id)
      loops.delete(key)
    }

    const attempt = (key: string, loop: Loop) =>
      Effect.scoped(Effect.gen(function*() {
        if (!loop.wanted) return // lost while waiting to redial
        const channel = yield* options.connect(loop.peer)
        // The newest connection to a peer is its session on both sides (see Sessions):
        // this loop now owns the peer, and an mDNS loop for it stops after its session.
        owners.set(channel.peerId, key)
        yield* options.serve(channel)
      }))

    /** After an attempt: go on? (Decided and recorded in one synchronous step.) */
    const goOn = (key: string, loop: Loop, result: Either.Either<void, TransportError | HandshakeError>) => {
      const mismatch = Either.isLeft(result) && result.left._tag === "HandshakeError" && result.left.mismatch !== undefined
      const handedOver = loop.peer.peerId !== undefined && owners.has(loop.peer.peerId) && owners.get(loop.peer.peerId) !== key
      if (loop.wanted && !mismatch && !handedOver) return true
      if (loops.get(key) === loop) stop(key)
      return false
    }

    const logFailure = (loop: Loop, e: TransportError | HandshakeError) =>
      e._tag === "HandshakeError" && e.mismatch !== undefined
        ? Effect.logWarning(`not dialling ${describePeer(loop.peer)} again: ${printable(e.reason)}`)
        : Effect.logDebug(`cannot reach ${describePeer(loop.peer)}: ${e._tag === "TransportError" ? e.message : printable(e.reason)}`)

    const run = (key: string, loop: Loop) =>
      attempt(key, loop).pipe(
        Effect.tapError((e) => logFailure(loop, e)),
        Effect.either,
        Effect.tap(() => (loop.peer.peerId === undefined ? Effect.void : options.peerLost(loop.peer.peerId))),
        Effect.repeat({ schedule: options.reconnect, while: (result) => goOn(key, loop, result) })
      )

    const found = (peer: DiscoveredPeer) => {
      const key = peer.peerId ?? formatAddress(peer.address)
      const owner = peer.peerId === undefined ? undefined : owners.get(peer.peerId)
      // Already dialled by the -a loop that proved this id.
      if (owner !== undefined && owner !== key) return Effect.void
      const existing = loops.get(key)
      if (existing !== undefined) {
        existing.peer = peer
        existing.wanted = true
        return Effect.void
      }
      const loop: Loop = { peer, wanted: true }
      loops.set(key, loop)
      return Effect.asVoid(FiberMap.run(fibers, key, Effect.provide(run(key, loop), context)))
    }

    const lost = (peerId: string) => {
      const loop = loops.get(peerId)
      if (loop === undefined) return Effect.void
      // In a session: it ends on its own, and the loop with it. Otherwise stop dialling now.
      if (options.connected(peerId)) {
        loop.wanted = false
        return Effect.void
      }
      stop(peerId)
      return FiberMap.remove(fibers, peerId)
    }

    /** Starts, updates or stops loops for one change from discovery. */
    const onChange = (change: PeerChange): Effect.Effect<void> =>
      PeerChange.$match(change, { Found: ({ peer }) => found(peer), Lost: ({ peerId }) => lost(peerId) })

    /** Keys of the loops running now (tests). */
    const keys = Effect.sync(() => [...loops.keys()])

    return { onChange, keys }
  })

/** The node's dial loops, from makeDialers. */
export type Dialers = Effect.Effect.Success<ReturnType<typeof makeDialers>>
