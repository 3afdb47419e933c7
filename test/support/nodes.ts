import { Cause, type Duration, Effect, Layer, Logger, LogLevel } from "effect"
type DurationInput = Duration.DurationInput
import * as fs from "node:fs"
import * as path from "node:path"
import type { SessionTiming } from "../../src/programs/PeerSession.js"
import { type ReconnectDelays, startNode } from "../../src/programs/SyncNode.js"
import type { RateLimits } from "../../src/services/RateLimiter.js"
import type { Folder } from "../../src/services/Folder.js"
import type { Watcher } from "../../src/services/Watcher.js"
import { memoryNodeLayer, type MemoryNetwork } from "../../src/Testing.js"
import { describeTree } from "./fs.js"

export const PORT = 9000

/** Start a node on the memory network in `root`, dialling `peers` (host names); it stops with the scope. */
export const memoryNode = (
  network: MemoryNetwork,
  host: string,
  root: string,
  peers: ReadonlyArray<string>,
  timing?: Partial<SessionTiming> & {
    readonly indexWindow?: number
    readonly limits?: Partial<RateLimits>
    readonly reconnect?: ReconnectDelays
    readonly rescanInterval?: DurationInput
  },
  /** Replaces some of the node's services (e.g. a failing watcher), perhaps wrapping the node's own Folder. */
  overrides: Layer.Layer<never> | Layer.Layer<Watcher> | Layer.Layer<Folder, never, Folder> = Layer.empty
) =>
  Effect.gen(function*() {
    // built in the caller's scope: the node's services live as long as the node
    const base = memoryNodeLayer({
      network,
      host,
      root,
      peers: peers.map((h) => ({ host: h, port: PORT })),
      ...(timing?.limits ? { limits: timing.limits } : {})
    })
    const services = yield* Layer.build(Layer.merge(base, Layer.provide(overrides, base)))
    return yield* Effect.provide(
      startNode({
        name: host,
        listen: { host, port: PORT },
        ...(timing ? { timing } : {}),
        ...(timing?.indexWindow ? { indexWindow: timing.indexWindow } : {}),
        ...(timing?.reconnect ? { reconnect: timing.reconnect } : {}),
        ...(timing?.rescanInterval ? { rescanInterval: timing.rescanInterval } : {})
      }),
      services
      // each line says which node wrote it (forked fibers inherit the annotation)
    ).pipe(Effect.annotateLogs("node", host))
  })

export const write = (root: string, rel: string, content: string, mtime?: Date) => {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
  fs.writeFileSync(path.join(root, rel), content)
  if (mtime) fs.utimesSync(path.join(root, rel), mtime, mtime)
}

export const sameTree = (a: string, b: string) => JSON.stringify(describeTree(a)) === JSON.stringify(describeTree(b))

/** Logs captured as plain lines (to assert on refusals). */
export const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ cause, logLevel, message }) => {
    const text = `${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`
    lines.push(Cause.isEmpty(cause) ? text : `${text}: ${Cause.pretty(cause)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger), level: Logger.withMinimumLogLevel(LogLevel.Debug) }
}
