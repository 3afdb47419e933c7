import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted, Schema } from "effect"
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { inspect } from "node:util"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { defaults, GROUP_EXPECTED } from "../src/domain/Config.js"
import {
  ConfigFile,
  configFilePath,
  type FileSettings,
  type Flags,
  loadConfigFile,
  parseConfigFile,
  parsePeer,
  readSecretFile,
  resolveConfig
} from "../src/programs/ResolveConfig.js"

// One temp tree for the whole file: home/, home/sync/, a plain file, a symlink.
const base = realpathSync(mkdtempSync(join(tmpdir(), "dsync-config-")))
const home = join(base, "home")
const syncDir = join(home, "sync")
const plainFile = join(base, "file.txt")
mkdirSync(syncDir, { recursive: true })
writeFileSync(plainFile, "x")
symlinkSync(syncDir, join(base, "link"))
afterAll(() => rmSync(base, { recursive: true, force: true }))

const env = { cwd: base, homedir: home }
const resolve = (flags: Flags, file: FileSettings = {}) =>
  resolveConfig(flags, file, env).pipe(Effect.provide(NodeFileSystem.layer))
const errorOf = <A, E extends { message: string }, R>(eff: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(eff), (e) => e.message)

describe("configFilePath", () => {
  it("uses XDG_CONFIG_HOME when set", () => {
    expect(configFilePath({ XDG_CONFIG_HOME: "/x/cfg" }, "linux", "/home/u")).toBe("/x/cfg/dsync/dsync.toml")
  })
  it("falls back to ~/.config, also for an empty or relative XDG_CONFIG_HOME", () => {
    expect(configFilePath({}, "linux", "/home/u")).toBe("/home/u/.config/dsync/dsync.toml")
    expect(configFilePath({ XDG_CONFIG_HOME: "" }, "darwin", "/Users/u")).toBe("/Users/u/.config/dsync/dsync.toml")
    expect(configFilePath({ XDG_CONFIG_HOME: "rel" }, "linux", "/home/u")).toBe("/home/u/.config/dsync/dsync.toml")
  })
  it("uses %APPDATA% on Windows", () => {
    expect(configFilePath({ APPDATA: "C:\\Users\\u\\AppData\\Roaming", XDG_CONFIG_HOME: "/x" }, "win32", "C:\\Users\\u"))
      .toBe("C:\\Users\\u\\AppData\\Roaming\\dsync\\dsync.toml")
  })
})

