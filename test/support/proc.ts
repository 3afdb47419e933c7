// Real `dsync` processes for end-to-end tests: spawn, capture output, wait, stop.
// SAFETY: callers run dsync only with `--no-discovery -a 127.0.0.1:PORT` (see startDsync).
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"

export const repoRoot = path.join(import.meta.dirname, "..", "..")
/** The bundled CLI, as users run it (`npm run build` makes it). */
export const mainJs = path.join(repoRoot, "dist", "dsync.mjs")

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** A TCP port that was free a moment ago (listen on port 0 on 127.0.0.1, read it, close). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port"))))
    })
  })

/** Several distinct free ports. */
export const freePorts = async (n: number): Promise<Array<number>> => {
  const out: Array<number> = []
  for (let tries = 0; out.length < n && tries < 100; tries++) {
    const p = await freePort()
    if (!out.includes(p)) out.push(p)
  }
  if (out.length < n) throw new Error("could not find free ports")
  return out
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface StopResult extends Exited {
  /** Milliseconds from the signal to the exit. */
  readonly ms: number
  /** True when the process had to be SIGKILLed after the timeout. */
  readonly killed: boolean
}

export interface DsyncProcess {
  readonly name: string
  readonly port: number
  readonly folder: string
  readonly child: ChildProcess
  readonly pid: number
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exited>
  readonly exitInfo: () => Exited | undefined
  /** The `dsync <name> · id … · listening on …` line; rejects on exit or timeout. */
  readonly startup: (timeoutMs?: number) => Promise<string>
  /** Waits until stderr matches; rejects on exit or timeout. */
  readonly waitForLog: (pattern: RegExp | string, timeoutMs?: number) => Promise<void>
  /** Sends `signal` (SIGINT by default), waits up to `timeoutMs`, then SIGKILLs. */
  readonly stop: (timeoutMs?: number, signal?: NodeJS.Signals) => Promise<StopResult>
}

/** Every process started here, so a crashed test run still kills them. */
const live = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  })
}

export interface StartOptions {
  readonly folder: string
  readonly port: number
  readonly name: string
  /** Ports of peers on 127.0.0.1. */
  readonly peerPorts: ReadonlyArray<number>
  /** XDG_CONFIG_HOME for the child, so no real dsync.toml is read. */
  readonly configHome: string
  readonly verbose?: boolean
  readonly extraArgs?: ReadonlyArray<string>
}

const tail = (text: string, lines = 40) => text.split("\n").slice(-lines).join("\n")

/** Starts `node dist/dsync.mjs` with discovery off and only loopback peers. */
export const startDsync = (options: StartOptions): DsyncProcess => {
  installExitHook()
  const args = [
    mainJs,
    "-d",
    options.folder,
    "-p",
    String(options.port),
    "-n",
    options.name,
    "--no-discovery",
    ...options.peerPorts.flatMap((p) => ["-a", `127.0.0.1:${p}`]),
    ...(options.verbose ? ["-v"] : []),
    ...(options.extraArgs ?? [])
  ]
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, XDG_CONFIG_HOME: options.configHome, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  live.add(child)
  let out = ""
  let err = ""
  let exitInfo: Exited | undefined
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const l of [...listeners]) l()
  }
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out += d
    notify()
  })
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err += d
    notify()
  })
  const exited = new Promise<Exited>((resolve) => {
    child.once("error", (e) => {
      err += `\n[spawn error] ${e.message}\n`
      exitInfo ??= { code: null, signal: null }
      live.delete(child)
      notify()
      resolve(exitInfo)
    })
    child.once("close", (code, signal) => {
      exitInfo = { code, signal }
      live.delete(child)
      notify()
      resolve(exitInfo)
    })
  })

  const describe = () =>
    `[${options.name} pid ${child.pid}${exitInfo ? ` exited code=${exitInfo.code} signal=${exitInfo.signal}` : ""}]\n` +
    `--- stdout ---\n${tail(out)}\n--- stderr ---\n${tail(err)}`

  /** Resolves with check()'s value once defined; rejects on exit or timeout. */
  const until = <A>(what: string, check: () => A | undefined, timeoutMs: number) =>
    new Promise<A>((resolve, reject) => {
      const finish = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(listener)
        f()
      }
      const listener = () => {
        const v = check()
        if (v !== undefined) return finish(() => resolve(v))
        if (exitInfo) finish(() => reject(new Error(`${options.name} exited while waiting for ${what}\n${describe()}`)))
      }
      const timer = setTimeout(
        () => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${describe()}`))),
        timeoutMs
      )
      listeners.add(listener)
      listener()
    })

  const startupRe = /^dsync .* · listening on .*$/m
  return {
    name: options.name,
    port: options.port,
    folder: options.folder,
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    exitInfo: () => exitInfo,
    startup: (timeoutMs = 15_000) => until("the startup line", () => startupRe.exec(out)?.[0], timeoutMs),
    waitForLog: (pattern, timeoutMs = 15_000) =>
      until(`log ${String(pattern)}`, () => ((typeof pattern === "string" ? err.includes(pattern) : pattern.test(err)) ? true : undefined), timeoutMs).then(() => undefined),
    stop: async (timeoutMs = 5_000, signal = "SIGINT") => {
      const t0 = performance.now()
      if (exitInfo) return { ...exitInfo, ms: 0, killed: false }
      child.kill(signal)
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)))
      const first = await Promise.race([exited, timedOut])
      clearTimeout(timer)
      const ms = performance.now() - t0
      if (first !== "timeout") return { ...first, ms, killed: false }
      child.kill("SIGKILL")
      const last = await Promise.race([exited, sleep(5_000).then(() => ({ code: null, signal: null }))])
      return { ...last, ms, killed: true }
    }
  }
}

/** Kills whatever is still running (SIGKILL after a grace period); never throws. */
export const stopAll = async (procs: ReadonlyArray<DsyncProcess | undefined>, timeoutMs = 3_000) => {
  await Promise.all(procs.map((p) => (p ? p.stop(timeoutMs).catch(() => undefined) : undefined)))
}

/** Polls `check` every `intervalMs` until true; throws with `details()` after `timeoutMs`. */
export const waitUntil = async (
  what: string,
  check: () => boolean,
  timeoutMs: number,
  details: () => string = () => "",
  intervalMs = 25
) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let ok = false
    try {
      ok = check()
    } catch {
      ok = false
    }
    if (ok) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\n${details()}`)
    await sleep(intervalMs)
  }
}

/** Output of processes, for failure messages. */
export const logsOf = (...procs: ReadonlyArray<DsyncProcess | undefined>) =>
  procs
    .filter((p): p is DsyncProcess => p !== undefined)
    .map((p) => `=== ${p.name} (pid ${p.pid}) stderr ===\n${tail(p.stderr(), 60)}`)
    .join("\n")

export { describeTree, partFilesIn, sha256File, type TreeEntry } from "./fs.js"
