import { Either, LogLevel } from "effect"
import { describe, expect, it } from "vitest"
import { helpText, parseArgs } from "../src/programs/ParseArgs.js"

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
})