describe("parseConfigFile", () => {
  it.effect("reads every key", () =>
    Effect.gen(function*() {
      const text = [
        `path = "~/sync"`,
        `port = 9001`,
        `name = "box"`,
        `peer = ["10.0.0.2:9000", "[fe80::1]:9001"]`,
        `no_discovery = true`,
        `max_concurrent_transfers = 8`,
        `exclude = ["*.log", "build/"]`,
        `verbose = true`,
        `secret_file = "~/.config/dsync/secret"`
      ].join("\n")
      expect(yield* parseConfigFile(text, "dsync.toml")).toEqual({
        path: "~/sync",
        port: 9001,
        name: "box",
        peers: [{ host: "10.0.0.2", port: 9000 }, { host: "fe80::1", port: 9001 }],
        noDiscovery: true,
        maxConcurrentTransfers: 8,
        excludes: ["*.log", "build/"],
        verbose: true,
        secretFile: "~/.config/dsync/secret"
      })
      // A single peer may be a plain string.
      expect((yield* parseConfigFile(`peer = "h.local:1"`, "f")).peers).toEqual([{ host: "h.local", port: 1 }])
    }))

  it.effect("names the line of an unknown key", () =>
    Effect.gen(function*() {
      const text = `# comment\n\npath = "/a"\n\n\nname = "n"\nprot = 9000\n`
      const message = yield* errorOf(parseConfigFile(text, "dsync.toml"))
      expect(message).toMatch(/^dsync\.toml:7: unknown key "prot"/)
      expect(message).toContain(`did you mean "port"`)
      // A table is a key too.
      expect(yield* errorOf(parseConfigFile(`port = 1\n[extra]\na = 1\n`, "f.toml"))).toMatch(/^f\.toml:2: unknown key "extra"/)
    }))

  // One bad value per key: [line of the key, text, expected wording].
  const typeCases: ReadonlyArray<[string, string, string]> = [
    ["path", `path = 5`, "a non-empty string"],
    ["path", `path = ""`, "a non-empty string"],
    ["port", `port = "9000"`, "an integer from 1 to 65535"],
    ["port", `port = 0`, "an integer from 1 to 65535"],
    ["port", `port = 65536`, "an integer from 1 to 65535"],
    ["port", `port = 9000.0`, "an integer from 1 to 65535"],
    ["name", `name = ""`, "a non-empty string"],
    ["name", `name = true`, "a non-empty string"],
    ["peer", `peer = 9000`, `a string "ip:port" or an array of them`],
    ["peer", `peer = ["1.2.3.4:1", 2]`, `a string "ip:port" or an array of them`],
    ["no_discovery", `no_discovery = "yes"`, "true or false"],
    ["verbose", `verbose = 1`, "true or false"],
    ["max_concurrent_transfers", `max_concurrent_transfers = 0`, "an integer from 1 to 64"],
    ["max_concurrent_transfers", `max_concurrent_transfers = 65`, "an integer from 1 to 64"],
    ["exclude", `exclude = "*.log"`, "an array of strings"],
    ["exclude", `exclude = [1]`, "an array of strings"],
    ["secret_file", `secret_file = 5`, "a non-empty string (the path of a file)"],
    ["secret_file", `secret_file = ""`, "a non-empty string"],
    ["secret_file", `secret_file = ["/a"]`, "a non-empty string"],
    ["interface", `interface = 5`, `an interface name like "eth0" or an array of them, got the integer 5`],
    ["interface", `interface = ""`, `an interface name like "eth0" or an array of them`],
    ["interface", `interface = ["eth0", 1]`, `an interface name like "eth0" or an array of them`],
    ["group", `group = "two words"`, `${GROUP_EXPECTED}, got the string "two words"`],
    ["group", `group = "-x"`, GROUP_EXPECTED],
    ["group", `group = "${"x".repeat(64)}"`, GROUP_EXPECTED],
    ["group", `group = 5`, `${GROUP_EXPECTED}, got the integer 5`]
  ]
  for (const [key, line, expected] of typeCases) {
    it.effect(`rejects ${line} naming key, line and type`, () =>
      Effect.gen(function*() {
        // The bad key sits on line 3, after two good lines.
        const text = `# dsync.toml\n\n${line}\n`
        const message = yield* errorOf(parseConfigFile(text, "dsync.toml"))
        expect(message).toBe(message.split("\n")[0]) // one line
        expect(message).toMatch(new RegExp(`^dsync\\.toml:3: ${key} must be `))
        expect(message).toContain(expected)
      }))
  }

  it.effect("reads the bandwidth caps: a rate as text, or bytes per second; 0 is unlimited", () =>
    Effect.gen(function*() {
      const caps = (send: string, recv: string) =>
        Effect.map(parseConfigFile(`port = 1\nmax_send_rate = ${send}\nmax_recv_rate = ${recv}\n`, "dsync.toml"), (s) =>
          [s.maxSendRate, s.maxRecvRate])
      expect(yield* caps(`"20MB"`, `0`)).toEqual([20_000_000, 0])
      expect(yield* caps(`"512KiB"`, `"1.5 MB/s"`)).toEqual([512 * 1024, 1_500_000])
      expect(yield* caps(`"0"`, `"100GB"`)).toEqual([0, 100e9])
      expect(yield* caps(`1048576`, `100_000_000_000`)).toEqual([1048576, 100e9])
      // Absent: not set (resolveConfig falls back to the default).
      expect(yield* parseConfigFile(`port = 1\n`, "dsync.toml")).toEqual({ port: 1 })
    }))

  // A bad cap, on line 3: [text, how the value is named].
  const rateCases: ReadonlyArray<[string, string]> = [
    [`max_send_rate = "fast"`, `the string "fast"`],
    [`max_send_rate = "20 parsecs"`, `the string "20 parsecs"`],
    [`max_send_rate = ""`, `the string ""`],
    [`max_send_rate = "-5MB"`, `the string "-5MB"`],
    [`max_send_rate = "101GB"`, `the string "101GB"`],
    [`max_recv_rate = -1`, "the integer -1"],
    [`max_recv_rate = 100_000_000_001`, "the integer 100000000001"],
    [`max_recv_rate = 1.5`, "the number 1.5"],
    [`max_recv_rate = true`, "true"],
    [`max_recv_rate = ["20MB"]`, "an array"]
  ]
  for (const [line, got] of rateCases) {
    it.effect(`rejects ${line} naming key, line and what a rate looks like`, () =>
      Effect.gen(function*() {
        const key = line.split(" ")[0]!
        const message = yield* errorOf(parseConfigFile(`# dsync.toml\n\n${line}\n`, "dsync.toml"))
        expect(message).toBe(`dsync.toml:3: ${key} must be a rate like "20MB" or "512KiB" (0: unlimited), got ${got}`)
      }))
  }

  it.effect("unknown keys are still refused, the new ones near a typo suggested", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(parseConfigFile(`port = 1\nmax_send_rates = "1MB"\n`, "dsync.toml")))
        .toBe(`dsync.toml:2: unknown key "max_send_rates" (did you mean "max_send_rate"?)`)
      expect(yield* errorOf(parseConfigFile(`max_recv = 1\n`, "dsync.toml"))).toBe(`dsync.toml:1: unknown key "max_recv"`)
      // A dotted key is a table under its first part.
      expect(yield* errorOf(parseConfigFile(`port = 1\nlimits.send = 1\n`, "dsync.toml"))).toBe(`dsync.toml:2: unknown key "limits"`)
    }))

  it.effect("of several problems, the one nearest the top of the file is reported", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(parseConfigFile(`prot = 1\nport = 0\n`, "f"))).toMatch(/^f:1: unknown key "prot"/)
      expect(yield* errorOf(parseConfigFile(`port = 0\nprot = 1\n`, "f"))).toMatch(/^f:1: port must be /)
      expect(yield* errorOf(parseConfigFile(`name = "n"\nmax_send_rate = "x"\nport = 0\n`, "f"))).toMatch(/^f:2: max_send_rate must be /)
    }))

  it("ConfigFile is a Schema of the table: TOML names in, FileSettings names out, other keys refused", () => {
    const decode = Schema.decodeUnknownEither(ConfigFile)
    expect(decode({ no_discovery: true, max_send_rate: "1KiB", exclude: ["a"] }))
      .toEqual(Either.right({ noDiscovery: true, maxSendRate: 1024, excludes: ["a"] }))
    expect(Either.isLeft(decode({ noDiscovery: true }))).toBe(true)
    expect(Either.isLeft(decode({ port: 9000 }))).toBe(true) // a TOML integer is a bigint
    expect(decode({ port: 9000n })).toEqual(Either.right({ port: 9000 }))
  })

  it.effect("reports a bad peer with its line", () =>
    Effect.gen(function*() {
      const message = yield* errorOf(parseConfigFile(`port = 1\npeer = "1.2.3.4"\n`, "dsync.toml"))
      expect(message).toMatch(/^dsync\.toml:2: invalid peer "1\.2\.3\.4": missing port/)
    }))

  it.effect("reports a TOML syntax error with line and column, on one line", () =>
    Effect.gen(function*() {
      const message = yield* errorOf(parseConfigFile(`port = 1\nname = "a"\npath = = "x"\n`, "dsync.toml"))
      expect(message).toMatch(/^dsync\.toml:3:\d+: invalid TOML: /)
      expect(message).not.toContain("\n")
    }))
})

