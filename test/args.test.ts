import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Either, LogLevel } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { completionScript, helpText, parseArgs } from "../src/cli/Command.js"
import { resolveConfig } from "../src/programs/ResolveConfig.js"

const run = (args: Array<string>) => {
  const parsed = parseArgs(args)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  if (parsed.right._tag !== "Run") throw new Error(parsed.right._tag)
  return parsed.right
}
const error = (args: Array<string>) => {
  const parsed = parseArgs(args)
  if (Either.isRight(parsed)) throw new Error("expected an error")
  return parsed.left.message
}

describe("parseArgs", () => {
  it("reads every flag, short and long, repeatable ones in order", () => {
    const { flags, config, logLevel } = run([
      "-d", "/x", "--port", "9001", "-n", "me", "-a", "10.0.0.2:9000", "--peer=10.0.0.3:9000",
      "--no-discovery", "-v", "-e", "*.log", "--exclude", "build/", "--config", "/c.toml", "--log-level", "debug",
      "--secret-file", "/s.txt"
    ])
    expect(flags).toEqual({
      path: "/x", port: "9001", name: "me", peers: ["10.0.0.2:9000", "10.0.0.3:9000"],
      excludes: ["*.log", "build/"], noDiscovery: true, verbose: true, secretFile: "/s.txt"
    })
    expect(config).toBe("/c.toml")
    expect(logLevel).toBe(LogLevel.Debug)
  })

  it("leaves unset flags undefined so dsync.toml can fill them", () => {
    const { flags, logLevel } = run(["-d", "/x"])
    expect(flags.port).toBeUndefined()
    expect(flags.name).toBeUndefined()
    expect(flags.noDiscovery).toBe(false)
    expect(flags.secretFile).toBeUndefined()
    expect(flags.maxSendRate).toBeUndefined()
    expect(flags.maxRecvRate).toBeUndefined()
    expect(logLevel).toBe(LogLevel.Info)
  })

  it("refuses what it does not understand, naming it", () => {
    expect(error(["-d"])).toMatch(/option -d needs a value/)
    expect(error(["-x"])).toMatch(/unknown option -x/)
    expect(error(["-vx"])).toMatch(/unknown option -vx/)
    expect(error(["stray"])).toMatch(/unexpected argument "stray"/)
    expect(error(["-v", "false"])).toMatch(/unexpected argument "false"/)
    expect(error(["-p", "1", "--port", "2"])).toMatch(/--port given more than once/)
    expect(error(["--verbose=yes"])).toMatch(/--verbose takes no value/)
    expect(error(["--log-level", "loud"])).toMatch(/--log-level must be one of/)
    expect(error(["--secret-file"])).toMatch(/option --secret-file needs a value/)
    expect(error(["--secret-file=/a", "--secret-file", "/b"])).toMatch(/--secret-file given more than once/)
  })

  it("--secret-file takes a file name, as --secret-file FILE or --secret-file=FILE", () => {
    expect(run(["--secret-file", "/run/secret"]).flags.secretFile).toBe("/run/secret")
    expect(run(["--secret-file=rel/s.txt"]).flags.secretFile).toBe("rel/s.txt")
  })

  it("--help and --version win wherever they are", () => {
    expect(parseArgs(["-d", "/x", "--bogus", "--help"])).toEqual(Either.right({ _tag: "Help" }))
    expect(parseArgs(["-p", "1", "--version"])).toEqual(Either.right({ _tag: "Version" }))
    const help = helpText("1.2.3")
    for (const flag of ["-d, --path", "-p, --port", "-n, --name", "-a, --peer", "--no-discovery", "-v, --verbose", "-e, --exclude", "--config", "--secret-file FILE"]) {
      expect(help).toContain(flag)
    }
  })

  it("--help lists the rate flags and --completions, and every value flag with its default", () => {
    const help = helpText("1.2.3")
    for (const flag of ["--max-send-rate RATE", "--max-recv-rate RATE", "--completions SHELL", "--log-level LEVEL"]) {
      expect(help).toContain(flag)
    }
    for (const line of help.split("\n").filter((l) => /^\s+(-\w, )?--(port|name|interface|group|log-level|max-send-rate|max-recv-rate) /.test(l))) {
      expect(line).toMatch(/\(default [^)]+\)$/)
    }
  })
})

