/**
 * Turns flags, the dsync.toml file and the environment into one NodeConfig.
 * Precedence: flags > config file > defaults. Every problem is a ConfigError whose
 * message is one line for the user (Main prefixes it with "dsync: ").
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { isIPv4, isIPv6 } from "node:net"
import * as nodePath from "node:path"
import { parse as parseToml, TomlError } from "smol-toml"
import {
  defaults,
  formatAddress,
  GROUP_EXPECTED,
  MAX_RATE,
  type NodeConfig,
  parseGroup,
  type PeerAddress,
  parseRate
} from "../domain/Config.js"
import { ConfigError } from "../domain/Errors.js"
import { chooseInterfaces, type InterfaceTable } from "../lib/NetInterfaces.js"

/**
 * What dsync.toml may set, as decoded by the ConfigFile schema (below); every field
 * optional. `path` and `secretFile` are as written (`~` is expanded by resolveConfig);
 * `maxSendRate` / `maxRecvRate` are bytes per second, 0 meaning unlimited.
 */
export interface FileSettings extends Schema.Schema.Type<typeof ConfigFile> {}

/** The command line as parsed; an absent field means "not given". */
export interface Flags {
  readonly path?: string
  /** As typed; checked here so flag and file share one rule. */
  readonly port?: string
  readonly name?: string
  /** Raw `ip:port` strings; empty means not given. */
  readonly peers?: ReadonlyArray<string>
  readonly noDiscovery?: boolean
  /** Network interface names (`--interface`); empty or absent means not given. */
  readonly interfaces?: ReadonlyArray<string>
  /** Already checked and lower-cased (parseGroup). */
  readonly group?: string
  readonly verbose?: boolean
  readonly excludes?: ReadonlyArray<string>
  /** File holding the shared-secret passphrase. */
  readonly secretFile?: string
  /** Bandwidth caps in bytes per second (0: unlimited), already parsed (parseRate). */
  readonly maxSendRate?: number
  readonly maxRecvRate?: number
}

/**
 * The process context resolveConfig needs: the directory relative paths start from, the
 * home directory for `~`, and (tests) the network interfaces in place of the machine's.
 */
export interface ResolveEnv {
  readonly cwd: string
  readonly homedir: string
  readonly interfaces?: InterfaceTable
}

const fail = (message: string) => new ConfigError({ message })

// ---------------------------------------------------------------------------
// Config file location

/** `$XDG_CONFIG_HOME/dsync/dsync.toml`, else `~/.config/dsync/dsync.toml`; `%APPDATA%\dsync\dsync.toml` on Windows. */
export const configFilePath = (
  env: Readonly<Record<string, string | undefined>>,
  platform: NodeJS.Platform,
  homedir: string
): string => {
  if (platform === "win32") {
    const appData = env.APPDATA || nodePath.win32.join(homedir, "AppData", "Roaming")
    return nodePath.win32.join(appData, "dsync", "dsync.toml")
  }
  const xdg = env.XDG_CONFIG_HOME
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  const base = xdg && nodePath.posix.isAbsolute(xdg) ? xdg : nodePath.posix.join(homedir, ".config")
  return nodePath.posix.join(base, "dsync", "dsync.toml")
}

// ---------------------------------------------------------------------------
// Peers

const hostnameRe = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/

/** Parses `ip:port`, `[ipv6]:port` or `hostname:port`; the port must be 1..65535. */
export const parsePeer = (s: string): Either.Either<PeerAddress, ConfigError> => {
  const bad = (why: string) => Either.left(fail(`invalid peer "${s}": ${why} (expected ip:port, e.g. 192.168.1.100:9000)`))
  const text = s.trim()
  let host: string
  let portText: string
  if (text.startsWith("[")) {
    const m = /^\[([^\]]*)\]:(.*)$/.exec(text)
    if (!m) return bad(text.includes("]") ? "missing port" : "missing ]")
    host = m[1]!
    portText = m[2]!
    if (!isIPv6(host)) return bad(`"${host}" is not an IPv6 address`)
  } else {
    const colon = text.lastIndexOf(":")
    if (colon < 0) return bad("missing port")
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host.includes(":")) return bad("put an IPv6 address in brackets, e.g. [::1]:9000")
    if (host === "") return bad("missing host")
    // All-digit labels would pass as a hostname; "1.2.3.999" is a typo, not a name.
    const looksNumeric = /^[\d.]+$/.test(host)
    if (looksNumeric ? !isIPv4(host) : !hostnameRe.test(host)) return bad(`"${host}" is not an IP address or host name`)
  }
  if (!/^\d{1,5}$/.test(portText)) return bad(portText === "" ? "missing port" : `port "${portText}" is not a number`)
  const port = Number(portText)
  if (port < 1 || port > 65535) return bad(`port ${port} is out of range 1-65535`)
  return Either.right({ host, port })
}