describe("parsePeer", () => {
  const good: ReadonlyArray<[string, string, number]> = [
    ["1.2.3.4:9000", "1.2.3.4", 9000],
    ["[::1]:9000", "::1", 9000],
    ["[fe80::1]:1", "fe80::1", 1],
    ["nas.local:65535", "nas.local", 65535],
    ["host-1:22", "host-1", 22]
  ]
  for (const [text, host, port] of good) {
    it(`accepts ${text}`, () => expect(parsePeer(text)).toEqual(Either.right({ host, port })))
  }
  const bad: ReadonlyArray<[string, string]> = [
    ["1.2.3.4", "missing port"],
    ["1.2.3.4:0", "out of range"],
    ["1.2.3.4:70000", "out of range"],
    [":80", "missing host"],
    ["1.2.3.4:", "missing port"],
    ["1.2.3.4:x", "not a number"],
    ["::1:9000", "brackets"],
    ["[::1]", "missing port"],
    ["[1.2.3.4]:80", "not an IPv6 address"],
    ["1.2.3.999:80", "not an IP address or host name"],
    ["bad_host:80", "not an IP address or host name"],
    ["", "missing port"]
  ]
  for (const [text, why] of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      const result = parsePeer(text)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.message).toContain(`invalid peer ${JSON.stringify(text)}`)
        expect(result.left.message).toContain(why)
      }
    })
  }
})