describe("parseArgs, interfaces and groups", () => {
  it("reads --interface (repeatable, in order) and -g/--group (kept in lower case)", () => {
    expect(run(["--interface", "eth0", "--interface=wlan0", "-g", "Photos"]).flags).toMatchObject({ interfaces: ["eth0", "wlan0"], group: "photos" })
    expect(run(["--group=music.2"]).flags.group).toBe("music.2")
    const unset = run(["-d", "/x"]).flags
    expect(unset.interfaces).toBeUndefined()
    expect(unset.group).toBeUndefined()
  })

  it("refuses a bad group, a group twice, an interface without its name, in one line naming the flag", () => {
    const expected = `1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`
    expect(error(["-g", "two words"])).toBe(`--group must be ${expected}, got "two words"`)
    expect(error(["--group", "x".repeat(64)])).toMatch(/^--group must be /)
    expect(error(["--group", "-x"])).toMatch(/option --group needs a value|--group must be/)
    expect(error(["--group", ".x"])).toBe(`--group must be ${expected}, got ".x"`)
    expect(error(["-g", "a", "--group", "b"])).toMatch(/--group given more than once/)
    expect(error(["--interface"])).toMatch(/option --interface needs a value/)
    expect(error(["--interface", ""])).toMatch(/option --interface needs a value/)
  })

  it("--help lists both, with their defaults", () => {
    const help = helpText("1.2.3")
    expect(help).toMatch(/^ {2}-g, --group NAME +Sync only with peers of this group.*\(default none: any dsync\)$/m)
    expect(help).toMatch(/^ {6}--interface NAME +Network interface for mDNS discovery, repeatable.*\(default all that are up, but loopback\)$/m)
  })
})

describe("parseArgs, bandwidth caps", () => {
  it("reads --max-send-rate and --max-recv-rate with parseRate's units", () => {
    expect(run(["--max-send-rate", "20MB"]).flags.maxSendRate).toBe(20_000_000)
    expect(run(["--max-recv-rate", "512KiB"]).flags.maxRecvRate).toBe(512 * 1024)
    expect(run(["--max-send-rate=0", "--max-recv-rate=1.5 MB/s"]).flags).toMatchObject({ maxSendRate: 0, maxRecvRate: 1_500_000 })
  })

  it("refuses a value that is not a rate, in one line naming the flag and the value", () => {
    expect(error(["--max-send-rate", "x"])).toBe(`--max-send-rate must be a rate like 20MB or 512KiB (0: unlimited), got "x"`)
    expect(error(["-d", "/x", "--max-recv-rate", "-5"])).toBe(`--max-recv-rate must be a rate like 20MB or 512KiB (0: unlimited), got "-5"`)
    expect(error(["--max-send-rate", "20 XB"])).toMatch(/--max-send-rate must be a rate .* got "20 XB"/)
    expect(error(["--max-send-rate", ""])).toMatch(/--max-send-rate must be a rate .* got ""/)
    expect(error(["--max-recv-rate", "1000GB"])).toMatch(/--max-recv-rate must be a rate/)
    expect(error(["--max-send-rate"])).toMatch(/option --max-send-rate needs a value/)
    expect(error(["--max-send-rate", "1MB", "--max-send-rate", "2MB"])).toMatch(/--max-send-rate given more than once/)
  })

  describe("into NodeConfig: flag > config file > default", () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "dsync-args-")))
    afterAll(() => rmSync(dir, { recursive: true, force: true }))
    const resolve = (args: Array<string>, file: { maxSendRate?: number; maxRecvRate?: number }) =>
      Effect.runPromise(
        resolveConfig(run(["-d", dir, ...args]).flags, file, { cwd: dir, homedir: dir }).pipe(Effect.provide(NodeFileSystem.layer))
      )

    it("uses the flag over the file, the file over the default (0: unlimited)", async () => {
      expect(await resolve(["--max-send-rate", "20MB"], { maxSendRate: 1, maxRecvRate: 2 })).toMatchObject({ maxSendRate: 20_000_000, maxRecvRate: 2 })
      expect(await resolve(["--max-recv-rate", "0"], { maxRecvRate: 5 })).toMatchObject({ maxSendRate: 0, maxRecvRate: 0 })
      expect(await resolve([], {})).toMatchObject({ maxSendRate: 0, maxRecvRate: 0 })
    })
  })
})

