import { Either, LogLevel } from "effect"
import { ConfigError } from "../domain/Errors.js"
import type { Flags } from "./ResolveConfig.js"

/** What the command line asks for. */
export type Command =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Run"; readonly flags: Flags; readonly config?: string; readonly logLevel: LogLevel.LogLevel }

interface Spec {
  readonly long: string
  readonly short?: string
  readonly value?: string
  readonly repeatable?: boolean
  readonly help: string
}

/** The seed's flags, plus --config, --secret-file and --log-level. Order is the --help order. */
const SPECS: ReadonlyArray<Spec> = [
  { long: "path", short: "d", value: "DIR", help: "Directory to sync (required unless dsync.toml sets path)" },
  { long: "port", short: "p", value: "PORT", help: "TCP port to listen on (default 9000)" },
  { long: "name", short: "n", value: "NAME", help: "Friendly name for this instance (default dsync-instance)" },
  { long: "peer", short: "a", value: "IP:PORT", repeatable: true, help: "Peer to connect to; repeatable; replaces peer from dsync.toml" },
  { long: "no-discovery", help: "Disable automatic mDNS discovery" },
  { long: "verbose", short: "v", help: "Show detailed logs" },
  { long: "exclude", short: "e", value: "GLOB", repeatable: true, help: "Exclude pattern, repeatable (e.g. *.log); added to dsync.toml's exclude" },
  { long: "config", value: "FILE", help: "Config file to read instead of the default dsync.toml" },
  { long: "secret-file", value: "FILE", help: "File holding a passphrase every peer must share to connect (never sent)" },
  { long: "log-level", value: "LEVEL", help: "Log level: debug, info, warning, error, none (default info)" },
  { long: "version", help: "Print the version and exit" },
  { long: "help", short: "h", help: "Print this help and exit" }
]

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

/**
 * Parse argv (without node and the script). Strict: an unknown option, a missing
 * value, a stray argument, or a single-value option given twice is an error.
 * `--help` and `--version` win wherever they appear.
 */
export const parseArgs = (args: ReadonlyArray<string>): Either.Either<Command, ConfigError> => {
  const bad = (message: string) => Either.left(new ConfigError({ message: `${message} (see dsync --help)` }))
  if (args.includes("-h") || args.includes("--help")) return Either.right({ _tag: "Help" })
  if (args.includes("--version")) return Either.right({ _tag: "Version" })
  const single = new Map<string, string>()
  const lists = { peer: [] as Array<string>, exclude: [] as Array<string> }
  const switches = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1
    const spelling = eq > 0 ? arg.slice(0, eq) : arg
    const spec = bySpelling.get(spelling)
    if (spec === undefined) return bad(arg.startsWith("-") ? `unknown option ${arg}` : `unexpected argument "${arg}"`)
    if (spec.value === undefined) {
      if (eq > 0) return bad(`option --${spec.long} takes no value`)
      switches.add(spec.long)
      continue
    }
    let value = eq > 0 ? arg.slice(eq + 1) : undefined
    if (value === undefined) {
      if (i + 1 >= args.length) return bad(`option ${spelling} needs a value`)
      value = args[++i]!
    }
    if (spec.long === "peer" || spec.long === "exclude") lists[spec.long].push(value)
    else if (single.has(spec.long)) return bad(`option --${spec.long} given more than once`)
    else single.set(spec.long, value)
  }
  const levelName = single.get("log-level")
  const logLevel = levelName === undefined ? LogLevel.Info : LOG_LEVELS[levelName.toLowerCase()]
  if (logLevel === undefined) return bad(`--log-level must be one of ${Object.keys(LOG_LEVELS).join(", ")}, got "${levelName}"`)
  const flags: Flags = {
    path: single.get("path"),
    port: single.get("port"),
    name: single.get("name"),
    peers: lists.peer,
    excludes: lists.exclude,
    noDiscovery: switches.has("no-discovery"),
    verbose: switches.has("verbose"),
    secretFile: single.get("secret-file")
  }
  const config = single.get("config")
  return Either.right({ _tag: "Run", flags, logLevel, ...(config === undefined ? {} : { config }) })
}