// ---------------------------------------------------------------------------
// dsync.toml

/** The 1-based line where top-level `key` is set (`key =`, `"key" =`, `key.x =` or `[key]`); smol-toml gives no value positions. */
const lineOfKey = (text: string, key: string): number | undefined => {
  const k = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  const re = new RegExp(`^\\s*(\\[{1,2}\\s*)?(${k}|"${k}"|'${k}')\\s*[=.\\]]`)
  const i = text.split(/\r?\n/).findIndex((l) => re.test(l))
  return i < 0 ? undefined : i + 1
}

const describe = (v: unknown): string =>
  typeof v === "string"
    ? `the string ${JSON.stringify(v)}`
    : typeof v === "bigint"
    ? `the integer ${v}`
    : typeof v === "number"
    ? `the number ${v}`
    : typeof v === "boolean"
    ? `${v}`
    : Array.isArray(v)
    ? "an array"
    : v instanceof Date
    ? "a date"
    : "a table"

/** Levenshtein distance, for "did you mean" on unknown keys. */
const distance = (a: string, b: string): number => {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]!
}

// ---------------------------------------------------------------------------
// The schema of dsync.toml. It decodes the table smol-toml returns (integers as
// bigint, so `port = 9000.0`, a float, is no integer). Each value schema carries the
// message its key gets when the value is wrong ("<key> must be ..., got ..."), set with
// `override` so it replaces what a nested check (a union member, a filter) would say.

const mustBe = (key: string, expected: string) => ({
  message: (issue: ParseResult.ParseIssue) => ({
    message: `${key} must be ${expected}, got ${describe(issue.actual)}`,
    override: true
  })
})

const nonEmptyString = (key: string, expected = "a non-empty string") =>
  Schema.String.pipe(Schema.minLength(1)).annotations(mustBe(key, expected))

const bool = (key: string) => Schema.Boolean.annotations(mustBe(key, "true or false"))

/** A TOML integer from `lo` to `hi`, as a number. */
const intIn = (lo: number, hi: number) =>
  Schema.transform(
    Schema.BigIntFromSelf.pipe(Schema.betweenBigInt(BigInt(lo), BigInt(hi))),
    Schema.Int.pipe(Schema.between(lo, hi)),
    { strict: true, decode: (n) => Number(n), encode: (n) => BigInt(n) }
  )

const PeerAddressSchema = Schema.Struct({ host: Schema.String, port: Schema.Int.pipe(Schema.between(1, 65535)) })

/** `peer`: one "ip:port" or a list of them; a bad address is reported as parsePeer words it. */
const Peers = Schema.transformOrFail(
  Schema.Union(Schema.String, Schema.Array(Schema.String)).annotations(
    mustBe("peer", `a string "ip:port" or an array of them`)
  ),
  Schema.Array(PeerAddressSchema),
  {
    strict: true,
    decode: (value, _, ast) => {
      const peers: Array<PeerAddress> = []
      for (const p of typeof value === "string" ? [value] : value) {
        const parsed = parsePeer(p)
        if (Either.isLeft(parsed)) return ParseResult.fail(new ParseResult.Type(ast, value, parsed.left.message))
        peers.push(parsed.right)
      }
      return ParseResult.succeed(peers)
    },
    encode: (peers) => ParseResult.succeed(peers.map(formatAddress))
  }
)

/** A bandwidth cap: a rate as parseRate reads it ("20MB", "512KiB"), or an integer of bytes per second; 0 is unlimited. */
const rate = (key: string) =>
  Schema.Union(
    Schema.transformOrFail(Schema.String, Schema.Number, {
      strict: true,
      decode: (text, _, ast) => {
        const bytesPerSecond = parseRate(text)
        return bytesPerSecond === undefined
          ? ParseResult.fail(new ParseResult.Type(ast, text, "not a rate"))
          : ParseResult.succeed(bytesPerSecond)
      },
      encode: (n) => ParseResult.succeed(String(n))
    }),
    intIn(0, MAX_RATE)
  ).annotations(mustBe(key, `a rate like "20MB" or "512KiB" (0: unlimited)`))