// Each case is one of @effect/cli 0.77.2's quirks (shared/design.md, section 1) that the
// argv check in front of it must keep out.
describe("parseArgs, around @effect/cli's quirks", () => {
  it("a value option without its value, last or empty, is refused (not dropped)", () => {
    expect(error(["-d", "/x", "-a"])).toMatch(/option -a needs a value/)
    expect(error(["-a", ""])).toMatch(/option -a needs a value/)
    expect(error(["--exclude", "", "-d", "/x"])).toMatch(/option --exclude needs a value/)
    expect(error(["-e", "--"])).toMatch(/option -e needs a value/)
  })

  it("a short cluster is refused, even after a repeated option", () => {
    expect(error(["-a", "10.0.0.2:9000", "-vx"])).toMatch(/unknown option -vx/)
    expect(error(["-e", "*.log", "-ve", "x"])).toMatch(/unknown option -ve/)
  })

  it("--x=value works for repeated options too", () => {
    expect(run(["--peer=10.0.0.2:9000", "--exclude=*.tmp", "--peer", "10.0.0.3:9000"]).flags).toMatchObject({
      peers: ["10.0.0.2:9000", "10.0.0.3:9000"],
      excludes: ["*.tmp"]
    })
    expect(run(["--name=a=b"]).flags.name).toBe("a=b")
  })

  it("--help, --version and --completions win anywhere, not only first", () => {
    expect(parseArgs(["-d", "/x", "-h"])).toEqual(Either.right({ _tag: "Help" }))
    expect(parseArgs(["-vx", "--version"])).toEqual(Either.right({ _tag: "Version" }))
    expect(parseArgs(["-d", "/x", "--completions", "zsh"])).toEqual(Either.right({ _tag: "Completions", shell: "zsh" }))
    expect(parseArgs(["--completions=fish", "stray"])).toEqual(Either.right({ _tag: "Completions", shell: "fish" }))
  })

  it("a switch followed by true/false/yes/no is refused", () => {
    for (const word of ["true", "false", "yes", "no"]) {
      expect(error(["-d", "/x", "--no-discovery", word])).toMatch(new RegExp(`unexpected argument "${word}"`))
    }
    expect(error(["-v", "yes", "-d", "/x"])).toMatch(/unexpected argument "yes"/)
  })

  it("a single-value option twice is named (not 'unknown argument'); a switch twice is fine", () => {
    expect(error(["-p", "1", "-p", "2"])).toMatch(/option --port given more than once/)
    expect(error(["-d", "/x", "--path=/y"])).toMatch(/option --path given more than once/)
    expect(run(["-v", "--verbose", "--no-discovery", "--no-discovery"]).flags).toMatchObject({ verbose: true, noDiscovery: true })
  })

  it("a leading --log-level is ours, not @effect/cli's built-in (which would drop the rest)", () => {
    const { flags, logLevel } = run(["--log-level", "warning", "-d", "/x", "-v"])
    expect(flags).toMatchObject({ path: "/x", verbose: true })
    expect(logLevel).toBe(LogLevel.Warning)
    expect(run(["--log-level", "none"]).logLevel).toBe(LogLevel.None)
    expect(run(["--log-level", "ERROR"]).logLevel).toBe(LogLevel.Error)
    // The built-in knows more levels than we do: ours decides.
    expect(error(["--log-level", "trace"])).toMatch(/--log-level must be one of debug, info, warning, error, none, got "trace"/)
  })

  it("options are case-sensitive, values are taken as given", () => {
    expect(error(["--PATH", "/x"])).toMatch(/unknown option --PATH/)
    expect(error(["--wizard"])).toMatch(/unknown option --wizard/)
    expect(run(["-d", "-v"]).flags).toMatchObject({ path: "-v", verbose: false })
    expect(run(["-e", "--foo=bar", "-d", " x "]).flags).toMatchObject({ excludes: ["--foo=bar"], path: " x " })
    expect(run(["-d", ""]).flags.path).toBe("")
  })
})

