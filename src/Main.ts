#!/usr/bin/env node
/**
 * The `dsync` command: parse flags, read dsync.toml, merge, run the node.
 * Exit codes: 0 done or interrupted (Ctrl-C / SIGTERM), 1 runtime failure, 2 bad input.
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import { inspect } from "node:util"
import { ConfigError, TransportError } from "./domain/Errors.js"
import { runNode } from "./Live.js"
import { configFilePath, loadConfigFile, resolveConfig } from "./programs/ResolveConfig.js"

// package.json sits one level above both src/ and dist/.
const version: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

// Every option is optional or boolean so that "not given" is visible and the config
// file can fill the gap; defaults are applied in resolveConfig.
const options = {
  path: Options.text("path").pipe(
    Options.withAlias("d"),
    Options.withDescription("Directory to sync (required unless dsync.toml sets path)"),
    Options.optional
  ),
  // Text, not integer: resolveConfig checks it, with the same message as for dsync.toml.
  port: Options.text("port").pipe(
    Options.withAlias("p"),
    Options.withPseudoName("PORT"),
    Options.withDescription("TCP port to listen on (default 9000)"),
    Options.optional
  ),
  name: Options.text("name").pipe(
    Options.withAlias("n"),
    Options.withDescription("Friendly name for this instance (default dsync-instance)"),
    Options.optional
  ),
  peers: Options.text("peer").pipe(
    Options.withAlias("a"),
    Options.withDescription("Peer to connect to, ip:port; repeatable; replaces peer from dsync.toml"),
    Options.repeated
  ),
  noDiscovery: Options.boolean("no-discovery").pipe(Options.withDescription("Disable automatic mDNS discovery")),
  verbose: Options.boolean("verbose").pipe(Options.withAlias("v"), Options.withDescription("Show detailed logs")),
  excludes: Options.text("exclude").pipe(
    Options.withAlias("e"),
    Options.withDescription("Exclude pattern, repeatable (e.g. *.log); added to dsync.toml's exclude"),
    Options.repeated
  ),
  config: Options.text("config").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("Config file to read instead of the default dsync.toml"),
    Options.optional
  )
}

/** Options taking a value, by every spelling, mapped to their long name. */
const valueFlags: Record<string, string> = {
  "-d": "--path",
  "--path": "--path",
  "-p": "--port",
  "--port": "--port",
  "-n": "--name",
  "--name": "--name",
  "-a": "--peer",
  "--peer": "--peer",
  "-e": "--exclude",
  "--exclude": "--exclude",
  "--config": "--config",
  "--log-level": "--log-level",
  "--completions": "--completions"
}
const repeatable = new Set(["--peer", "--exclude"])
const booleanFlags = new Set(["--no-discovery", "-v", "--verbose", "--wizard"])

/**
 * Checks argv before @effect/cli sees it, because 0.77 silently drops a trailing
 * `-a`/`-e` with no value, ignores unknown letters in `-vx`, lets a boolean swallow
 * a following `false`, rejects `--peer=x` for repeated options, and only honours
 * built-ins (--help, --version, --log-level) at the front. Returns the arguments to
 * hand to the parser, normalised (`--x=v` split, built-ins first).
 */
const checkArgs = (args: ReadonlyArray<string>): Either.Either<Array<string>, ConfigError> => {
  const bad = (message: string) => Either.left(new ConfigError({ message: `${message} (see dsync --help)` }))
  if (args.includes("-h") || args.includes("--help")) return Either.right(["--help"])
  if (args.includes("--version")) return Either.right(["--version"])
  const front: Array<string> = []
  const rest: Array<string> = []
  const seen = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const eq = args[i]!.startsWith("--") ? args[i]!.indexOf("=") : -1
    const flag = eq > 0 ? args[i]!.slice(0, eq) : args[i]!
    let value = eq > 0 ? args[i]!.slice(eq + 1) : undefined
    const long = valueFlags[flag]
    if (long !== undefined) {
      if (value === undefined) {
        if (i + 1 >= args.length) return bad(`option ${flag} needs a value`)
        value = args[++i]!
      }
      if (seen.has(long) && !repeatable.has(long)) return bad(`option ${long} given more than once`)
      seen.add(long)
      ;(long === "--log-level" || long === "--completions" ? front : rest).push(long, value)
    } else if (booleanFlags.has(flag) && value === undefined) {
      rest.push(flag)
    } else if (flag.startsWith("-")) {
      return bad(`unknown option ${args[i]}`)
    } else {
      return bad(`unexpected argument "${args[i]}"`)
    }
  }
  return Either.right([...front, ...rest])
}

type Parsed = Command.Command.ParseConfig<typeof options> & { readonly logLevel: LogLevel.LogLevel }

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "")

/**
 * Runs the @effect/cli parser only: returns the flags, or None when a built-in
 * (--help, --version, --completions) already did its job. The CLI prints its own
 * multi-line error docs to stderr; we silence them and print one line instead, and
 * strip the colour it puts in --help when stdout is not a terminal or NO_COLOR is set.
 */
const parseArgs = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const result = yield* Ref.make(Option.none<Parsed>())
    const command = Command.make("dsync", options, (flags) =>
      // --log-level (a built-in) is applied around this handler: remember it for the node.
      Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (logLevel) =>
        Ref.set(result, Option.some({ ...flags, logLevel }))
      )).pipe(Command.withDescription("Zero-configuration peer-to-peer real-time folder sync for a local network"))
    const console = yield* Effect.console
    const plain = !process.stdout.isTTY || Boolean(process.env.NO_COLOR)
    yield* Command.run(command, { name: "dsync", version })(argv).pipe(
      Effect.withConsole({
        ...console,
        error: () => Effect.void,
        log: (...args: ReadonlyArray<unknown>) =>
          console.log(...args.map((a) => (typeof a === "string" ? (plain ? stripAnsi(a) : a).trimEnd() : a)))
      }),
      Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer))
    )
    return yield* Ref.get(result)
  })

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
  const args = yield* checkArgs(process.argv.slice(2))
  const parsed = yield* parseArgs([...process.argv.slice(0, 2), ...args])
  if (Option.isNone(parsed)) return 0
  const flags = parsed.value
  const home = homedir()
  const explicit = Option.isSome(flags.config)
  const file = Option.getOrElse(flags.config, () => configFilePath(process.env, process.platform, home))
  const config = yield* Effect.flatMap(
    loadConfigFile(file, explicit),
    (settings) =>
      resolveConfig(
        {
          path: Option.getOrUndefined(flags.path),
          port: Option.getOrUndefined(flags.port),
          name: Option.getOrUndefined(flags.name),
          peers: flags.peers,
          noDiscovery: flags.noDiscovery,
          verbose: flags.verbose,
          excludes: flags.excludes
        },
        settings,
        { cwd: process.cwd(), homedir: home }
      )
  ).pipe(Effect.provide(NodeFileSystem.layer))
  yield* runNode(config).pipe(Logger.withMinimumLogLevel(config.verbose ? LogLevel.Debug : flags.logLevel))
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
      if (ValidationError.isValidationError(e) && "error" in e) {
        const text = stripAnsi(HelpDoc.toAnsiText(e.error)).replace(/\s+/g, " ").trim()
        return Effect.as(say(`${text} (see dsync --help)`), 2)
      }
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