describe("resolveConfig", () => {
  it.effect("applies defaults", () =>
    Effect.gen(function*() {
      expect(yield* resolve({ path: syncDir })).toEqual({
        root: syncDir,
        port: defaults.port,
        host: defaults.host,
        name: defaults.name,
        peers: [],
        discovery: true,
        verbose: false,
        excludes: [],
        maxConcurrentTransfers: defaults.maxConcurrentTransfers,
        maxSendRate: defaults.maxSendRate,
        maxRecvRate: defaults.maxRecvRate
      })
    }))

  it.effect("takes the file's values when no flag is given", () =>
    Effect.gen(function*() {
      const config = yield* resolve({}, {
        path: syncDir,
        port: 9100,
        name: "file",
        peers: [{ host: "10.0.0.9", port: 9000 }],
        noDiscovery: true,
        verbose: true,
        maxConcurrentTransfers: 2,
        excludes: ["*.tmp"]
      })
      expect(config).toMatchObject({
        root: syncDir,
        port: 9100,
        name: "file",
        peers: [{ host: "10.0.0.9", port: 9000 }],
        discovery: false,
        verbose: true,
        maxConcurrentTransfers: 2,
        excludes: ["*.tmp"]
      })
    }))

  it.effect("takes the bandwidth caps from the file, else the defaults", () =>
    Effect.gen(function*() {
      expect(yield* resolve({ path: syncDir }, { maxSendRate: 20_000_000, maxRecvRate: 524_288 })).toMatchObject({
        maxSendRate: 20_000_000,
        maxRecvRate: 524_288
      })
      expect(yield* resolve({ path: syncDir }, { maxRecvRate: 1 })).toMatchObject({
        maxSendRate: defaults.maxSendRate,
        maxRecvRate: 1
      })
    }))

  it.effect("flags override the file; -a replaces the file's peers; excludes add up", () =>
    Effect.gen(function*() {
      const config = yield* resolve(
        { path: syncDir, port: "9200", name: "flag", peers: ["10.0.0.1:1", "[::1]:2"], excludes: ["*.log"] },
        { path: "/nonexistent", port: 9100, name: "file", peers: [{ host: "10.0.0.9", port: 9000 }], excludes: ["*.tmp"] }
      )
      expect(config).toMatchObject({
        root: syncDir,
        port: 9200,
        name: "flag",
        peers: [{ host: "10.0.0.1", port: 1 }, { host: "::1", port: 2 }],
        excludes: ["*.tmp", "*.log"]
      })
    }))

  it.effect("rejects bad flag values", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(resolve({ path: syncDir, port: "0" }))).toBe(`--port must be an integer from 1 to 65535, got "0"`)
      expect(yield* errorOf(resolve({ path: syncDir, port: "abc" }))).toContain("--port must be")
      expect(yield* errorOf(resolve({ path: syncDir, port: "65536" }))).toContain("--port must be")
      expect(yield* errorOf(resolve({ path: syncDir, name: " " }))).toBe("--name must not be empty")
      expect(yield* errorOf(resolve({ path: syncDir, peers: ["1.2.3.4"] }))).toContain(`invalid peer "1.2.3.4"`)
    }))

  it.effect("requires a folder", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(resolve({}))).toMatch(/^no folder to sync: give -d\/--path/)
    }))

  it.effect("rejects a missing folder and a file", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(resolve({ path: join(base, "nope") }))).toBe(`folder ${join(base, "nope")} does not exist`)
      expect(yield* errorOf(resolve({ path: plainFile }))).toBe(`folder ${plainFile} is not a directory`)
      // The same checks apply to a path from the file.
      expect(yield* errorOf(resolve({}, { path: plainFile }))).toBe(`folder ${plainFile} is not a directory`)
    }))

  it.effect("expands ~ in the file's path, resolves relative paths against cwd, follows symlinks", () =>
    Effect.gen(function*() {
      expect((yield* resolve({}, { path: "~/sync" })).root).toBe(syncDir)
      expect((yield* resolve({}, { path: "~" })).root).toBe(home)
      expect((yield* resolve({ path: "home/sync" })).root).toBe(syncDir)
      expect((yield* resolve({ path: join(base, "link") })).root).toBe(syncDir)
    }))
})

