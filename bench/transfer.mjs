#!/usr/bin/env node
// Transfer benchmark: two real dsync processes on 127.0.0.1 (discovery off).
//   node bench/transfer.mjs [--size-mib N]      (default 512; `npm run bench` builds first)
// Measures: initial sync (a file A indexed at start, from B's connection until B has it),
// live sync (a file moved into A while both run, until B has it: includes A's watcher
// delay and hashing), `cp` of the same file (page cache only, no fsync), the latency of
// 20 new 1 KiB files, and each process's peak RSS.
// Prints one JSON object and writes it to bench/results/transfer.json.
// SAFETY: dsync runs only with `--no-discovery -a 127.0.0.1:PORT`.
import { spawn, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.join(here, "..")
const mainJs = path.join(repo, "dist", "Main.js")
const MiB = 1024 * 1024
const CHUNK = 4 * MiB
const BIG_TIMEOUT_MS = 120_000
const SMALL_TIMEOUT_MS = 5_000
const SMALL_SAMPLES = 20

const parseArgs = (argv) => {
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const round = (x, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

// ---------- cleanup that runs whatever happens ----------
const children = new Set()
const tempDirs = new Set()
const cleanupSync = () => {
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

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

/** Starts dsync; keeps its output; `waitFor` bounds every wait. */
const startDsync = ({ folder, port, peerPort, name, configHome }) => {
  const child = spawn(
    process.execPath,
    [mainJs, "-d", folder, "-p", String(port), "-n", name, "--no-discovery", "-a", `127.0.0.1:${peerPort}`],
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

const tail = (text, n = 30) => text.split("\n").slice(-n).join("\n")
const context = (...procs) => procs.map((p) => `--- ${p.name} (pid ${p.pid}) stderr ---\n${tail(p.stderr)}`).join("\n")

/** Polls `check` every `intervalMs` until truthy; throws after `timeoutMs` or if a process died. */
const waitFor = async (what, check, timeoutMs, procs, intervalMs = 10) => {
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

/** SIGINT, wait up to `timeoutMs`, then SIGKILL. */
const stop = async (proc, timeoutMs = 5_000) => {
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
const peakRssMib = (pid) => {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? round(Number(m[1]) / 1024, 1) : null
  } catch {
    return null
  }
}

const writeRandomFile = (file, bytes) => {
  const fd = fs.openSync(file, "w")
  try {
    for (let left = bytes; left > 0; left -= CHUNK) fs.writeSync(fd, randomBytes(Math.min(left, CHUNK)))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

const sha256File = (file) => {
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

const fileSize = (file) => {
  try {
    return fs.statSync(file).size
  } catch {
    return -1
  }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

const main = async () => {
  const { sizeMib } = parseArgs(process.argv.slice(2))
  if (!fs.existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npm run build\` first`)
  const bytes = sizeMib * MiB

  const tmpRoot = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-bench-")))
  tempDirs.add(tmpRoot)
  const staging = path.join(tmpRoot, "staging")
  const dirA = path.join(tmpRoot, "A")
  const dirB = path.join(tmpRoot, "B")
  const configHome = path.join(tmpRoot, "xdg")
  for (const d of [staging, dirA, dirB, configHome]) fs.mkdirSync(d)
  const cpRoot = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-bench-cp-")))
  tempDirs.add(cpRoot)

  const src = path.join(staging, "big.bin")
  writeRandomFile(src, bytes)
  const srcHash = sha256File(src)
  // A second file of the same size, already in A's folder when A starts: the initial sync.
  const seed = path.join(dirA, "seed.bin")
  writeRandomFile(seed, bytes)
  const seedHash = sha256File(seed)
  spawnSync("sync")

  // ---- cp baseline ----
  let cpSeconds
  try {
    const t0 = performance.now()
    const cp = spawnSync("cp", [src, path.join(cpRoot, "big.bin")], { stdio: ["ignore", "ignore", "pipe"], timeout: BIG_TIMEOUT_MS })
    cpSeconds = (performance.now() - t0) / 1000
    if (cp.status !== 0) throw new Error(`cp failed: ${cp.error?.message ?? cp.stderr?.toString()}`)
  } finally {
    fs.rmSync(cpRoot, { recursive: true, force: true })
  }

  // ---- two nodes ----
  const [portA, portB] = [await freePort(), await freePort()]
  if (portA === portB) throw new Error("got the same port twice")
  const a = startDsync({ folder: dirA, port: portA, peerPort: portB, name: "bench-a", configHome })
  const b = startDsync({ folder: dirB, port: portB, peerPort: portA, name: "bench-b", configHome })
  const procs = [a, b]
  const exitCodes = {}
  try {
    await waitFor("startup lines", () => /listening on/.test(a.stdout) && /listening on/.test(b.stdout), 20_000, procs)
    // ---- initial sync: A indexed seed.bin at start; time from connection to B having it ----
    await waitFor("B to connect", () => b.stderr.includes("connected to bench-a"), 20_000, procs, 1)
    const i0 = performance.now()
    await waitFor(
      `B to receive seed.bin (${sizeMib} MiB)`,
      () => fileSize(path.join(dirB, "seed.bin")) === bytes && /received: seed\.bin\b/.test(b.stderr),
      BIG_TIMEOUT_MS,
      procs,
      5
    )
    const initialSeconds = (performance.now() - i0) / 1000
    const seedVerified = sha256File(path.join(dirB, "seed.bin")) === seedHash
    await waitFor(
      "both connected",
      () => a.stderr.includes("connected to bench-b") && b.stderr.includes("connected to bench-a"),
      20_000,
      procs
    )

    // ---- big file ----
    // flush what the initial sync wrote, so its writeback does not land in this measurement
    spawnSync("sync")
    const dst = path.join(dirB, "big.bin")
    const t0 = performance.now()
    fs.renameSync(src, path.join(dirA, "big.bin"))
    await waitFor(
      `B to receive big.bin (${sizeMib} MiB)`,
      () => fileSize(dst) === bytes && /received: big\.bin\b/.test(b.stderr),
      BIG_TIMEOUT_MS,
      procs,
      5
    )
    const syncSeconds = (performance.now() - t0) / 1000
    const contentVerified = sha256File(dst) === srcHash && seedVerified

    // ---- small-file latency ----
    const samples = []
    for (let i = 0; i < SMALL_SAMPLES; i++) {
      const name = `small-${i}.bin`
      const content = randomBytes(1024)
      const target = path.join(dirB, name)
      const s0 = performance.now()
      fs.writeFileSync(path.join(dirA, name), content)
      await waitFor(
        `B to receive ${name}`,
        () => fileSize(target) === content.length && fs.readFileSync(target).equals(content),
        SMALL_TIMEOUT_MS,
        procs,
        1
      )
      samples.push(performance.now() - s0)
    }
    const sorted = [...samples].sort((x, y) => x - y)
    const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2

    // ---- peak RSS, then stop ----
    const peak = { sender: peakRssMib(a.pid), receiver: peakRssMib(b.pid) }
    const [stopA, stopB] = await Promise.all([stop(a), stop(b)])
    exitCodes.sender = stopA.code
    exitCodes.receiver = stopB.code

    const mb = bytes / 1e6
    const result = {
      file_mib: sizeMib,
      // initial: the file was indexed before the peers met; live: it appears while they run
      // (includes the sender's watcher delay and its hashing of the new file)
      initial_sync_seconds: round(initialSeconds),
      initial_sync_mb_per_s: round(mb / initialSeconds, 1),
      sync_seconds: round(syncSeconds),
      sync_mb_per_s: round(mb / syncSeconds, 1),
      cp_seconds: round(cpSeconds),
      cp_mb_per_s: round(mb / cpSeconds, 1),
      small_file_latency_ms: {
        median: round(median, 1),
        p90: round(percentile(sorted, 90), 1),
        max: round(sorted[sorted.length - 1], 1),
        samples: samples.length
      },
      peak_rss_mib: peak,
      exit_codes: exitCodes,
      stop_ms: { sender: stopA.ms, receiver: stopB.ms },
      content_verified: contentVerified
    }
    const json = JSON.stringify(result)
    const resultsDir = path.join(here, "results")
    fs.mkdirSync(resultsDir, { recursive: true })
    fs.writeFileSync(path.join(resultsDir, "transfer.json"), JSON.stringify(result, null, 2) + "\n")
    process.stdout.write(json + "\n")
    const ok = contentVerified && stopA.code === 0 && stopB.code === 0 && !stopA.killed && !stopB.killed
    if (!ok) process.stderr.write(`bench: problems seen (see exit_codes / content_verified)\n${context(a, b)}\n`)
    return ok ? 0 : 1
  } finally {
    await Promise.all(procs.map((p) => (p.exit ? undefined : stop(p, 3_000))))
  }
}

let code = 1
try {
  code = await main()
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`)
  code = 1
} finally {
  cleanupSync()
}
process.exit(code)
