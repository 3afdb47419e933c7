/**
 * A LAN on one machine for end-to-end tests: N hosts, each a network namespace with
 * `lo` and an `eth0` on a private /24, joined by veth pairs to a bridge that lives in a
 * namespace of its own (the recipe of shared/netlab/netlab.sh). A real `dsync` runs in
 * each host; folders are plain temp dirs on the shared filesystem.
 *
 * SAFETY (design.md, section 5): everything that may multicast runs inside these
 * namespaces. Nothing is created in, or routed to, the machine's own namespace: the
 * veth pairs are made inside the bridge namespace, and the hosts have no default route.
 *
 * Cleanup: every namespace, process and temp dir made here is removed by `Lan.destroy`,
 * and also on process exit, SIGINT and SIGTERM (synchronously: the vitest pool SIGKILLs
 * a worker shortly after SIGTERM). Each dsync is started under `setpriv --pdeathsig KILL`
 * where available, so it dies even if this process is SIGKILLed. Names carry this
 * process's pid (`dsl<pid>-<n>-...`); leftovers of a dead pid are removed at the next start.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describeTree, type TreeEntry, walkTree } from "./fs.js"
import { mainJs, repoRoot, sleep } from "./proc.js"

/** Every name made here starts with this, then the pid of the process that made it. */
const PREFIX = "dsl"
const STALE_RE = new RegExp(`^${PREFIX}(\\d+)-`)
/** dsync's default port: every host has its own namespace, so all can use it. */
export const DSYNC_PORT = 9000
/** Output kept per process (the tail), so a chatty process cannot grow memory without bound. */
const MAX_OUTPUT = 512 * 1024

const ip = (...args: ReadonlyArray<string>): string => {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 })
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? ""
    throw new Error(`ip ${args.join(" ")}: ${stderr.trim() || String(e)}`)
  }
}

const tryIp = (...args: ReadonlyArray<string>) => {
  try {
    return ip(...args)
  } catch {
    return ""
  }
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

const killPid = (pid: number, signal: NodeJS.Signals = "SIGKILL") => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/** The pids of processes inside namespace `ns` (`ip netns pids`). */
const pidsIn = (ns: string): Array<number> =>
  tryIp("netns", "pids", ns).split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number)

const listNamespaces = (): Array<string> =>
  tryIp("netns", "list").split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter((n) => n.length > 0)

let probed: string | undefined | null = null

/**
 * Why LAN tests cannot run here, or undefined when they can: needs Linux, root, `ip`
 * (iproute2), the right to make a namespace (checked by making and removing one) and a
 * built CLI (`dist/dsync.mjs`).
 */