/** `group`: a group name (parseGroup), stored lower-cased. */
const Group = Schema.transformOrFail(Schema.String.annotations(mustBe("group", GROUP_EXPECTED)), Schema.String, {
  strict: true,
  decode: (text, _, ast) => {
    const group = parseGroup(text)
    return group === undefined ? ParseResult.fail(new ParseResult.Type(ast, text, "not a group")) : ParseResult.succeed(group)
  },
  encode: ParseResult.succeed
}).annotations(mustBe("group", GROUP_EXPECTED))

/** Longest interface name (Linux's IFNAMSIZ less the NUL; Windows' friendly names are longer, so be generous). */
const MAX_INTERFACE_NAME = 256

/** `interface`: one name or a list of them; whether each exists is checked by resolveConfig. */
const Interfaces = Schema.transform(
  Schema.Union(
    Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_INTERFACE_NAME)),
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_INTERFACE_NAME)))
  ).annotations(mustBe("interface", `an interface name like "eth0" or an array of them`)),
  Schema.Array(Schema.String),
  { strict: true, decode: (value) => (typeof value === "string" ? [value] : value), encode: (names) => names }
)

/** An optional key of the file, named `key` there. */
const setting = <A, I>(key: string, schema: Schema.Schema<A, I>) =>
  Schema.optionalWith(schema, { exact: true }).pipe(Schema.fromKey(key))

/** dsync.toml: all keys optional, any other key refused. */
export const ConfigFile = Schema.Struct({
  path: setting("path", nonEmptyString("path")),
  port: setting("port", intIn(1, 65535).annotations(mustBe("port", "an integer from 1 to 65535"))),
  name: setting(
    "name",
    Schema.String.pipe(Schema.filter((s) => s.trim() !== "")).annotations(mustBe("name", "a non-empty string"))
  ),
  peers: setting("peer", Peers),
  noDiscovery: setting("no_discovery", bool("no_discovery")),
  interfaces: setting("interface", Interfaces),
  group: setting("group", Group),
  maxConcurrentTransfers: setting(
    "max_concurrent_transfers",
    intIn(1, 64).annotations(mustBe("max_concurrent_transfers", "an integer from 1 to 64"))
  ),
  excludes: setting("exclude", Schema.Array(Schema.String).annotations(mustBe("exclude", "an array of strings"))),
  verbose: setting("verbose", bool("verbose")),
  secretFile: setting("secret_file", nonEmptyString("secret_file", "a non-empty string (the path of a file)")),
  maxSendRate: setting("max_send_rate", rate("max_send_rate")),
  maxRecvRate: setting("max_recv_rate", rate("max_recv_rate"))
}).annotations({
  identifier: "dsync.toml",
  parseOptions: { onExcessProperty: "error", errors: "all" }
})

/** The keys dsync.toml may hold, as written there (for "did you mean"). */
const knownKeys: ReadonlyArray<string> = Object.entries(ConfigFile.fields).map(([name, field]) =>
  field.ast._tag === "PropertySignatureTransformation" && field.ast.from.fromKey !== undefined
    ? String(field.ast.from.fromKey)
    : name
)

const decodeConfigFile = Schema.decodeUnknownEither(ConfigFile)

/**
 * Parses and checks dsync.toml. Errors read `<fileName>:<line>: ...`; of several
 * problems, the one nearest the top of the file is reported.
 * `path` is returned as written (`~` is expanded by resolveConfig).
 */
export const parseConfigFile = (text: string, fileName: string): Effect.Effect<FileSettings, ConfigError> =>
  Effect.suspend(() => {
    let table: Record<string, unknown>
    try {
      table = parseToml(text, { integersAsBigInt: true })
    } catch (e) {
      if (e instanceof TomlError) {
        // The message carries a code excerpt after the first line; keep the first line only.
        const why = e.message.split("\n")[0]!.replace(/^Invalid TOML document:\s*/, "")
        return Effect.fail(fail(`${fileName}:${e.line}:${e.column}: invalid TOML: ${why}`))
      }
      return Effect.fail(fail(`${fileName}: invalid TOML: ${String(e)}`))
    }
    return Either.match(decodeConfigFile(table), {
      onRight: (settings) => Effect.succeed(settings),
      onLeft: (error) => Effect.fail(configFileError(error, table, text, fileName))
    })
  })

