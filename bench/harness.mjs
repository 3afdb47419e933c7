// Shared by the benchmarks: start and stop real dsync processes on 127.0.0.1 (discovery
// off), wait for their log lines, read their peak RSS, and clean up whatever happens.
import { spawn, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const here = path.dirname(fileURLToPath(import.meta.url))
export const repo = path.join(here, "..")
/** The bundled CLI, as users run it. */
export const mainJs = path.join(repo, "dist", "dsync.mjs")
export const MiB = 1024 * 1024
export const CHUNK = 4 * MiB
export const BIG_TIMEOUT_MS = 120_000
export const SMALL_TIMEOUT_MS = 5_000
export const SMALL_SAMPLES = 20

export const parseArgs = (argv) => {
  let sizeMib = 512
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = arg.startsWith("--size-mib=") ? arg.slice("--size-mib=".length) : arg === "--size-mib" ? argv[++i] : undefined
    if (value === undefined) throw new Error(`unknown argument ${arg} (usage: transfer.mjs [--size-mib N])`)
    sizeMib = Number(value)
    if (!Number.isInteger(sizeMib) || sizeMib < 1) throw new Error(`--size-mib needs a positive integer, got ${value}`)
  }
  return { sizeMib }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const round = (x, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

// ---------- cleanup that runs whatever happens ----------
const children = new Set()
export const tempDirs = new Set()
export const cleanupSync = () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL")
    } catch {
      // gone
    }
  }
  children.clear()
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort
    }
  }
  tempDirs.clear()
}
process.on("exit", cleanupSync)
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    cleanupSync()
    process.exit(130)
  })
}

export const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

/** Extra node flags for the dsync processes, e.g. DSYNC_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const nodeArgs = (process.env.DSYNC_BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "")

/** Starts dsync; keeps its output; `waitFor` bounds every wait. */
export const startDsync = ({ folder, port, peerPort, name, configHome, extraArgs = [] }) => {
  const child = spawn(
    process.execPath,
    [...nodeArgs, mainJs, "-d", folder, "-p", String(port), "-n", name, "--no-discovery", "-a", `127.0.0.1:${peerPort}`, ...extraArgs],
    { cwd: repo, env: { ...process.env, XDG_CONFIG_HOME: configHome, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] }
  )
  children.add(child)
  const proc = { name, child, pid: child.pid, stdout: "", stderr: "", exit: undefined }
  child.stdout.setEncoding("utf8").on("data", (d) => (proc.stdout += d))
  child.stderr.setEncoding("utf8").on("data", (d) => (proc.stderr += d))
  proc.exited = new Promise((resolve) => {
    child.once("error", (e) => {
      proc.stderr += `\n[spawn error] ${e.message}\n`
      proc.exit ??= { code: null, signal: null }
      children.delete(child)
      resolve(proc.exit)
    })
    child.once("close", (code, signal) => {
      proc.exit = { code, signal }
      children.delete(child)
      resolve(proc.exit)
    })
  })
  return proc
}

export const tail = (text, n = 30) => text.split("\n").slice(-n).join("\n")
export const context = (...procs) => procs.map((p) => `--- ${p.name} (pid ${p.pid}) stderr ---\n${tail(p.stderr)}`).join("\n")

/** Polls `check` every `intervalMs` until truthy; throws after `timeoutMs` or if a process died. */
export const waitFor = async (what, check, timeoutMs, procs, intervalMs = 10) => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    let ok = false
    try {
      ok = check()
    } catch {
      ok = false
    }
    if (ok) return
    const dead = procs.find((p) => p.exit)
    if (dead) throw new Error(`${dead.name} exited (${JSON.stringify(dead.exit)}) while waiting for ${what}\n${context(...procs)}`)
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${context(...procs)}`)
    await sleep(intervalMs)
  }
}

/**
 * Counts a process's stderr lines matching `pattern` as they arrive (`.n`): the harness
 * keeps the whole text, and rescanning the log of 100,000 files at every look is quadratic.
 */
export const countLines = (proc, pattern) => {
  const counter = { n: 0 }
  let rest = ""
  proc.child.stderr.on("data", (d) => {
    const lines = (rest + d).split("\n")
    rest = lines.pop()
    for (const line of lines) if (pattern.test(line)) counter.n++
  })
  return counter
}

/** SIGINT, wait up to `timeoutMs`, then SIGKILL. */
export const stop = async (proc, timeoutMs = 5_000) => {
  if (proc.exit) return { ...proc.exit, ms: 0, killed: false }
  const t0 = performance.now()
  proc.child.kill("SIGINT")
  let timer
  const result = await Promise.race([proc.exited, new Promise((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)))])
  clearTimeout(timer)
  const ms = round(performance.now() - t0, 1)
  if (result !== "timeout") return { ...result, ms, killed: false }
  proc.child.kill("SIGKILL")
  const last = await Promise.race([proc.exited, sleep(5_000).then(() => ({ code: null, signal: null }))])
  return { ...last, ms, killed: true }
}

/** Peak resident set (VmHWM) in MiB, or null if /proc is unavailable. */
export const peakRssMib = (pid) => {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? round(Number(m[1]) / 1024, 1) : null
  } catch {
    return null
  }
}

/** CPU seconds (user + system) a live process has used so far: steadier than wall time on a busy machine. */
export const cpuSeconds = (pid) => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")
    return round((Number(fields[11]) + Number(fields[12])) / 100, 2)
  } catch {
    return null
  }
}

/**
 * Empty the page cache, so what is read next comes from the disk, as after a reboot:
 * possible as root (where /proc/sys/vm/drop_caches is writable). DSYNC_BENCH_WARM=1 keeps
 * the cache (a shared machine). Returns whether the cache was dropped.
 */
export const dropCaches = () => {
  if (process.env.DSYNC_BENCH_WARM === "1") return false
  spawnSync("sync")
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3")
    return true
  } catch {
    return false
  }
}

/**
 * A reference copy with `command args` (cp, rsync; the destination last), from a cold cache
 * when it can be had, until the command exits (its writes may still be in the page cache,
 * where dsync fsyncs each file): seconds, or null when the command is not installed. The
 * copy is removed after.
 */
export const timeReference = (command, args, timeoutMs) => {
  if (spawnSync("sh", ["-c", `command -v ${command}`]).status !== 0) return null
  dropCaches()
  const t0 = performance.now()
  const r = spawnSync(command, args, { stdio: ["ignore", "ignore", "pipe"], timeout: timeoutMs })
  if (r.status !== 0) throw new Error(`${command} failed: ${r.error?.message ?? r.stderr?.toString()}`)
  const seconds = (performance.now() - t0) / 1000
  fs.rmSync(args[args.length - 1], { recursive: true, force: true })
  return round(seconds)
}

export const writeRandomFile = (file, bytes) => {
  const fd = fs.openSync(file, "w")
  try {
    for (let left = bytes; left > 0; left -= CHUNK) fs.writeSync(fd, randomBytes(Math.min(left, CHUNK)))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export const sha256File = (file) => {
  const hash = createHash("sha256")
  const fd = fs.openSync(file, "r")
  try {
    const buf = Buffer.allocUnsafe(CHUNK)
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n))
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest("hex")
}

export const fileSize = (file) => {
  try {
    return fs.statSync(file).size
  } catch {
    return -1
  }
}

export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

/** Run a benchmark's `main` (which returns an exit code), report a thrown error, always clean up, exit. */
export const runBench = async (main) => {
  let code = 1
  try {
    code = await main()
  } catch (e) {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`)
  } finally {
    cleanupSync()
  }
  process.exit(code)
}