export const netnsUnavailable = (): string | undefined => {
  if (probed !== null) return probed
  probed = (() => {
    if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`
    if (process.getuid?.() !== 0) return "network namespaces need root (run as root, as CI does)"
    if (spawnSync("ip", ["-V"], { stdio: "ignore" }).status !== 0) return "`ip` (iproute2) is not installed"
    if (!fs.existsSync(mainJs)) return `${path.relative(repoRoot, mainJs)} is missing (run npm run build)`
    const probe = `${PREFIX}${process.pid}-probe`
    try {
      ip("netns", "add", probe)
      ip("netns", "del", probe)
    } catch (e) {
      return `cannot make a network namespace: ${(e as Error).message}`
    }
    return undefined
  })()
  return probed
}

const setprivPdeathsig = (() => {
  let ok: boolean | undefined
  return () => (ok ??= spawnSync("setpriv", ["--pdeathsig", "KILL", "true"], { stdio: "ignore" }).status === 0)
})()

// ---------------------------------------------------------------------------
// Global bookkeeping, so cleanup also runs on exit and signals

const livePids = new Set<number>()
const liveLans = new Set<Lan>()
let hooksInstalled = false

const cleanupAllSync = () => {
  for (const pid of livePids) killPid(pid)
  livePids.clear()
  for (const lan of liveLans) lan.destroySync()
}

const installHooks = () => {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on("exit", cleanupAllSync)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = () => {
      cleanupAllSync()
      process.off(signal, onSignal)
      // We replaced the default action; when nobody else handles the signal, die of it as usual.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
  // A vitest fork worker whose runner died (e.g. SIGTERM to vitest alone) is orphaned and
  // carries on: clean up at once, and when it was mid-test, end it, as nobody reads its results.
  process.once("disconnect", () => {
    const midTest = liveLans.size > 0
    cleanupAllSync()
    // (vitest replaces process.exit in workers: only a signal ends this one for sure)
    if (midTest) process.kill(process.pid, "SIGKILL")
  })
}

let staleRemoved = false

/** Removes namespaces and temp dirs left by an earlier run whose process is gone (e.g. SIGKILLed). */
const removeStale = () => {
  if (staleRemoved) return
  staleRemoved = true
  for (const ns of listNamespaces()) {
    const owner = Number(STALE_RE.exec(ns)?.[1])
    if (!owner || owner === process.pid || pidAlive(owner)) continue
    // only our harness names namespaces so: what runs inside was started by an earlier run of it
    for (const pid of pidsIn(ns)) killPid(pid)
    tryIp("netns", "del", ns)
  }
  for (const name of fs.readdirSync(os.tmpdir())) {
    const owner = Number(STALE_RE.exec(name)?.[1])
    if (owner && owner !== process.pid && !pidAlive(owner)) {
      fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------
// Processes

/** How a process ended. */
export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A process running inside a host's namespace. */
export interface HostProcess {
  readonly label: string
  readonly pid: number
  /** stdout and stderr as they came (the last 512 KiB). */
  readonly output: () => string
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exited>
  readonly exitInfo: () => Exited | undefined
  /** True once we sent it a signal: its exit is expected. */
  readonly signalled: () => boolean
  /** Waits until the output matches; rejects on exit or after `timeoutMs`. */
  readonly waitFor: (pattern: RegExp | string, timeoutMs: number) => Promise<void>
  /** Sends `signal`; after `graceMs` without an exit, SIGKILL. Resolves on exit. */
  readonly stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<Exited>
}

const tail = (text: string, lines: number) => text.split("\n").slice(-lines).join("\n")

const spawnIn = (ns: string, label: string, argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): HostProcess => {
  installHooks()
  // `ip netns exec` execs (no fork), and so does setpriv: the pid we get is the command's.
  const wrapped = [...(setprivPdeathsig() ? ["setpriv", "--pdeathsig", "KILL"] : []), ...argv]
  const child: ChildProcess = spawn("ip", ["netns", "exec", ns, ...wrapped], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const pid = child.pid ?? -1
  if (pid > 0) livePids.add(pid)
  let out = ""
  let exitInfo: Exited | undefined
  let signalled = false
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const l of [...listeners]) l()
  }
  const append = (d: string) => {
    out += d
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT)
    notify()
  }
  child.stdout!.setEncoding("utf8").on("data", append)
  child.stderr!.setEncoding("utf8").on("data", append)
  const exited = new Promise<Exited>((resolve) => {
    const done = (info: Exited) => {
      exitInfo ??= info
      livePids.delete(pid)
      notify()
      resolve(exitInfo)
    }
    child.once("error", (e) => {
      out += `\n[spawn error] ${e.message}\n`
      done({ code: null, signal: null })
    })
    child.once("close", (code, signal) => done({ code, signal }))
  })
  const describe = () =>
    `[${label} pid ${pid}${exitInfo ? ` exited code=${exitInfo.code} signal=${exitInfo.signal}` : ""}]\n${tail(out, 40)}`
  return {
    label,
    pid,
    output: () => out,
    exited,
    exitInfo: () => exitInfo,
    signalled: () => signalled,
    waitFor: (pattern, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const finish = (f: () => void) => {
          clearTimeout(timer)
          listeners.delete(listener)
          f()
        }
        const listener = () => {
          if (typeof pattern === "string" ? out.includes(pattern) : pattern.test(out)) return finish(resolve)
          if (exitInfo) finish(() => reject(new Error(`${label} exited while waiting for ${String(pattern)}\n${describe()}`)))
        }
        const timer = setTimeout(
          () => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)}\n${describe()}`))),
          timeoutMs
        )
        listeners.add(listener)
        listener()
      }),
    stop: async (signal = "SIGTERM", graceMs = 3_000) => {
      if (exitInfo) return exitInfo
      signalled = true
      killPid(pid, signal)
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), graceMs)))
      const first = await Promise.race([exited, late])
      clearTimeout(timer)
      if (first !== "late") return first
      killPid(pid, "SIGKILL")
      return Promise.race([exited, sleep(5_000).then(() => ({ code: null, signal: null }))])
    }
  }
}

