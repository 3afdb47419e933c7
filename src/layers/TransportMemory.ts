import { Effect, Layer, Queue, Ref } from "effect"
import { formatAddress } from "../domain/Config.js"
import { ConnectionClosed, TransportError } from "../domain/Errors.js"
import { Transport, type Connection } from "../services/Transport.js"

const EOF = Symbol("eof")
type Chunk = Uint8Array | typeof EOF

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

/** One end of an in-memory pipe. */
const endpoint = (
  inbound: Queue.Queue<Chunk>,
  outbound: Queue.Queue<Chunk>,
  closed: Ref.Ref<boolean>,
  remoteHost: string,
  remoteLabel: string
): Connection => {
  const close = Effect.gen(function*() {
    if (yield* Ref.getAndSet(closed, true)) return
    yield* Queue.offer(outbound, EOF)
    yield* Queue.offer(inbound, EOF)
  })
  return {
    remoteHost,
    remoteLabel,
    read: Effect.flatMap(Queue.take(inbound), (chunk) =>
      chunk === EOF
        ? Effect.zipRight(Queue.offer(inbound, EOF), Effect.fail(new ConnectionClosed({ reason: "end of stream" })))
        : Effect.succeed(chunk)),
    write: (...parts) =>
      Effect.flatMap(Ref.get(closed), (isClosed) =>
        isClosed
          ? Effect.fail(new ConnectionClosed({ reason: "closed" }))
          : Queue.offer(outbound, concat(parts))),
    close
  }
}

/** Two connected in-memory connections (`a` talks to `b`). Bounded: a slow reader slows the writer. */
export const connectionPair = (labels: { a: string; b: string } = { a: "mem-a", b: "mem-b" }) =>
  Effect.gen(function*() {
    const aToB = yield* Queue.bounded<Chunk>(64)
    const bToA = yield* Queue.bounded<Chunk>(64)
    const aClosed = yield* Ref.make(false)
    const bClosed = yield* Ref.make(false)
    return {
      a: endpoint(bToA, aToB, aClosed, labels.b, labels.b),
      b: endpoint(aToB, bToA, bClosed, labels.a, labels.a)
    }
  })

type Listener = (connection: Connection) => Effect.Effect<void>

/** A simulated network: addresses are `host:port` strings; several nodes share one. */
export interface MemoryNetwork {
  readonly listeners: Map<string, Listener>
  /** Close of each open connection: `cutAll` drops them all, like a pulled cable. */
  readonly open: Set<Effect.Effect<void>>
}

export const makeNetwork = (): MemoryNetwork => ({ listeners: new Map(), open: new Set() })

/** Drop every open connection on the network (peers see the connection end). */
export const cutAll = (network: MemoryNetwork) =>
  Effect.forEach([...network.open], (close) => close, { discard: true })

/** Transport for one host (`localHost`) of a memory network. */
export const layer = (network: MemoryNetwork, localHost: string) =>
  Layer.succeed(Transport, {
    listen: (address, onConnection) =>
      Effect.gen(function*() {
        const bound = { host: localHost, port: address.port }
        const key = formatAddress(bound)
        if (network.listeners.has(key)) return yield* Effect.fail(new TransportError({ message: `address in use: ${key}` }))
        network.listeners.set(key, onConnection)
        yield* Effect.addFinalizer(() => Effect.sync(() => network.listeners.delete(key)))
        return bound
      }),
    dial: (address) =>
      Effect.gen(function*() {
        const key = formatAddress(address)
        const onConnection = network.listeners.get(key)
        if (!onConnection) return yield* Effect.fail(new TransportError({ message: `connection refused: ${key}` }))
        const { a, b } = yield* connectionPair({ a: localHost, b: key })
        const closeBoth = Effect.zipRight(a.close, b.close)
        network.open.add(closeBoth)
        yield* Effect.forkDaemon(Effect.ensuring(onConnection(b), b.close))
        yield* Effect.addFinalizer(() => Effect.zipRight(a.close, Effect.sync(() => network.open.delete(closeBoth))))
        return a
      })
  })