describe("--completions", () => {
  it("takes bash, zsh or fish (sh: bash), and nothing else", () => {
    expect(parseArgs(["--completions", "bash"])).toEqual(Either.right({ _tag: "Completions", shell: "bash" }))
    expect(parseArgs(["--completions", "sh"])).toEqual(Either.right({ _tag: "Completions", shell: "bash" }))
    expect(error(["--completions", "tcsh"])).toBe(`--completions must be bash, zsh or fish, got "tcsh"`)
    expect(error(["--completions"])).toMatch(/option --completions needs a value/)
  })

  const longFlags = ["--path", "--port", "--name", "--peer", "--no-discovery", "--interface", "--group", "--verbose", "--exclude", "--config", "--secret-file", "--log-level", "--max-send-rate", "--max-recv-rate", "--completions", "--help", "--version"]

  it("bash: @effect/cli's script, naming dsync and every flag once, no built-in dsync lacks", () => {
    const script = completionScript("bash")
    expect(script).toContain("complete -F _dsync_bash_completions")
    expect(script).toMatch(/ dsync\n$/)
    const opts = /opts="(-[^"]*)"/.exec(script)![1]!.split(" ")
    for (const flag of [...longFlags, "-d", "-p", "-n", "-a", "-g", "-v", "-e", "-h"]) expect(opts.filter((w) => w === flag)).toHaveLength(1)
    expect(script).not.toContain("wizard")
    expect(spawnSync("bash", ["-n"], { input: script }).status).toBe(0)
  })

  it("bash: completes option names and a folder after -d", () => {
    const complete = (...words: Array<string>) => {
      const probe = `${completionScript("bash")}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_dsync_bash_completions dsync "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"`
      return spawnSync("bash", ["-c", probe], { cwd: tmpdir(), encoding: "utf8" }).stdout.split("\n").filter((l) => l !== "")
    }
    expect(complete("dsync", "--max")).toEqual(["--max-send-rate", "--max-recv-rate"])
    expect(complete("dsync", "-v", "--no-d")).toEqual(["--no-discovery"])
    expect(complete("dsync", "-d", tmpdir())).toContain(tmpdir())
  })

  it("zsh and fish: every flag, with our descriptions; not @effect/cli's --wizard or its own --log-level", () => {
    for (const shell of ["zsh", "fish"] as const) {
      const script = completionScript(shell)
      expect(script).toContain("dsync")
      for (const flag of longFlags) {
        expect(script).toContain(shell === "zsh" ? `'${flag}[` : `-l ${flag.slice(2)} `)
      }
      expect(script).not.toContain("wizard")
      expect(script).not.toContain("Sets the minimum log level")
      expect(script.match(shell === "zsh" ? /'--log-level\[/g : /-l log-level /g)).toHaveLength(1)
      expect(script).toContain("Upload cap")
    }
    expect(completionScript("zsh")).toMatch(/^#compdef dsync\n/)
    expect(completionScript("fish")).toMatch(/^complete -c dsync /)
  })
})
