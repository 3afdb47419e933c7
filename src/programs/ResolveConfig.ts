/**
 * Turns flags, the dsync.toml file and the environment into one NodeConfig.
 * Precedence: flags > config file > defaults. Every problem is a ConfigError whose
 * message is one line for the user (Main prefixes it with "dsync: ").
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Either, Option, Redacted } from "effect"
import { isIPv4, isIPv6 } from "node:net"
import * as nodePath from "node:path"
import { parse as parseToml, TomlError } from "smol-toml"
import { defaults, type NodeConfig, type PeerAddress } from "../domain/Config.js"
import { ConfigError } from "../domain/Errors.js"

/** What dsync.toml may set; every field optional. */
export interface FileSettings {
  readonly path?: string
  readonly port?: number
  readonly name?: string
  readonly peers?: ReadonlyArray<PeerAddress>
  readonly noDiscovery?: boolean
  readonly maxConcurrentTransfers?: number
  readonly excludes?: ReadonlyArray<string>
  readonly verbose?: boolean
  /** As written (`~` is expanded by resolveConfig). */
  readonly secretFile?: string
}

/** The command line as parsed; an absent field means "not given". */
export interface Flags {
  readonly path?: string
  /** As typed; checked here so flag and file share one rule. */
  readonly port?: string
  readonly name?: string
  /** Raw `ip:port` strings; empty means not given. */
  readonly peers?: ReadonlyArray<string>
  readonly noDiscovery?: boolean
  readonly verbose?: boolean
  readonly excludes?: ReadonlyArray<string>
  /** File holding the shared-secret passphrase. */
  readonly secretFile?: string
}

export interface ResolveEnv {
  readonly cwd: string
  readonly homedir: string
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

const knownKeys = [
  "path",
  "port",
  "name",
  "peer",
  "no_discovery",
  "max_concurrent_transfers",
  "exclude",
  "verbose",
  "secret_file"
] as const

const intIn = (v: unknown, lo: number, hi: number): number | undefined =>
  // Integers are parsed as bigint, so `port = 9000.0` (a float) is rejected.
  typeof v === "bigint" && v >= BigInt(lo) && v <= BigInt(hi) ? Number(v) : undefined

/**
 * Parses and checks dsync.toml. Errors read `<fileName>:<line>: ...`.
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
    const at = (key: string) => {
      const line = lineOfKey(text, key)
      return line === undefined ? fileName : `${fileName}:${line}`
    }
    const wrong = (key: string, expected: string, v: unknown) =>
      Effect.fail(fail(`${at(key)}: ${key} must be ${expected}, got ${describe(v)}`))

    const out: { -readonly [K in keyof FileSettings]: FileSettings[K] } = {}
    for (const [key, v] of Object.entries(table)) {
      switch (key) {
        case "path":
          if (typeof v !== "string" || v === "") return wrong(key, "a non-empty string", v)
          out.path = v
          break
        case "port": {
          const n = intIn(v, 1, 65535)
          if (n === undefined) return wrong(key, "an integer from 1 to 65535", v)
          out.port = n
          break
        }
        case "name":
          if (typeof v !== "string" || v.trim() === "") return wrong(key, "a non-empty string", v)
          out.name = v
          break
        case "peer": {
          const list = typeof v === "string" ? [v] : v
          if (!Array.isArray(list) || !list.every((p) => typeof p === "string")) {
            return wrong(key, `a string "ip:port" or an array of them`, v)
          }
          const peers: Array<PeerAddress> = []
          for (const p of list as Array<string>) {
            const parsed = parsePeer(p)
            if (Either.isLeft(parsed)) return Effect.fail(fail(`${at(key)}: ${parsed.left.message}`))
            peers.push(parsed.right)
          }
          out.peers = peers
          break
        }
        case "no_discovery":
          if (typeof v !== "boolean") return wrong(key, "true or false", v)
          out.noDiscovery = v
          break
        case "verbose":
          if (typeof v !== "boolean") return wrong(key, "true or false", v)
          out.verbose = v
          break
        case "max_concurrent_transfers": {
          const n = intIn(v, 1, 64)
          if (n === undefined) return wrong(key, "an integer from 1 to 64", v)
          out.maxConcurrentTransfers = n
          break
        }
        case "exclude":
          if (!Array.isArray(v) || !v.every((p) => typeof p === "string")) return wrong(key, "an array of strings", v)
          out.excludes = v as Array<string>
          break
        case "secret_file":
          if (typeof v !== "string" || v === "") return wrong(key, "a non-empty string (the path of a file)", v)
          out.secretFile = v
          break
        default: {
          const near = knownKeys.find((k) => distance(k, key) <= 2)
          const hint = near ? ` (did you mean "${near}"?)` : ""
          return Effect.fail(fail(`${at(key)}: unknown key "${key}"${hint}`))
        }
      }
    }
    return Effect.succeed(out)
  })

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

    return {
      root,
      port: flagPort ?? file.port ?? defaults.port,
      host: defaults.host,
      name: flags.name ?? file.name ?? defaults.name,
      peers: flagPeers.length > 0 ? flagPeers : file.peers ?? [],
      discovery: !(flags.noDiscovery || file.noDiscovery),
      verbose: Boolean(flags.verbose || file.verbose),
      excludes: [...(file.excludes ?? []), ...(flags.excludes ?? [])],
      maxConcurrentTransfers: file.maxConcurrentTransfers ?? defaults.maxConcurrentTransfers,
      maxSendRate: defaults.maxSendRate,
      maxRecvRate: defaults.maxRecvRate,
      ...(secret === undefined ? {} : { secret })
    }
  })