// ---------------------------------------------------------------------------
// Trees

/** One line per path where the given trees differ, at most `max` lines. */
export const treeDiff = (trees: Record<string, Record<string, TreeEntry>>, max = 30): string => {
  const names = Object.keys(trees)
  const paths = [...new Set(names.flatMap((n) => Object.keys(trees[n]!)))].sort()
  const show = (e: TreeEntry | undefined) =>
    e === undefined ? "<missing>" : `${e.kind}${e.size === undefined ? "" : `:${e.size}B`}${e.mode ? `:${e.mode}` : ""}${e.sha256 ? `:${e.sha256.slice(0, 8)}` : ""}${e.target ? `->${e.target}` : ""}`
  const lines: Array<string> = []
  for (const p of paths) {
    const shown = names.map((n) => show(trees[n]![p]))
    if (shown.every((s) => s === shown[0])) continue
    lines.push(`  ${p}: ${names.map((n, i) => `${n}=${shown[i]}`).join(" ")}`)
  }
  if (lines.length > max) return [...lines.slice(0, max), `  ... and ${lines.length - max} more`].join("\n")
  return lines.join("\n")
}

const treeOrRetry = (root: string, hash: boolean): Record<string, TreeEntry> | undefined => {
  try {
    return describeTree(root, { hash })
  } catch {
    return undefined // a file vanished between readdir and stat: dsync is busy, look again later
  }
}

/** SHA-256 of a text, as `describeTree` reports file contents. */
export const sha256Text = (text: string) => createHash("sha256").update(text).digest("hex")

/** Every regular file under `root` by content hash, `.dsync/` included (its trash), the index excluded. */
const contentsUnder = (root: string): Map<string, Array<string>> => {
  const found = new Map<string, Array<string>>()
  walkTree(root, (entry, abs, rel) => {
    if (rel.startsWith(".dsync/") && !rel.startsWith(".dsync/trash")) return false
    if (!entry.isFile()) return
    try {
      const h = createHash("sha256").update(fs.readFileSync(abs)).digest("hex")
      found.set(h, [...(found.get(h) ?? []), rel])
    } catch {
      // vanished meanwhile
    }
  })
  return found
}

// ---------------------------------------------------------------------------
// The LAN

/** One host: its namespace, address and folder, and the dsync running there. */
export interface LanHost {
  /** 1-based, as in netlab.sh. */
  readonly index: number
  /** `h1`, `h2`, ...: also the dsync name (`-n`) unless started with `minimal`. */
  readonly name: string
  readonly ns: string
  readonly ip: string
  /** The synced folder (a temp dir on the shared filesystem). */
  readonly folder: string
  /** XDG_CONFIG_HOME of its dsync, so no real dsync.toml is read. */
  readonly configHome: string
}

/** How `Lan.start` runs dsync in a host. */
export interface StartOptions {
  /** Only `-d FOLDER` (plus the static peers when discovery is off). */
  readonly minimal?: boolean
  /** Hosts to name with `-a` when discovery is off (default: every other host). */
  readonly peers?: ReadonlyArray<number>
  /** More arguments (e.g. `-g NAME`). */
  readonly args?: ReadonlyArray<string>
}

/** Options of `Lan.create`. */
export interface LanOptions {
  readonly hosts: number
  /**
   * true: dsync finds peers by mDNS (no `-a`); false: `--no-discovery` and `-a` with the
   * other hosts' addresses (the stand-in while discovery does not exist).
   */
  readonly discovery: boolean
}

