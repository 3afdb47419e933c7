/**
 * The `dsync` command line on @effect/cli: the options, a strict argv check in front of
 * @effect/cli's parser, our help text, and shell completions.
 *
 * @effect/cli 0.77.2 parses the options (values, repeats, switches, checked values), but
 * its parser lets some mistakes through (see shared/design.md, section 1), so
 * `checkArgv` runs first: it refuses unknown options, short clusters (`-vx`), a value
 * option without its value, a switch followed by a stray word (`--no-discovery false`),
 * and a single-value option given twice, and hands @effect/cli the words in one form
 * (`--long value`, which also gets round `--peer=x` being refused). `--help`,
 * `--version` and `--completions` win wherever they appear (@effect/cli sees them only
 * first). We parse with `CommandDescriptor.parse`, not `Command.run`: it prints nothing,
 * so every error stays one `dsync: ...` line.
 *
 * Deep imports only: the @effect/cli index (and its Command module) load more than we use.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import type * as CommandDirective from "@effect/cli/CommandDirective"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { defaults, GROUP_EXPECTED, parseGroup, parseRate } from "../domain/Config.js"
import { ConfigError } from "../domain/Errors.js"
import type { Flags } from "../programs/ResolveConfig.js"

/** Shells `--completions` writes a script for. */
export type Shell = "bash" | "zsh" | "fish"

/** What the command line asks for. */
export type Invocation =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Completions"; readonly shell: Shell }
  | {
    readonly _tag: "Run"
    readonly flags: Flags
    readonly config?: string
    readonly logLevel: LogLevel.LogLevel
    /** Was --log-level given? (Then output stays plain log lines, even on a terminal.) */
    readonly logLevelGiven: boolean
  }

interface Spec {
  readonly long: string
  readonly short?: string
  /** What the value is called in --help; absent for a switch. */
  readonly value?: string
  readonly repeatable?: boolean
  readonly help: string
}

const rateHelp = (what: string, byDefault: number) =>
  `${what} cap for all peers together, e.g. 20MB or 512KiB (default ${byDefault}${byDefault === 0 ? ": unlimited" : ""})`

/** The seed's flags, ours (--interface, --group, --config, --secret-file, --log-level, rates), and the built-ins. Order is the --help order. */
const spec = {
  path: { long: "path", short: "d", value: "DIR", help: "Directory to sync (required unless dsync.toml sets path)" },
  port: { long: "port", short: "p", value: "PORT", help: `TCP port to listen on (default ${defaults.port})` },
  name: { long: "name", short: "n", value: "NAME", help: `Friendly name for this instance (default ${defaults.name})` },
  peer: {
    long: "peer",
    short: "a",
    value: "IP:PORT",
    repeatable: true,
    help: "Peer to connect to; repeatable; replaces peer from dsync.toml (default none)"
  },
  noDiscovery: { long: "no-discovery", help: "Disable automatic mDNS discovery (default off)" },
  interface: {
    long: "interface",
    value: "NAME",
    repeatable: true,
    help: "Network interface for mDNS discovery, repeatable; replaces dsync.toml's interface (default all that are up, but loopback)"
  },
  group: {
    long: "group",
    short: "g",
    value: "NAME",
    help: "Sync only with peers of this group: keeps unrelated folders on one LAN apart (default none: any dsync)"
  },
  verbose: { long: "verbose", short: "v", help: "Show detailed logs (default off)" },
  exclude: {
    long: "exclude",
    short: "e",
    value: "GLOB",
    repeatable: true,
    help: "Exclude pattern, repeatable (e.g. *.log); added to dsync.toml's exclude (default none)"
  },
  config: { long: "config", value: "FILE", help: "Config file to read instead of the default dsync.toml" },
  secretFile: {
    long: "secret-file",
    value: "FILE",
    help: "File holding a passphrase every peer must share to connect (never sent; default none)"
  },
  logLevel: { long: "log-level", value: "LEVEL", help: "Log level: debug, info, warning, error or none (default info)" },
  maxSendRate: { long: "max-send-rate", value: "RATE", help: rateHelp("Upload", defaults.maxSendRate) },
  maxRecvRate: { long: "max-recv-rate", value: "RATE", help: rateHelp("Download", defaults.maxRecvRate) },
  completions: { long: "completions", value: "SHELL", help: "Print the completion script for bash, zsh or fish and exit" },
  version: { long: "version", help: "Print the version and exit" },
  help: { long: "help", short: "h", help: "Print this help and exit" }
} satisfies Record<string, Spec>