describe("network interfaces and groups", () => {
  const up = {
    lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "", internal: true, cidr: "127.0.0.1/8" }],
    eth0: [{ address: "10.0.0.5", netmask: "255.255.255.0", family: "IPv4", mac: "", internal: false, cidr: "10.0.0.5/24" }],
    wlan0: [{ address: "192.168.1.7", netmask: "255.255.255.0", family: "IPv4", mac: "", internal: false, cidr: "192.168.1.7/24" }]
  } as const
  const withInterfaces = (flags: Flags, file: FileSettings = {}) =>
    resolveConfig({ path: syncDir, ...flags }, file, { ...env, interfaces: up }).pipe(Effect.provide(NodeFileSystem.layer))

  it.effect("reads interface (one name or a list) and group (any case, kept in lower case) from dsync.toml", () =>
    Effect.gen(function*() {
      expect(yield* parseConfigFile(`interface = "eth0"\ngroup = "Photos"\n`, "dsync.toml")).toEqual({ interfaces: ["eth0"], group: "photos" })
      expect(yield* parseConfigFile(`interface = ["eth0", "wlan0"]\n`, "dsync.toml")).toEqual({ interfaces: ["eth0", "wlan0"] })
    }))

  it.effect("--interface replaces the file's; unset means every interface (not in the config); --group over the file's", () =>
    Effect.gen(function*() {
      expect((yield* withInterfaces({})).interfaces).toBeUndefined()
      expect((yield* withInterfaces({}, { interfaces: ["wlan0"] })).interfaces).toEqual(["wlan0"])
      expect((yield* withInterfaces({ interfaces: ["eth0"] }, { interfaces: ["wlan0"] })).interfaces).toEqual(["eth0"])
      expect((yield* withInterfaces({})).group).toBeUndefined()
      expect((yield* withInterfaces({}, { group: "a" })).group).toBe("a")
      expect((yield* withInterfaces({ group: "b" }, { group: "a" })).group).toBe("b")
    }))

  it.effect("an interface that is not up is a clear error, from the flag or the file; not checked with discovery off", () =>
    Effect.gen(function*() {
      const unknown = `unknown network interface "eth9", or it is down (interfaces up: lo, eth0, wlan0)`
      expect(yield* errorOf(withInterfaces({ interfaces: ["eth0", "eth9"] }))).toBe(unknown)
      expect(yield* errorOf(withInterfaces({}, { interfaces: ["eth9"] }))).toBe(unknown)
      expect((yield* withInterfaces({ interfaces: ["eth9"], noDiscovery: true })).interfaces).toEqual(["eth9"])
      expect((yield* withInterfaces({ interfaces: ["eth9"] }, { noDiscovery: true })).discovery).toBe(false)
    }))
})

