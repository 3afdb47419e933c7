/**
 * What the `dsync` command shows while a node runs: on a terminal, the live progress
 * view (log lines printed above it); otherwise (no terminal, NO_COLOR, or an explicit
 * --log-level) the start-up line on stdout and log lines on stderr, as always.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { NodeConfig } from "../domain/Config.js"
import { runNode } from "../Live.js"
import { printable } from "../lib/Printable.js"
import type { NodeEvent } from "../services/Events.js"
import { collectingCipherLayer } from "./YoungCollections.js"
import { formatLogLine } from "./Log.js"
import { renderProgress } from "./Progress.js"

/** The start-up line, `dsync <name> · id … · folder … · listening on …`, on stdout. */
const printBanner = (events: Stream.Stream<NodeEvent>) =>
  events.pipe(
    Stream.filter((e) => e._tag === "Started"),
    Stream.take(1), // then the subscription ends: later events cost nothing here
    Stream.runForEach((e) =>
      Console.log(`dsync ${printable(e.name)} · id ${e.peerId.slice(0, 8)} · folder ${e.folder} · listening on ${e.address}`))
  )

/** Log lines kept for the live view when it cannot print them fast enough (the oldest go). */
const LOG_BACKLOG = 1000

/** Run the node until interrupted, showing it as `live` (progress view) or plain log lines. */
export const runCli = (config: NodeConfig, options: { readonly level: LogLevel.LogLevel; readonly live: boolean }) =>
  Effect.gen(function*() {
    const cipher = collectingCipherLayer()
    if (!options.live) return yield* runNode(config, printBanner, cipher).pipe(Logger.withMinimumLogLevel(options.level))
    // Live: log lines go above the progress block, never through it; at Info they would
    // repeat what the view shows, so it starts at Warning (Debug still shows all).
    const lines = yield* Queue.sliding<string>(LOG_BACKLOG)
    const intoView = Logger.make((o) => void Queue.unsafeOffer(lines, formatLogLine(o)))
    const level = LogLevel.lessThan(options.level, LogLevel.Warning) && !LogLevel.lessThan(options.level, LogLevel.Info)
      ? LogLevel.Warning
      : options.level
    return yield* runNode(config, (events) =>
      renderProgress(events, process.stdout, { mode: "live", color: !process.env.NO_COLOR, messages: Stream.fromQueue(lines) }), cipher).pipe(
        Logger.withMinimumLogLevel(level),
        Effect.provide(Logger.replace(Logger.defaultLogger, intoView))
      )
  })