const SPECS: ReadonlyArray<Spec> = Object.values(spec)

const bySpelling = new Map<string, Spec>(
  SPECS.flatMap((s) => [[`--${s.long}`, s] as const, ...(s.short ? [[`-${s.short}`, s] as const] : [])])
)

const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

const SHELLS: Record<string, Shell> = { bash: "bash", sh: "bash", zsh: "zsh", fish: "fish" }

/** The `--help` text: usage, each option with its help line, and where dsync.toml is read from. */
export const helpText = (version: string): string => {
  const left = (s: Spec) => `${s.short ? `-${s.short}, ` : "    "}--${s.long}${s.value ? ` ${s.value}` : ""}`
  const width = Math.max(...SPECS.map((s) => left(s).length))
  return [
    `dsync ${version}: zero-configuration peer-to-peer real-time folder sync for a local network`,
    "",
    "Usage: dsync -d <directory> [options]",
    "",
    "Options:",
    ...SPECS.map((s) => `  ${left(s).padEnd(width)}  ${s.help}`),
    "",
    "Settings may also come from dsync.toml ($XDG_CONFIG_HOME/dsync/, else ~/.config/dsync/); flags win.",
    ""
  ].join("\n")
}

// ---------------------------------------------------------------------------
// The @effect/cli command

/** A value check whose message is the whole error line. */
const checked = <A>(decode: (text: string) => Either.Either<A, string>) => (text: string) =>
  Either.match(decode(text), {
    onLeft: (message) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message))),
    onRight: Effect.succeed
  })

const decodeLogLevel = (text: string): Either.Either<LogLevel.LogLevel, string> => {
  const level = LOG_LEVELS[text.toLowerCase()]
  return level === undefined
    ? Either.left(`--log-level must be one of ${Object.keys(LOG_LEVELS).join(", ")}, got "${text}"`)
    : Either.right(level)
}

const decodeRate = (flag: string) => (text: string): Either.Either<number, string> => {
  const rate = parseRate(text)
  return rate === undefined
    ? Either.left(`--${flag} must be a rate like 20MB or 512KiB (0: unlimited), got "${text}"`)
    : Either.right(rate)
}

const decodeGroup = (text: string): Either.Either<string, string> => {
  const group = parseGroup(text)
  return group === undefined ? Either.left(`--group must be ${GROUP_EXPECTED}, got "${text}"`) : Either.right(group)
}

const named = <A>(s: Spec, options: Options.Options<A>): Options.Options<A> =>
  s.short === undefined ? options : Options.withAlias(options, s.short)

const text = (s: Spec) =>
  named(s, Options.text(s.long).pipe(Options.withPseudoName(s.value ?? "VALUE"), Options.withDescription(s.help)))

const switchOf = (s: Spec) => named(s, Options.boolean(s.long).pipe(Options.withDescription(s.help)))

/** Every option as @effect/cli Options; the log level and the rates are checked as they are parsed. */
export const options = Options.all({
  path: Options.optional(text(spec.path)),
  port: Options.optional(text(spec.port)),
  name: Options.optional(text(spec.name)),
  peers: Options.repeated(text(spec.peer)),
  noDiscovery: switchOf(spec.noDiscovery),
  interfaces: Options.repeated(text(spec.interface)),
  group: text(spec.group).pipe(Options.mapEffect(checked(decodeGroup)), Options.optional),
  verbose: switchOf(spec.verbose),
  excludes: Options.repeated(text(spec.exclude)),
  config: Options.optional(text(spec.config)),
  secretFile: Options.optional(text(spec.secretFile)),
  logLevel: text(spec.logLevel).pipe(Options.mapEffect(checked(decodeLogLevel)), Options.optional),
  maxSendRate: text(spec.maxSendRate).pipe(Options.mapEffect(checked(decodeRate(spec.maxSendRate.long))), Options.optional),
  maxRecvRate: text(spec.maxRecvRate).pipe(Options.mapEffect(checked(decodeRate(spec.maxRecvRate.long))), Options.optional)
})

