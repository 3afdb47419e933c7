import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as net from "node:net"
import { formatAddress, type PeerAddress } from "../domain/Config.js"
import { ConnectionClosed, TransportError } from "../domain/Errors.js"
import { Transport, type Connection } from "../services/Transport.js"

/** Pause the socket once this much unread data is queued: backpressure to the sender. */
const HIGH_WATER = 1024 * 1024
/** Bytes we let queue in the socket's user-space buffer before a writer waits. */
const WRITE_QUEUE_LIMIT = 1024 * 1024
/** Bytes written in one tick after which the cork comes off at once. */
const CORK_FLUSH = 64 * 1024
const DIAL_TIMEOUT_MS = 5_000

/** Wrap a connected socket as a Connection with pull-based reads and awaited writes. */
export const fromSocket = (socket: net.Socket): Connection => {
  socket.setNoDelay(true)
  const queued: Array<Uint8Array> = []
  let queuedBytes = 0
  let ended: string | undefined
  let waiter: (() => void) | undefined
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.()
  }
  let corked = false
  let corkedBytes = 0
  const uncork = () => {
    corked = false
    socket.uncork()
  }
  socket.on("data", (chunk: Buffer) => {
    queued.push(chunk)
    queuedBytes += chunk.length
    if (queuedBytes > HIGH_WATER) socket.pause()
    wake()
  })
  socket.on("end", () => {
    ended ??= "peer closed the connection"
    wake()
  })
  socket.on("error", (err) => {
    ended ??= err.message
    wake()
  })
  socket.on("close", () => {
    ended ??= "connection closed"
    wake()
  })
  const take = (): Uint8Array | undefined => {
    const chunk = queued.shift()
    if (chunk) {
      queuedBytes -= chunk.length
      if (queuedBytes <= HIGH_WATER / 2 && socket.isPaused()) socket.resume()
    }
    return chunk
  }
  const read: Effect.Effect<Uint8Array, ConnectionClosed> = Effect.suspend(() => {
    const chunk = take()
    if (chunk) return Effect.succeed(chunk)
    if (ended !== undefined) return Effect.fail(new ConnectionClosed({ reason: ended }))
    return Effect.async<void>((resume) => {
      waiter = () => resume(Effect.void)
      return Effect.sync(() => {
        waiter = undefined
      })
    }).pipe(Effect.zipRight(read))
  })
  const write = (...parts: ReadonlyArray<Uint8Array>): Effect.Effect<void, ConnectionClosed> =>
    Effect.suspend(() => {
      if (ended !== undefined || socket.destroyed) return Effect.fail(new ConnectionClosed({ reason: ended ?? "closed" }))
      // Corked until the end of this tick: the small frames written in it (a round of
      // requests, small files and their StreamEnds) leave in one gathering write, not a
      // syscall each. Once a tick has written CORK_FLUSH bytes they go at once: holding
      // large blocks until the tick ends left the socket idle while the next were read
      // and sealed (bench: 512 MiB at 90-99 MB/s corked to the tick, 127-132 uncorked).
      if (!corked) {
        corked = true
        corkedBytes = 0
        socket.cork()
        process.nextTick(uncork)
      }
      for (const part of parts) {
        socket.write(part)
        corkedBytes += part.length
      }
      if (corkedBytes >= CORK_FLUSH) uncork()
      // Wait for 'drain' only when much is queued: waiting after every large frame would
      // cost an event-loop turn per frame and leave the pipe idle in between.
      if (socket.writableLength < WRITE_QUEUE_LIMIT) return Effect.void
      return Effect.async<void, ConnectionClosed>((resume) => {
        const onDrain = () => {
          cleanup()
          resume(Effect.void)
        }
        const onClose = () => {
          cleanup()
          resume(Effect.fail(new ConnectionClosed({ reason: ended ?? "closed" })))
        }
        const cleanup = () => {
          socket.off("drain", onDrain)
          socket.off("close", onClose)
        }
        socket.on("drain", onDrain)
        socket.on("close", onClose)
        return Effect.sync(cleanup)
      })
    })
  const remoteHost = (socket.remoteAddress ?? "unknown").replace(/^::ffff:/, "")
  return {
    remoteHost,
    remoteLabel: formatAddress({ host: remoteHost, port: socket.remotePort ?? 0 }),
    read,
    write,
    close: Effect.sync(() => {
      ended ??= "closed locally"
      // What this tick wrote (e.g. a handshake's reject) goes out before the socket closes.
      if (corked) uncork()
      socket.destroy()
      wake()
    })
  }
}

const describeListenError = (address: PeerAddress, err: NodeJS.ErrnoException): string => {
  const reason = err.code === "EADDRINUSE"
    ? "address already in use"
    : err.code === "EACCES"
    ? "permission denied"
    : err.code === "EADDRNOTAVAIL"
    ? "address not available on this machine"
    : err.message
  return `cannot listen on ${formatAddress(address)}: ${reason}`
}

const listen: Transport["Type"]["listen"] = (address, onConnection) =>
  Effect.gen(function*() {
    const run = yield* FiberSet.makeRuntime<never>()
    const sockets = new Set<net.Socket>()
    const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      const connection = fromSocket(socket)
      run(Effect.ensuring(onConnection(connection), connection.close))
    })
    yield* Effect.acquireRelease(
      Effect.async<void, TransportError>((resume) => {
        server.once("error", (err) => resume(Effect.fail(new TransportError({ message: describeListenError(address, err) }))))
        server.listen({ host: address.host, port: address.port, exclusive: true }, () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          // close() waits for open connections: end them first
          server.close(() => resume(Effect.void))
          for (const socket of sockets) socket.destroy()
        })
    )
    server.on("error", () => {}) // after listening, errors surface per connection
    const bound = server.address() as net.AddressInfo
    return { host: address.host, port: bound.port }
  })

const dial: Transport["Type"]["dial"] = (address) =>
  Effect.acquireRelease(
    Effect.async<net.Socket, TransportError>((resume) => {
      const socket = net.connect({ host: address.host, port: address.port, noDelay: true })
      const timer = setTimeout(() => {
        socket.destroy()
        resume(Effect.fail(new TransportError({ message: `connect to ${formatAddress(address)}: timed out` })))
      }, DIAL_TIMEOUT_MS)
      socket.once("connect", () => {
        clearTimeout(timer)
        socket.removeAllListeners("error")
        resume(Effect.succeed(socket))
      })
      socket.once("error", (err) => {
        clearTimeout(timer)
        resume(Effect.fail(new TransportError({ message: `connect to ${formatAddress(address)}: ${err.message}` })))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.destroy()
      })
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map(fromSocket))

/** Real TCP via node:net. */
export const layer = Layer.succeed(Transport, { listen, dial })