/** The ParseError of ConfigFile as one line: the key its path names, the key's line, and the key's message. */
const configFileError = (
  error: ParseResult.ParseError,
  table: Record<string, unknown>,
  text: string,
  fileName: string
): ConfigError => {
  const keys = Object.keys(table)
  const position = (issue: ParseResult.ArrayFormatterIssue) => {
    const i = keys.indexOf(String(issue.path[0]))
    return i < 0 ? keys.length : i
  }
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error).sort((a, b) => position(a) - position(b))[0]
  if (issue === undefined || issue.path.length === 0) {
    return fail(`${fileName}: ${issue?.message ?? ParseResult.TreeFormatter.formatErrorSync(error)}`)
  }
  const key = String(issue.path[0])
  const line = lineOfKey(text, key)
  const at = line === undefined ? fileName : `${fileName}:${line}`
  if (issue._tag === "Unexpected") {
    const near = knownKeys.find((k) => distance(k, key) <= 2)
    return fail(`${at}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ""}`)
  }
  // One line, whatever a message might hold.
  return fail(`${at}: ${issue.message.split("\n")[0]}`)
}

/**
 * Reads the config file. An explicit `--config` file must exist; the default
 * location may be missing (no settings then).
 */
export const loadConfigFile = (
  file: string,
  explicit: boolean
): Effect.Effect<FileSettings, ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(
      Effect.map((t): string | undefined => t),
      Effect.catchAll((e) =>
        e._tag === "SystemError" && e.reason === "NotFound"
          ? explicit ? Effect.fail(fail(`config file ${file} does not exist`)) : Effect.succeed(undefined)
          : Effect.fail(fail(`cannot read config file ${file}: ${e._tag === "SystemError" ? e.reason : e.message}`))
      )
    )
    return text === undefined ? {} : yield* parseConfigFile(text, file)
  })

// ---------------------------------------------------------------------------
// Shared secret

/** Largest secret file accepted: it holds a passphrase, not a key file or a document. */
export const MAX_SECRET_FILE_BYTES = 4096

/**
 * Reads the shared-secret passphrase from `file` (absolute): its bytes, one trailing
 * newline (`\n` or `\r\n`) removed. Missing, unreadable, empty or over 4 KiB is a
 * ConfigError naming the file, never its content.
 */
export const readSecretFile = (
  file: string
): Effect.Effect<Redacted.Redacted<Uint8Array>, ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const cannot = (e: { readonly _tag: string; readonly message: string; readonly reason?: string }) =>
      fail(
        e._tag === "SystemError" && e.reason === "NotFound"
          ? `secret file ${file} does not exist`
          : `cannot read secret file ${file}: ${e._tag === "SystemError" ? e.reason : e.message}`
      )
    const info = yield* fs.stat(file).pipe(Effect.mapError(cannot))
    if (info.type === "Directory") return yield* Effect.fail(fail(`secret file ${file} is a directory`))
    // Read at most one byte past the limit, so a huge (or endless) file is refused without loading it.
    const bytes = yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(file, { flag: "r" })
      const chunks: Array<Uint8Array> = []
      let total = 0
      while (total <= MAX_SECRET_FILE_BYTES) {
        const chunk = yield* handle.readAlloc(MAX_SECRET_FILE_BYTES + 1 - total)
        if (Option.isNone(chunk) || chunk.value.length === 0) break
        chunks.push(chunk.value)
        total += chunk.value.length
      }
      return Buffer.concat(chunks)
    })).pipe(Effect.mapError(cannot))
    if (bytes.length > MAX_SECRET_FILE_BYTES) {
      return yield* Effect.fail(fail(`secret file ${file} is larger than 4 KiB (it should hold a passphrase)`))
    }
    let end = bytes.length
    if (end > 0 && bytes[end - 1] === 0x0a) end--
    if (end > 0 && bytes[end - 1] === 0x0d && end < bytes.length) end--
    if (end === 0) return yield* Effect.fail(fail(`secret file ${file} is empty`))
    return Redacted.make(new Uint8Array(bytes.subarray(0, end)))
  })

// ---------------------------------------------------------------------------
// Merge

/** `~` or `~/...` at the start of a config-file path means the home directory. */
export const expandHome = (p: string, homedir: string): string =>
  p === "~" ? homedir : p.startsWith("~/") || p.startsWith("~\\") ? nodePath.join(homedir, p.slice(2)) : p

