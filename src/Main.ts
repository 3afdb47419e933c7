#!/usr/bin/env node
/**
 * The `dsync` command: parse flags, read dsync.toml, merge, run the node.
 * Exit codes: 0 done or interrupted (Ctrl-C / SIGTERM), 1 runtime failure, 2 bad input.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import { inspect } from "node:util"
import { completionScript, helpText, parseArgs } from "./cli/Command.js"
import { ConfigError, TransportError } from "./domain/Errors.js"

// package.json sits one level above both src/ and dist/.
const version: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** `HH:MM:SS.mmm LEVEL message key=value` on stderr (stdout stays free for output). */
const stderrLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  const parts = (Array.isArray(message) ? message : [message]).map((m) => (typeof m === "string" ? m : inspect(m)))
  let line = `${time} ${logLevel.label.padEnd(5)} ${parts.join(" ")}`
  for (const [key, value] of annotations) line += ` ${key}=${typeof value === "string" ? value : inspect(value)}`
  if (!Cause.isEmpty(cause)) {
    const err = Cause.squash(cause)
    line += `: ${err instanceof Error ? err.message : inspect(err)}`
  }
  process.stderr.write(line + "\n")
})

const program = Effect.gen(function*() {
  const command = yield* parseArgs(process.argv.slice(2))
  if (command._tag === "Help") return yield* Effect.as(Effect.sync(() => process.stdout.write(helpText(version))), 0)
  if (command._tag === "Version") return yield* Effect.as(Effect.sync(() => process.stdout.write(`${version}\n`)), 0)
  if (command._tag === "Completions") {
    return yield* Effect.as(Effect.sync(() => process.stdout.write(completionScript(command.shell))), 0)
  }
  // The node's modules load only when there is a node to run, so --version, --help and
  // --completions start without them.
  const [{ runNode }, { configFilePath, loadConfigFile, resolveConfig }, NodeFileSystem] = yield* Effect.promise(() =>
    Promise.all([import("./Live.js"), import("./programs/ResolveConfig.js"), import("@effect/platform-node/NodeFileSystem")])
  )
  const home = homedir()
  const file = command.config ?? configFilePath(process.env, process.platform, home)
  const config = yield* Effect.flatMap(
    loadConfigFile(file, command.config !== undefined),
    (settings) => resolveConfig(command.flags, settings, { cwd: process.cwd(), homedir: home })
  ).pipe(Effect.provide(NodeFileSystem.layer))
  yield* runNode(config).pipe(Logger.withMinimumLogLevel(config.verbose ? LogLevel.Debug : command.logLevel))
  return 0
})

const say = (line: string) => Effect.sync(() => process.stderr.write(`dsync: ${line}\n`))

/** One line on stderr per failure, and the exit code; interruption passes through (exit 0). */
const reported = program.pipe(
  Effect.catchAllCause((cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const e = failure.value
      if (e instanceof ConfigError) return Effect.as(say(e.message), 2)
      if (e instanceof TransportError) return Effect.as(say(e.message), 1)
    }
    // A bug, not bad input: keep the full cause for the report.
    return Effect.as(say(`internal error: ${Cause.pretty(cause)}`), 1)
  }),
  Effect.provide(Logger.replace(Logger.defaultLogger, stderrLogger))
)

NodeRuntime.runMain(reported, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? (exit.value as number) : Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
})
