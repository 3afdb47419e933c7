// Runs the compiled `dsync` binary with bad input. No case gets as far as starting
// the node, so nothing here touches the network, except "shared secret" at the end,
// which runs nodes on 127.0.0.1 only (discovery off, loopback peers).
import { execFile, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DsyncProcess, freePorts, logsOf, startDsync, stopAll } from "./support/proc.js"

const repo = join(import.meta.dirname, "..")
const main = join(repo, "dist", "dsync.mjs")
const version: string = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version

// XDG_CONFIG_HOME points at a temp dir, so the user's real dsync.toml is never read.
const tmp = mkdtempSync(join(tmpdir(), "dsync-cli-"))
const xdg = join(tmp, "xdg")
const folder = join(tmp, "folder")
const aFile = join(tmp, "file.txt")
mkdirSync(xdg)
mkdirSync(folder)
writeFileSync(aFile, "x")
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

beforeAll(() => {
  // `npm test` builds dist/ before running the tests; build here only when it is missing.
  if (!existsSync(main)) spawnSync("npm", ["run", "build"], { cwd: repo, stdio: "ignore" })
  expect(existsSync(main)).toBe(true)
}, 180_000)

/** Runs `node dist/dsync.mjs args`, or the file itself as a command (`asCommand`: its first line picks node). */
const run = (args: ReadonlyArray<string>, xdgHome = xdg, { asCommand = false, env = {} }: { asCommand?: boolean; env?: Record<string, string> } = {}) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      asCommand ? main : process.execPath,
      asCommand ? args : [main, ...args],
      { cwd: tmp, encoding: "utf8", timeout: 20_000, env: { ...process.env, NO_COLOR: "1", XDG_CONFIG_HOME: xdgHome, ...env } },
      (_error, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr })
    )
  })

/** Bad input: exit 2, nothing on stdout, exactly one `dsync: ` line on stderr, no stack, no JSON. */
const expectOneLineError = async (args: ReadonlyArray<string>, pattern: RegExp, xdgHome = xdg) => {
  const r = await run(args, xdgHome)
  expect(r.status).toBe(2)
  expect(r.stdout).toBe("")
  const lines = r.stderr.split("\n").filter((l) => l !== "")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^dsync: /)
  expect(lines[0]).toMatch(pattern)
  expect(r.stderr).not.toMatch(/^\s+at /m)
  expect(r.stderr).not.toMatch(/[{}]/)
  return r
}

/** A file under tmp holding `content`. */
const fileWith = (name: string, content: string) => {
  const file = join(tmp, name)
  writeFileSync(file, content)
  return file
}

/** A config dir holding `dsync/dsync.toml` with the given text. */
const xdgWith = (name: string, toml: string) => {
  const dir = join(tmp, name)
  mkdirSync(join(dir, "dsync"), { recursive: true })
  writeFileSync(join(dir, "dsync", "dsync.toml"), toml)
  return dir
}