let lanSeq = 0

/** N hosts on a private bridge, each able to run a dsync; see the module comment. */
export class Lan {
  readonly hosts: ReadonlyArray<LanHost>
  readonly discovery: boolean
  private readonly prefix: string
  private readonly bridgeNs: string
  private readonly tmp: string
  private readonly namespaces: Array<string> = []
  /** Every process started per host (dsync or not), oldest first. */
  private readonly procs = new Map<number, Array<HostProcess>>()
  /** The dsyncs started per host, current last. */
  private readonly dsyncs = new Map<number, Array<HostProcess>>()
  private destroyed = false

  private constructor(options: LanOptions) {
    this.discovery = options.discovery
    const seq = ++lanSeq
    this.prefix = `${PREFIX}${process.pid}-${seq}`
    this.bridgeNs = `${this.prefix}-br`
    // Each bridge is its own namespace, so subnets cannot clash; differing ones still keep
    // logs of concurrent runs apart.
    const subnet = `10.231.${(process.pid + seq) % 250 + 1}`
    this.tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `${this.prefix}-`)))
    this.hosts = Array.from({ length: options.hosts }, (_, k) => {
      const index = k + 1
      const host: LanHost = {
        index,
        name: `h${index}`,
        ns: `${this.prefix}-h${index}`,
        ip: `${subnet}.${index}`,
        folder: path.join(this.tmp, `h${index}`),
        configHome: path.join(this.tmp, `xdg-h${index}`)
      }
      fs.mkdirSync(host.folder)
      fs.mkdirSync(host.configHome)
      return host
    })
  }

  /** Makes the namespaces, the bridge and the links; throws (after cleaning up) if any step fails. */
  static create(options: LanOptions): Lan {
    installHooks()
    removeStale()
    const lan = new Lan(options)
    liveLans.add(lan)
    try {
      lan.addNs(lan.bridgeNs)
      ip("-n", lan.bridgeNs, "link", "add", "br0", "type", "bridge")
      ip("-n", lan.bridgeNs, "link", "set", "br0", "up")
      for (const h of lan.hosts) {
        lan.addNs(h.ns)
        // Made inside the bridge namespace: no interface ever appears in the machine's own.
        ip("-n", lan.bridgeNs, "link", "add", `v${h.index}`, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
        ip("-n", lan.bridgeNs, "link", "set", `v${h.index}`, "master", "br0")
        ip("-n", lan.bridgeNs, "link", "set", `v${h.index}`, "up")
        ip("-n", h.ns, "link", "set", "lo", "up")
        ip("-n", h.ns, "addr", "add", `${h.ip}/24`, "dev", "eth0")
        ip("-n", h.ns, "link", "set", "eth0", "up")
        ip("-n", h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
      }
    } catch (e) {
      lan.destroySync()
      throw e
    }
    return lan
  }

  private addNs(ns: string) {
    ip("netns", "add", ns)
    this.namespaces.push(ns)
  }

  /** Host `i` (1-based). */
  host(i: number): LanHost {
    const h = this.hosts[i - 1]
    if (!h) throw new Error(`no host ${i} (the LAN has ${this.hosts.length})`)
    return h
  }

  /** The dsync last started in host `i`, if any. */
  current(i: number): HostProcess | undefined {
    return this.dsyncs.get(i)?.at(-1)
  }

  /** Every dsync started in host `i`, oldest first. */
  history(i: number): ReadonlyArray<HostProcess> {
    return this.dsyncs.get(i) ?? []
  }

  /** The arguments `start` gives dsync in host `i`. */
  dsyncArgs(i: number, options: StartOptions = {}): Array<string> {
    const h = this.host(i)
    const others = options.peers ?? this.hosts.filter((o) => o.index !== i).map((o) => o.index)
    return [
      "-d",
      h.folder,
      ...(options.minimal ? [] : ["-n", h.name, "-v"]),
      ...(this.discovery ? [] : ["--no-discovery", ...others.flatMap((o) => ["-a", `${this.host(o).ip}:${DSYNC_PORT}`])]),
      ...(options.args ?? [])
    ]
  }

  /** Starts dsync in host `i` and waits for its start-up line. */
  async start(i: number, options: StartOptions = {}): Promise<HostProcess> {
    const running = this.current(i)
    if (running && !running.exitInfo()) throw new Error(`dsync already runs in h${i}`)
    const h = this.host(i)
    const proc = this.spawn(i, `dsync ${h.name}#${this.history(i).length + 1}`, [process.execPath, mainJs, ...this.dsyncArgs(i, options)], {
      XDG_CONFIG_HOME: h.configHome,
      NO_COLOR: "1"
    })
    this.dsyncs.set(i, [...this.history(i), proc])
    await proc.waitFor(/^dsync .* · listening on .*$/m, 20_000)
    return proc
  }

  /** Starts dsync in each of `indices` (default: all) at once. */
  async startAll(indices: ReadonlyArray<number> = this.hosts.map((h) => h.index), options: StartOptions = {}) {
    return Promise.all(indices.map((i) => this.start(i, options)))
  }

  /** Runs `argv` inside host `i`'s namespace (tracked and cleaned up like dsync). */
  spawn(i: number, label: string, argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): HostProcess {
    if (this.destroyed) throw new Error("the LAN is gone")
    const proc = spawnIn(this.host(i).ns, label, argv, { ...process.env, ...env })
    this.procs.set(i, [...(this.procs.get(i) ?? []), proc])
    return proc
  }

  /** SIGKILLs host `i`'s dsync (no goodbye, no cleanup) and waits for it to be gone. */
  async kill(i: number): Promise<Exited> {
    const proc = this.current(i)
    if (!proc) throw new Error(`no dsync was started in h${i}`)
    return proc.stop("SIGKILL", 5_000)
  }

  /** Unplugs host `i`'s cable: its link goes down on the bridge side. */
  cut(i: number) {
    ip("-n", this.bridgeNs, "link", "set", `v${this.host(i).index}`, "down")
  }

  /** Plugs host `i`'s cable back. */
  heal(i: number) {
    ip("-n", this.bridgeNs, "link", "set", `v${this.host(i).index}`, "up")
  }

  /** Absolute path of `rel` in host `i`'s folder. */
  file(i: number, rel: string) {
    return path.join(this.host(i).folder, rel)
  }

  /** Writes `content` to `rel` in host `i`'s folder (making folders as needed). */
  write(i: number, rel: string, content: string) {
    const abs = this.file(i, rel)
    fs.mkdirSync(path.dirname(abs), { recursive: true })
    fs.writeFileSync(abs, content)
  }

  /** The text of `rel` in host `i`'s folder, or undefined when absent. */
  read(i: number, rel: string): string | undefined {
    try {
      return fs.readFileSync(this.file(i, rel), "utf8")
    } catch {
      return undefined
    }
  }

  /** Removes `rel` (file or folder) from host `i`'s folder. */
  remove(i: number, rel: string) {
    fs.rmSync(this.file(i, rel), { recursive: true, force: true })
  }

  /** Host `i`'s tree as `describeTree` sees it (`.dsync/` left out). */
  tree(i: number, hash = true): Record<string, TreeEntry> {
    return describeTree(this.host(i).folder, { hash })
  }

  /**
   * Where the text `content` is kept in any of the hosts (live, as a conflict copy, or
   * in `.dsync/trash/`): `h2:path` entries, empty when nowhere.
   */
  whereIs(content: string, indices: ReadonlyArray<number> = this.hosts.map((h) => h.index)): Array<string> {
    const hash = sha256Text(content)
    return indices.flatMap((i) => (contentsUnder(this.host(i).folder).get(hash) ?? []).map((p) => `h${i}:${p}`))
  }

  /** Throws with its output if a dsync in `indices` exited without being told to. */
  assertRunning(indices: ReadonlyArray<number>) {
    for (const i of indices) {
      const proc = this.current(i)
      if (!proc) throw new Error(`no dsync was started in h${i}`)
      const exit = proc.exitInfo()
      if (exit) {
        throw new Error(`dsync in h${i} exited (code=${exit.code} signal=${exit.signal})${proc.signalled() ? " after our signal" : ""}\n${this.logs([i])}`)
      }
    }
  }

  /**
   * Polls (cheap shape first, then content hashes) until the trees of `indices` are
   * identical, and returns that tree. Fails at once if one of their dsyncs exits, and
   * after `timeoutMs` with the paths that differ and the logs.
   */
  async waitConverged(
    indices: ReadonlyArray<number> = this.hosts.map((h) => h.index),
    timeoutMs = 30_000,
    what = `h${indices.join(", h")} converge`
  ): Promise<Record<string, TreeEntry>> {
    const deadline = Date.now() + timeoutMs
    const intervalMs = 200
    const maxRounds = Math.ceil(timeoutMs / intervalMs) + 10
    let last: Record<string, Record<string, TreeEntry>> = {}
    for (let round = 0; round < maxRounds; round++) {
      this.assertRunning(indices)
      const shapes = indices.map((i) => treeOrRetry(this.host(i).folder, false))
      const same = (ts: ReadonlyArray<Record<string, TreeEntry> | undefined>) =>
        ts.every((t) => t !== undefined && JSON.stringify(t) === JSON.stringify(ts[0]))
      if (same(shapes)) {
        const full = indices.map((i) => treeOrRetry(this.host(i).folder, true))
        if (same(full)) return full[0]!
        last = Object.fromEntries(indices.map((i, k) => [`h${i}`, full[k] ?? {}]))
      } else last = Object.fromEntries(indices.map((i, k) => [`h${i}`, shapes[k] ?? {}]))
      if (Date.now() > deadline) break
      await sleep(intervalMs)
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\ndiffering paths:\n${treeDiff(last)}\n${this.logs(indices)}`)
  }

  /** Polls `check` until true; fails after `timeoutMs` with `details()` and the logs. */
  async waitFor(what: string, check: () => boolean, timeoutMs: number, details: () => string = () => "") {
    const deadline = Date.now() + timeoutMs
    const intervalMs = 100
    for (let round = 0; round < Math.ceil(timeoutMs / intervalMs) + 10; round++) {
      let ok = false
      try {
        ok = check()
      } catch {
        ok = false
      }
      if (ok) return
      if (Date.now() > deadline) break
      await sleep(intervalMs)
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\n${details()}\n${this.logs()}`)
  }

  /** The last `lines` lines of every process started in `indices` (default: all hosts). */
  logs(indices: ReadonlyArray<number> = this.hosts.map((h) => h.index), lines = 60): string {
    return indices.flatMap((i) =>
      (this.procs.get(i) ?? []).map((p) => {
        const exit = p.exitInfo()
        return `=== ${p.label} in h${i} (${this.host(i).ip}, pid ${p.pid}${exit ? `, exited code=${exit.code} signal=${exit.signal}` : ""}) ===\n${tail(p.output(), lines)}`
      })
    ).join("\n")
  }

  /** Stops every process (SIGTERM, then SIGKILL), removes the namespaces and the temp dir. */
  async destroy() {
    if (this.destroyed) return
    await Promise.all([...this.procs.values()].flat().map((p) => p.stop("SIGTERM", 3_000)))
    this.destroySync()
  }

  /** Synchronous teardown for exit and signal handlers: SIGKILL, then remove everything. */
  destroySync() {
    if (this.destroyed) return
    this.destroyed = true
    liveLans.delete(this)
    for (const p of [...this.procs.values()].flat()) if (!p.exitInfo()) killPid(p.pid)
    for (const ns of [...this.namespaces].reverse()) {
      for (const pid of pidsIn(ns)) killPid(pid) // only ever ours: we made the namespace
      tryIp("netns", "del", ns)
    }
    fs.rmSync(this.tmp, { recursive: true, force: true, maxRetries: 3 })
  }
}