/**
 * Merges flags over the file over `defaults` and checks the folder.
 * - Scalars and `peer`: a flag given on the command line replaces the file's value
 *   (so `-a` replaces the file's `peer` list, it does not add to it).
 * - Booleans (`--no-discovery`, `-v`) can only be switched on by a flag.
 * - `exclude`: file patterns and `-e` patterns are concatenated.
 * - The folder must exist and be a directory; it is resolved to an absolute real path.
 *   A relative path is taken relative to the current directory.
 * - `--secret-file` replaces the file's `secret_file`; the file is read here (see readSecretFile).
 * - `--interface` replaces the file's `interface`; with discovery on, each must be up
 *   (see chooseInterfaces). `--group` replaces the file's `group`.
 */
export const resolveConfig = (
  flags: Flags,
  file: FileSettings,
  env: ResolveEnv
): Effect.Effect<NodeConfig, ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem

    // Flags are checked here (not by the CLI parser) so file and flag get the same rules.
    let flagPort: number | undefined
    if (flags.port !== undefined) {
      flagPort = /^\d{1,5}$/.test(flags.port) ? Number(flags.port) : NaN
      if (!(flagPort >= 1 && flagPort <= 65535)) {
        return yield* Effect.fail(fail(`--port must be an integer from 1 to 65535, got "${flags.port}"`))
      }
    }
    if (flags.name !== undefined && flags.name.trim() === "") {
      return yield* Effect.fail(fail("--name must not be empty"))
    }
    const flagPeers: Array<PeerAddress> = []
    for (const p of flags.peers ?? []) flagPeers.push(yield* parsePeer(p))

    const rawRoot = flags.path ?? (file.path !== undefined ? expandHome(file.path, env.homedir) : undefined)
    if (rawRoot === undefined || rawRoot === "") {
      return yield* Effect.fail(fail("no folder to sync: give -d/--path <folder> or set path in dsync.toml"))
    }
    const abs = nodePath.resolve(env.cwd, rawRoot)
    const info = yield* fs.stat(abs).pipe(
      Effect.mapError((e) =>
        fail(
          e._tag === "SystemError" && e.reason === "NotFound"
            ? `folder ${abs} does not exist`
            : `cannot access folder ${abs}: ${e.message}`
        )
      )
    )
    if (info.type !== "Directory") return yield* Effect.fail(fail(`folder ${abs} is not a directory`))
    // Real path: so two spellings of one folder (symlinks, `..`) are the same root.
    const root = yield* fs.realPath(abs).pipe(Effect.mapError((e) => fail(`cannot access folder ${abs}: ${e.message}`)))

    const rawSecret = flags.secretFile ?? (file.secretFile !== undefined ? expandHome(file.secretFile, env.homedir) : undefined)
    if (rawSecret === "") return yield* Effect.fail(fail("--secret-file must not be empty"))
    const secret = rawSecret === undefined ? undefined : yield* readSecretFile(nodePath.resolve(env.cwd, rawSecret))

    const discovery = !(flags.noDiscovery || file.noDiscovery)
    const interfaces = flags.interfaces !== undefined && flags.interfaces.length > 0 ? flags.interfaces : file.interfaces ?? []
    if (discovery && interfaces.length > 0) {
      const chosen = chooseInterfaces(interfaces, env.interfaces)
      if (Either.isLeft(chosen)) return yield* Effect.fail(fail(chosen.left))
    }
    const group = flags.group ?? file.group

    return {
      root,
      port: flagPort ?? file.port ?? defaults.port,
      host: defaults.host,
      name: flags.name ?? file.name ?? defaults.name,
      peers: flagPeers.length > 0 ? flagPeers : file.peers ?? [],
      discovery,
      verbose: Boolean(flags.verbose || file.verbose),
      excludes: [...(file.excludes ?? []), ...(flags.excludes ?? [])],
      maxConcurrentTransfers: file.maxConcurrentTransfers ?? defaults.maxConcurrentTransfers,
      maxSendRate: flags.maxSendRate ?? file.maxSendRate ?? defaults.maxSendRate,
      maxRecvRate: flags.maxRecvRate ?? file.maxRecvRate ?? defaults.maxRecvRate,
      ...(secret === undefined ? {} : { secret }),
      ...(group === undefined ? {} : { group }),
      ...(interfaces.length > 0 ? { interfaces } : {})
    }
  })