// Each case is a separate process taking most of a second to start: run them side by side.
describe.concurrent("dsync CLI, bad input", () => {
  it("missing -d", () => expectOneLineError([], /no folder to sync: give -d\/--path/))
  it("nonexistent folder", () =>
    expectOneLineError(["-d", join(tmp, "nope")], new RegExp(`folder ${join(tmp, "nope")} does not exist`)))
  it("folder is a file", () => expectOneLineError(["-d", aFile], /is not a directory/))
  it("port not a number", () => expectOneLineError(["-d", folder, "-p", "abc"], /--port must be an integer from 1 to 65535, got "abc"/))
  it("port 0", () => expectOneLineError(["-d", folder, "--port", "0"], /--port must be/))
  it("port out of range", () => expectOneLineError(["-d", folder, "-p", "70000"], /--port must be/))
  it("malformed peer", () => expectOneLineError(["-d", folder, "-a", "1.2.3.4"], /invalid peer "1\.2\.3\.4": missing port/))
  it("option without its value", () => expectOneLineError(["-d", folder, "-a"], /option -a needs a value/))
  it("unknown option", () => expectOneLineError(["-d", folder, "--prot", "9000"], /unknown option --prot/))
  it("stray argument", () => expectOneLineError(["-d", folder, "extra"], /unexpected argument "extra"/))
  it("boolean flag followed by a value", () => expectOneLineError(["-d", folder, "--no-discovery", "false"], /unexpected argument "false"/))
  it("single-value option twice", () => expectOneLineError(["-d", folder, "-d", folder], /--path given more than once/))
  it("bad --max-send-rate", () =>
    expectOneLineError(
      ["-d", folder, "--max-send-rate", "x"],
      /^dsync: --max-send-rate must be a rate like 20MB or 512KiB \(0: unlimited\), got "x"$/
    ))
  it("bad --max-recv-rate", () => expectOneLineError(["-d", folder, "--max-recv-rate=20XB"], /--max-recv-rate must be a rate .*got "20XB"/))
  it("empty value of a repeatable option", () => expectOneLineError(["-d", folder, "-a", ""], /option -a needs a value/))
  it("short option cluster", () => expectOneLineError(["-d", folder, "-a", "127.0.0.1:9", "-vx"], /unknown option -vx/))
  it("--completions for an unknown shell", () =>
    expectOneLineError(["--completions", "tcsh"], /^dsync: --completions must be bash, zsh or fish, got "tcsh"$/))
  it("--completions without a shell", () => expectOneLineError(["--completions"], /option --completions needs a value/))
  it("missing --config file", () =>
    expectOneLineError(["-d", folder, "--config", join(tmp, "none.toml")], /config file .*none\.toml does not exist/))

  it("unknown key in --config file, with its line", async () => {
    const file = join(tmp, "bad.toml")
    writeFileSync(file, `port = 9000\n\nprot = 9001\n`)
    await expectOneLineError(["-d", folder, "--config", file], new RegExp(`${file.replace(/\./g, "\\.")}:3: unknown key "prot"`))
  })

  it("missing --secret-file", () =>
    expectOneLineError(["-d", folder, "--secret-file", join(tmp, "no-secret")], /secret file .*no-secret does not exist/))
  it("empty --secret-file", () =>
    expectOneLineError(["-d", folder, "--secret-file", fileWith("empty-secret", "")], /secret file .*empty-secret is empty/))
  it("--secret-file larger than 4 KiB, its content not shown", async () => {
    const content = "VERY-SECRET-CONTENT-".repeat(250)
    const args = ["-d", folder, "--secret-file", fileWith("big-secret", content)]
    const r = await expectOneLineError(args, /secret file .*big-secret is larger than 4 KiB/)
    expect(r.stderr).not.toContain("VERY-SECRET")
  })
  it("--secret-file that is a folder", () => expectOneLineError(["-d", folder, "--secret-file", folder], /is a directory/))
  it("secret_file of the wrong type in dsync.toml", () =>
    expectOneLineError(["-d", folder], /dsync\.toml:2: secret_file must be a non-empty string/, xdgWith("xdg-secret-type", `port = 9000\nsecret_file = 42\n`)))
  it("secret_file in dsync.toml naming an empty file", () =>
    expectOneLineError(
      ["-d", folder],
      /secret file .*empty-secret-2 is empty/,
      xdgWith("xdg-secret-empty", `secret_file = "${fileWith("empty-secret-2", "\n")}"\n`)
    ))

  it("--interface naming no interface that is up (checked before anything goes on the network)", () =>
    expectOneLineError(["-d", folder, "--interface", "nosuch0"], /^dsync: unknown network interface "nosuch0", or it is down \(interfaces up: .*\)$/))
  it("interface in dsync.toml naming no interface that is up", () =>
    expectOneLineError(["-d", folder], /^dsync: unknown network interface "nosuch1", or it is down/, xdgWith("xdg-iface", `interface = ["nosuch1"]\n`)))
  it("bad --group", () =>
    expectOneLineError(["-d", folder, "-g", "my group"], /^dsync: --group must be 1 to 63 letters, digits, "\.", "_" or "-", starting with a letter or digit, got "my group"$/))
  it("group of the wrong type in dsync.toml, with its line", () =>
    expectOneLineError(["-d", folder, "--no-discovery"], /dsync\.toml:2: group must be 1 to 63 letters/, xdgWith("xdg-group", `port = 9000\ngroup = 7\n`)))

  it("reads dsync.toml from XDG_CONFIG_HOME", () =>
    expectOneLineError(["-d", folder], /dsync\.toml:2: port must be an integer from 1 to 65535/, xdgWith("xdg-port", `name = "x"\nport = 0\n`)))

  it("path from dsync.toml is used without -d, and -d overrides it", async () => {
    const dir = xdgWith("xdg-path", `path = "${join(tmp, "gone")}"\n`)
    await expectOneLineError([], /folder .*gone does not exist/, dir)
    await expectOneLineError(["-d", aFile], new RegExp(`folder ${aFile.replace(/\./g, "\\.")} is not a directory`), dir)
  })
})