/**
 * The command, as @effect/cli's descriptor. (`Command.make("dsync", { ...fields })` builds
 * the same descriptor, mapped, but its module also loads @effect/cli's app runner,
 * which we do not use.)
 */
export const command = Descriptor.make("dsync", options)

type Parsed = typeof options extends Options.Options<infer A> ? A : never

const cliConfig = CliConfig.make({ isCaseSensitive: true, finalCheckBuiltIn: false })

/**
 * Runs @effect/cli's parser on words that checkArgv has put in one form.
 * Its type asks for FileSystem, Path and Terminal, for file options and prompts; ours
 * are text and switches, which need none of them, and parse synchronously.
 */
const parseWords = (words: ReadonlyArray<string>) =>
  Effect.runSync(Effect.either(
    Descriptor.parse(command, ["dsync", ...words], cliConfig) as Effect.Effect<
      CommandDirective.CommandDirective<{ readonly options: Parsed }>,
      ValidationError.ValidationError
    >
  ))

/** The one line of a ValidationError (ours are plain paragraphs; anything else is flattened). */
const lineOf = (e: ValidationError.ValidationError): string =>
  HelpDoc.toAnsiText(e.error)
    .replace(/\x1b\[[0-9;]*m/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .join("; ")

// ---------------------------------------------------------------------------
// Parsing

const usageError = (message: string) => new ConfigError({ message: `${message} (see dsync --help)` })

/**
 * The argv check in front of @effect/cli. Returns the words in one form for it:
 * `--long value` per value given, each switch once as `--long`, `--log-level` last.
 */
const checkArgv = (args: ReadonlyArray<string>): Either.Either<ReadonlyArray<string>, ConfigError> => {
  const words: Array<string> = []
  const last: Array<string> = []
  const seen = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1
    const spelling = eq > 0 ? arg.slice(0, eq) : arg
    const s = bySpelling.get(spelling)
    // Also refuses short clusters (`-vx`): they are no spelling of ours.
    if (s === undefined) return Either.left(usageError(arg.startsWith("-") ? `unknown option ${arg}` : `unexpected argument "${arg}"`))
    if (s.value === undefined) {
      if (eq > 0) return Either.left(usageError(`option --${s.long} takes no value`))
      // @effect/cli reads a following true/false/yes/no as the switch's value; here any
      // following word is read on its own (and refused, as there are no arguments).
      if (!seen.has(s.long)) words.push(`--${s.long}`)
      seen.add(s.long)
      continue
    }
    let value = eq > 0 ? arg.slice(eq + 1) : undefined
    if (value === undefined) {
      if (i + 1 >= args.length) return Either.left(usageError(`option ${spelling} needs a value`))
      value = args[++i]!
    }
    // @effect/cli silently drops an empty value of a repeated option, and takes `--` as
    // the end of options even as a value.
    if ((s.repeatable && value === "") || value === "--") return Either.left(usageError(`option ${spelling} needs a value`))
    if (!s.repeatable && seen.has(s.long)) return Either.left(usageError(`option --${s.long} given more than once`))
    seen.add(s.long)
    // @effect/cli takes a leading --log-level for its own built-in one (and drops the rest).
    ;(s === spec.logLevel ? last : words).push(`--${s.long}`, value)
  }
  return Either.right([...words, ...last])
}

const flagsOf = (o: Parsed): Flags => ({
  path: Option.getOrUndefined(o.path),
  port: Option.getOrUndefined(o.port),
  name: Option.getOrUndefined(o.name),
  peers: o.peers,
  excludes: o.excludes,
  noDiscovery: o.noDiscovery,
  ...(o.interfaces.length > 0 ? { interfaces: o.interfaces } : {}),
  group: Option.getOrUndefined(o.group),
  verbose: o.verbose,
  secretFile: Option.getOrUndefined(o.secretFile),
  maxSendRate: Option.getOrUndefined(o.maxSendRate),
  maxRecvRate: Option.getOrUndefined(o.maxRecvRate)
})

/** The value after `--completions` (or in `--completions=x`), if that option is given. */
const completionsValue = (args: ReadonlyArray<string>): Either.Either<string, ConfigError> | undefined => {
  const i = args.findIndex((a) => a === "--completions" || a.startsWith("--completions="))
  if (i < 0) return undefined
  const arg = args[i]!
  if (arg !== "--completions") return Either.right(arg.slice("--completions=".length))
  return i + 1 < args.length ? Either.right(args[i + 1]!) : Either.left(usageError("option --completions needs a value"))
}

/**
 * Parse argv (without node and the script). Strict: an unknown option, a missing
 * value, a stray argument, or a single-value option given twice is an error.
 * `--help`, `--version` and `--completions` win wherever they appear, in that order.
 */
export const parseArgs = (args: ReadonlyArray<string>): Either.Either<Invocation, ConfigError> => {
  if (args.includes("-h") || args.includes("--help")) return Either.right({ _tag: "Help" })
  if (args.includes("--version")) return Either.right({ _tag: "Version" })
  const completions = completionsValue(args)
  if (completions !== undefined) {
    return Either.flatMap(completions, (name): Either.Either<Invocation, ConfigError> => {
      const shell = SHELLS[name]
      return shell === undefined
        ? Either.left(new ConfigError({ message: `--completions must be bash, zsh or fish, got "${name}"` }))
        : Either.right({ _tag: "Completions", shell })
    })
  }
  return Either.flatMap(checkArgv(args), (words) => {
    const parsed = parseWords(words)
    if (Either.isLeft(parsed)) return Either.left(new ConfigError({ message: lineOf(parsed.left) }))
    const directive = parsed.right
    let options: Parsed
    let logLevel: Option.Option<LogLevel.LogLevel>
    if (directive._tag === "UserDefined") {
      const stray = directive.leftover[0]
      if (stray !== undefined) return Either.left(usageError(`unexpected argument "${stray}"`))
      options = directive.value.options
      logLevel = options.logLevel
    } else {
      // A built-in: only `--log-level LEVEL` alone gets here (checkArgv puts it last, and
      // handles --help, --version and --completions itself). Parse the rest, then the level.
      const rest = parseWords(words.slice(2))
      if (Either.isLeft(rest) || rest.right._tag !== "UserDefined") {
        return Either.left(new ConfigError({ message: `cannot parse ${words.join(" ")}` }))
      }
      const level = decodeLogLevel(words[1]!)
      if (Either.isLeft(level)) return Either.left(new ConfigError({ message: level.left }))
      options = rest.right.value.options
      logLevel = Option.some(level.right)
    }
    const config = Option.getOrUndefined(options.config)
    return Either.right({
      _tag: "Run",
      flags: flagsOf(options),
      logLevel: Option.getOrElse(logLevel, () => LogLevel.Info),
      logLevelGiven: Option.isSome(logLevel),
      ...(config === undefined ? {} : { config })
    })
  })
}

// ---------------------------------------------------------------------------
// Completions

/** @effect/cli's description of its built-in --log-level, which dsync replaces with its own. */
const builtInLogLevel = "Sets the minimum log level for a command."

/**
 * The script @effect/cli generates for the command, less what it adds for built-ins
 * dsync does not have: `--wizard`, and its own `--log-level` beside ours.
 */
export const completionScript = (shell: Shell): string => {
  const generate = shell === "bash"
    ? Descriptor.getBashCompletions
    : shell === "zsh"
    ? Descriptor.getZshCompletions
    : Descriptor.getFishCompletions
  const lines = Effect.runSync(generate(command, "dsync"))
  const kept = lines.flatMap((line) => {
    // zsh: `'--wizard[...]' \`; fish: `complete -c dsync ... -l wizard -d '...'`
    if (line.includes(builtInLogLevel) || line.trim().startsWith("'--wizard[") || line.includes(" -l wizard ")) return []
    // bash lists every option name in one word list: drop --wizard and the second --log-level.
    const m = /^(\s*opts=")(.*)("\s*)$/.exec(line)
    if (m === null) return [line]
    const names = [...new Set(m[2]!.split(" ").filter((w) => w !== "" && w !== "--wizard"))]
    return [`${m[1]}${names.join(" ")}${m[3]}`]
  })
  return `${kept.join("\n")}\n`
}