describe("loadConfigFile", () => {
  const load = (file: string, explicit: boolean) => loadConfigFile(file, explicit).pipe(Effect.provide(NodeFileSystem.layer))

  it.effect("a missing default file means no settings; a missing --config file is an error", () =>
    Effect.gen(function*() {
      expect(yield* load(join(base, "none.toml"), false)).toEqual({})
      expect(yield* errorOf(load(join(base, "none.toml"), true))).toBe(`config file ${join(base, "none.toml")} does not exist`)
    }))

  it.effect("reads and checks the file, naming it in errors", () =>
    Effect.gen(function*() {
      const file = join(base, "c.toml")
      writeFileSync(file, `port = 9300\n`)
      expect(yield* load(file, true)).toEqual({ port: 9300 })
      writeFileSync(file, `port = 9300\nprot = 1\n`)
      expect(yield* errorOf(load(file, false))).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: unknown key`))
    }))
})

describe("shared secret file", () => {
  const secretDir = join(base, "secrets")
  mkdirSync(secretDir)
  const secretFile = (name: string, content: string | Uint8Array) => {
    const file = join(secretDir, name)
    writeFileSync(file, content)
    return file
  }
  const passphraseOf = (config: { readonly secret?: Redacted.Redacted<Uint8Array> }) =>
    config.secret === undefined ? undefined : Buffer.from(Redacted.value(config.secret)).toString("utf8")

  it.effect("--secret-file: the passphrase without its trailing newline, redacted in any printout", () =>
    Effect.gen(function*() {
      const file = secretFile("good", "s3cret passphrase\n")
      const config = yield* resolve({ path: syncDir, secretFile: file })
      expect(passphraseOf(config)).toBe("s3cret passphrase")
      for (const printed of [String(config.secret), JSON.stringify(config), inspect(config, { depth: 10 })]) {
        expect(printed).not.toContain("s3cret")
      }
      // No secret given: none in the config.
      expect((yield* resolve({ path: syncDir })).secret).toBeUndefined()
    }))

  it.effect("strips one trailing newline (LF or CRLF) and nothing else", () =>
    Effect.gen(function*() {
      const read = (content: string) =>
        Effect.map(readSecretFile(secretFile("nl", content)).pipe(Effect.provide(NodeFileSystem.layer)), (r) =>
          Buffer.from(Redacted.value(r)).toString("utf8"))
      expect(yield* read("abc")).toBe("abc")
      expect(yield* read("abc\r\n")).toBe("abc")
      expect(yield* read("abc\n\n")).toBe("abc\n")
      expect(yield* read(" abc \n")).toBe(" abc ")
      expect(yield* read("x".repeat(4096))).toHaveLength(4096)
    }))

  it.effect("secret_file from dsync.toml: ~ expanded, relative to cwd; --secret-file replaces it", () =>
    Effect.gen(function*() {
      writeFileSync(join(home, "dsync-secret"), "from home\n")
      secretFile("flag", "from flag")
      expect(passphraseOf(yield* resolve({ path: syncDir }, { secretFile: "~/dsync-secret" }))).toBe("from home")
      expect(passphraseOf(yield* resolve({ path: syncDir }, { secretFile: "home/dsync-secret" }))).toBe("from home")
      expect(passphraseOf(yield* resolve({ path: syncDir, secretFile: "secrets/flag" }, { secretFile: "~/dsync-secret" })))
        .toBe("from flag")
    }))

  it.effect("a missing, empty, too large or unreadable file is a one-line error naming the file, not its content", () =>
    Effect.gen(function*() {
      const error = (file: string) => errorOf(resolve({ path: syncDir, secretFile: file }))
      const missing = join(secretDir, "none")
      expect(yield* error(missing)).toBe(`secret file ${missing} does not exist`)
      // The file named in dsync.toml gets the same checks.
      expect(yield* errorOf(resolve({ path: syncDir }, { secretFile: missing }))).toBe(`secret file ${missing} does not exist`)
      const empty = secretFile("empty", "")
      expect(yield* error(empty)).toBe(`secret file ${empty} is empty`)
      const newline = secretFile("newline", "\n")
      expect(yield* error(newline)).toBe(`secret file ${newline} is empty`)
      const large = secretFile("large", "TOO-LARGE-CONTENT".repeat(300))
      const message = yield* error(large)
      expect(message).toBe(`secret file ${large} is larger than 4 KiB (it should hold a passphrase)`)
      expect(yield* error(secretFile("4097", "y".repeat(4097)))).toContain("is larger than 4 KiB")
      expect(yield* error(secretDir)).toBe(`secret file ${secretDir} is a directory`)
      expect(yield* error("")).toBe("--secret-file must not be empty")
      const locked = secretFile("locked", "locked passphrase")
      chmodSync(locked, 0o000)
      // root reads it anyway; anyone else gets told why not
      if (process.getuid?.() !== 0) expect(yield* error(locked)).toBe(`cannot read secret file ${locked}: PermissionDenied`)
    }))
})