describe.concurrent("dsync CLI, built-ins", () => {
  it("--version prints the package version", async () => {
    const r = await run(["--version"])
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe(version)
  })

  it("dist/dsync.mjs runs as a command and loads no module of ours or of effect from dist/ or node_modules", async () => {
    // The loader hook records every module the command loads; only the native addons
    // (which cannot be bundled) may come from node_modules.
    const hooks = join(tmp, "hooks.mjs")
    const register = join(tmp, "register.mjs")
    const loaded = join(tmp, "loaded.txt")
    writeFileSync(hooks, `import { appendFileSync } from "node:fs"\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(loaded)}, url + "\\n"); return next(url, context) }\n`)
    writeFileSync(register, `import { register } from "node:module"\nregister(${JSON.stringify("file://" + hooks)})\n`)
    const r = await run(["--version"], xdg, { asCommand: true, env: { NODE_OPTIONS: `--import ${register}` } })
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe(version)
    const urls = readFileSync(loaded, "utf8").split("\n").filter((u) => u.startsWith("file:") && !u.startsWith(`file://${tmp}`))
    expect(urls.some((u) => u.endsWith("/dist/dsync.mjs"))).toBe(true)
    expect(urls.filter((u) => /\/dist\/(?!dsync\.mjs$)|\/node_modules\/(effect|@effect)\//.test(u))).toEqual([])
  })

  it("--help lists every flag, without colour under NO_COLOR", async () => {
    const r = await run(["--help"])
    expect(r.status).toBe(0)
    for (const flag of ["-d, --path", "-p, --port", "-n, --name", "-a, --peer", "--no-discovery", "-v, --verbose", "-e, --exclude", "--config", "--secret-file FILE", "--version"]) {
      expect(r.stdout).toContain(flag)
    }
    expect(r.stdout).not.toContain("\x1b[")
  })

  it("--help lists the rate flags and --completions", async () => {
    const r = await run(["--help"])
    for (const flag of ["--max-send-rate RATE", "--max-recv-rate RATE", "--completions SHELL"]) expect(r.stdout).toContain(flag)
  })

  it("--help lists --interface and -g/--group with their defaults", async () => {
    const r = await run(["--help"])
    expect(r.stdout).toMatch(/--interface NAME .*\(default all that are up, but loopback\)/)
    expect(r.stdout).toMatch(/-g, --group NAME .*\(default none: any dsync\)/)
  })

  it("--completions bash prints @effect/cli's script for dsync and its flags, exit 0", async () => {
    const r = await run(["--completions", "bash"])
    expect(r.status).toBe(0)
    expect(r.stderr).toBe("")
    expect(r.stdout).toContain("complete -F _dsync_bash_completions -o nosort -o bashdefault -o default dsync")
    for (const flag of ["--path", "--peer", "--no-discovery", "--secret-file", "--log-level", "--max-send-rate", "--max-recv-rate", "--completions"]) {
      expect(r.stdout).toContain(flag)
    }
    expect(spawnSync("bash", ["-n"], { input: r.stdout }).status).toBe(0)
  })

  it("--completions zsh and fish, also after other flags", async () => {
    const zsh = await run(["-d", folder, "--completions", "zsh"])
    expect(zsh.status).toBe(0)
    expect(zsh.stdout).toMatch(/^#compdef dsync\n/)
    expect(zsh.stdout).toContain("'--max-recv-rate[")
    const fish = await run(["--completions=fish"])
    expect(fish.status).toBe(0)
    expect(fish.stdout).toContain("complete -c dsync -n \"__fish_use_subcommand\" -l max-send-rate")
  })

  it("--help wins wherever it appears", async () => {
    const r = await run(["-d", folder, "--help"])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("--no-discovery")
  })
})

describe("dsync CLI, shared secret", () => {
  const procs: Array<DsyncProcess> = []
  afterAll(() => stopAll(procs))

  it("peers with the same secret connect, one with another secret is refused; the passphrase is never printed", async () => {
    const secret = "Tr0ub4dor-and-3-more-words"
    const [portA, portB, portC] = await freePorts(3)
    const node = (name: string, port: number, peers: Array<number>, extraArgs: Array<string>, configHome = xdg) => {
      const dir = join(tmp, `secret-${name}`)
      mkdirSync(dir)
      const p = startDsync({ folder: dir, port, name, peerPorts: peers, configHome, verbose: true, extraArgs })
      procs.push(p)
      return p
    }
    // a: --secret-file; b: secret_file in dsync.toml; c: another secret.
    const a = node("node-a", portA!, [], ["--secret-file", fileWith("secret-a", `${secret}\n`)])
    const b = node("node-b", portB!, [portA!], [], xdgWith("xdg-secret-b", `secret_file = "${fileWith("secret-b", secret)}"\n`))
    try {
      await Promise.all([a.startup(), b.startup()])
      await Promise.all([a.waitForLog("connected to node-b", 20_000), b.waitForLog("connected to node-a", 20_000)])
      expect(a.stderr()).toContain("shared secret set")
      const c = node("node-c", portC!, [portA!], ["--secret-file", fileWith("secret-c", `${secret}!\n`)])
      await c.startup()
      const reason = "the peer does not know the shared secret (or uses another one)"
      await Promise.all([a.waitForLog(reason, 20_000), c.waitForLog(reason, 20_000)])
      expect(c.stderr()).not.toContain("connected to")
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${logsOf(...procs)}`)
    } finally {
      await stopAll(procs)
    }
    for (const p of procs) {
      expect(p.stdout()).not.toContain(secret)
      expect(p.stderr()).not.toContain(secret)
      expect(p.stderr()).not.toContain(Buffer.from(secret).toString("hex"))
    }
  }, 60_000)
})
