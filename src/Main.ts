#!/usr/bin/env node
/**
 * The `dsync` command: parse flags, read dsync.toml, merge, run the node.
 * Exit codes: 0 done or interrupted (Ctrl-C / SIGTERM), 1 runtime failure, 2 bad input.
 * The build bundles this module and what it imports into dist/dsync.mjs, which is what
 * users run (scripts/bundle-cli.mjs says why).
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
import { completionScript, helpText, parseArgs } from "./cli/Command.js"
import { tuneHeapGrowth } from "./cli/HeapGrowth.js"
import { flushLog, stderrLogger } from "./cli/Log.js"
import { ConfigError, TransportError } from "./domain/Errors.js"

// package.json sits one level above both src/ and dist/.
const version: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

const program = Effect.gen(function*() {
  const command = yield* parseArgs(process.argv.slice(2))
  if (command._tag === "Help") return yield* Effect.as(Effect.sync(() => process.stdout.write(helpText(version))), 0)
  if (command._tag === "Version") return yield* Effect.as(Effect.sync(() => process.stdout.write(`${version}\n`)), 0)
  if (command._tag === "Completions") {
    return yield* Effect.as(Effect.sync(() => process.stdout.write(completionScript(command.shell))), 0)
  }
  // The node's modules load only when there is a node to run, so --version, --help and
  // --completions start without them.
  const [{ runCli }, { configFilePath, loadConfigFile, resolveConfig }, NodeFileSystem] = yield* Effect.promise(() =>
    Promise.all([import("./cli/Run.js"), import("./programs/ResolveConfig.js"), import("@effect/platform-node/NodeFileSystem")])
  )
  const home = homedir()
  const file = command.config ?? configFilePath(process.env, process.platform, home)
  const config = yield* Effect.flatMap(
    loadConfigFile(file, command.config !== undefined),
    (settings) => resolveConfig(command.flags, settings, { cwd: process.cwd(), homedir: home })
  ).pipe(Effect.provide(NodeFileSystem.layer))
  // The live view only on a terminal, without NO_COLOR, and when no --log-level was asked for.
  const live = process.stdout.isTTY === true && !process.env.NO_COLOR && !command.logLevelGiven
  yield* runCli(config, { level: config.verbose ? LogLevel.Debug : command.logLevel, live })
  return 0
})

const say = (line: string) =>
  Effect.sync(() => {
    flushLog()
    process.stderr.write(`dsync: ${line}\n`)
  })

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

tuneHeapGrowth()

// The first Ctrl-C stops the node gracefully (goodbyes, index closed); a second one
// while that runs exits at once.
process.once("SIGINT", () =>
  process.once("SIGINT", () => {
    flushLog()
    process.stderr.write("dsync: interrupted again, exiting now\n")
    process.exit(130)
  }))

NodeRuntime.runMain(reported, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? (exit.value as number) : Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
})
