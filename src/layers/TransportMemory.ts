import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { formatAddress } from "../domain/Config.js"
import { ConnectionClosed, TransportError } from "../domain/Errors.js"
import { Transport, type Connection } from "../services/Transport.js"

/** One direction of a pipe: bounded chunks, and whether either end closed it. */
interface Pipe {
  readonly chunks: Queue.Queue<Uint8Array>
  readonly closed: Deferred.Deferred<void>
}

const makePipe = Effect.map(
  Effect.all([Queue.bounded<Uint8Array>(64), Deferred.make<void>()]),
  ([chunks, closed]): Pipe => ({ chunks, closed })
)

const endOfStream = new ConnectionClosed({ reason: "end of stream" })

/**
 * `effect`, unless the pipe closes first. Both sides stay interruptible even when the
 * caller is not (a finalizer writing a last message): the loser of the race must be
 * interruptible, or the race would wait for it forever.
 */
const untilClosed = <A>(pipe: Pipe, effect: Effect.Effect<A>, error: ConnectionClosed) =>
  Effect.raceFirst(
    Effect.interruptible(effect),
    Effect.interruptible(Effect.zipRight(Deferred.await(pipe.closed), Effect.fail(error)))
  )

/** A copy of the parts as one chunk (the writer may reuse its buffers). */
const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/**
 * One end of an in-memory pipe. Closing never waits (like a TCP reset it does not need
 * the peer to read): a reader first gets what was already sent, then end of stream;
 * a writer blocked on a full pipe is released with an error.
 */
const endpoint = (inbound: Pipe, outbound: Pipe, remoteHost: string, remoteLabel: string): Connection => ({
  remoteHost,
  remoteLabel,
  read: Effect.flatMap(Queue.poll(inbound.chunks), (buffered) => {
    if (buffered._tag === "Some") return Effect.succeed(buffered.value)
    return Effect.flatMap(Deferred.isDone(inbound.closed), (closed) =>
      closed ? Effect.fail(endOfStream) : untilClosed(inbound, Queue.take(inbound.chunks), endOfStream))
  }),
  write: (...parts) =>
    Effect.flatMap(Deferred.isDone(outbound.closed), (closed) =>
      closed
        ? Effect.fail(new ConnectionClosed({ reason: "closed" }))
        : untilClosed(outbound, Queue.offer(outbound.chunks, concat(parts)), new ConnectionClosed({ reason: "closed" })).pipe(
          Effect.asVoid
        )),
  close: Effect.zipRight(Deferred.succeed(outbound.closed, undefined), Deferred.succeed(inbound.closed, undefined))
})

/** Two connected in-memory connections (`a` talks to `b`). Bounded: a slow reader slows the writer. */
export const connectionPair = (labels: { a: string; b: string } = { a: "mem-a", b: "mem-b" }) =>
  Effect.gen(function*() {
    const aToB = yield* makePipe
    const bToA = yield* makePipe
    return {
      a: endpoint(bToA, aToB, labels.b, labels.b),
      b: endpoint(aToB, bToA, labels.a, labels.a)
    }
  })

/** Starts handling one inbound connection, in the listener's scope. */
type Listener = (connection: Connection) => void

/** An open connection: which hosts it joins, and how to drop it. */
interface Link {
  readonly from: string
  readonly to: string
  readonly close: Effect.Effect<void>
}

/** A simulated network: addresses are `host:port` strings; several nodes share one. */
export interface MemoryNetwork {
  readonly listeners: Map<string, Listener>
  /** Each open connection: `cutAll` drops them all, like a pulled cable. */
  readonly open: Set<Link>
  /** Host pairs (`a|b`, both orders) that cannot reach each other: see `partition`. */
  readonly blocked: Set<string>
}

/** A new, empty memory network: no listeners, no open connections. */
export const makeNetwork = (): MemoryNetwork => ({ listeners: new Map(), open: new Set(), blocked: new Set() })

/** Drop every open connection on the network (peers see the connection end). */
export const cutAll = (network: MemoryNetwork) =>
  Effect.forEach([...network.open], (link) => link.close, { discard: true })

/**
 * Split the network: hosts in different groups can no longer dial each other, and their
 * open connections drop. Hosts in no group keep reaching everyone. Replaces any earlier
 * partition; `partition(network, [])` heals it.
 */
export const partition = (network: MemoryNetwork, groups: ReadonlyArray<ReadonlyArray<string>>) =>
  Effect.suspend(() => {
    network.blocked.clear()
    for (const [i, group] of groups.entries()) {
      for (const other of groups.slice(i + 1)) {
        for (const a of group) for (const b of other) network.blocked.add(`${a}|${b}`).add(`${b}|${a}`)
      }
    }
    const cut = [...network.open].filter((link) => network.blocked.has(`${link.from}|${link.to}`))
    return Effect.forEach(cut, (link) => link.close, { discard: true })
  })

/** Transport for one host (`localHost`) of a memory network. */
export const layer = (network: MemoryNetwork, localHost: string) =>
  Layer.succeed(Transport, {
    listen: (address, onConnection) =>
      Effect.gen(function*() {
        const bound = { host: localHost, port: address.port }
        const key = formatAddress(bound)
        if (network.listeners.has(key)) return yield* Effect.fail(new TransportError({ message: `address in use: ${key}` }))
        // handlers run in the listener's scope, as with TCP: a node that stops ends its inbound sessions
        const run = yield* FiberSet.makeRuntime<never>()
        network.listeners.set(key, (connection) => run(Effect.ensuring(onConnection(connection), connection.close)))
        yield* Effect.addFinalizer(() => Effect.sync(() => network.listeners.delete(key)))
        return bound
      }),
    dial: (address) =>
      Effect.gen(function*() {
        const key = formatAddress(address)
        const listener = network.blocked.has(`${localHost}|${address.host}`) ? undefined : network.listeners.get(key)
        if (!listener) return yield* Effect.fail(new TransportError({ message: `connection refused: ${key}` }))
        const { a, b } = yield* connectionPair({ a: localHost, b: key })
        const link: Link = { from: localHost, to: address.host, close: Effect.zipRight(a.close, b.close) }
        network.open.add(link)
        listener(b)
        yield* Effect.addFinalizer(() => Effect.zipRight(a.close, Effect.sync(() => network.open.delete(link))))
        return a
      })
  })
