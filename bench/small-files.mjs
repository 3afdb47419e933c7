#!/usr/bin/env node
// Many-small-files benchmark: two real dsync processes on 127.0.0.1 (discovery off).
//   node bench/small-files.mjs [--files N]      (default 2000; `npm run bench:files` builds first)
// A starts with N files of 1–8 KiB in 100 folders; B starts empty; both start together,
// from a cold page cache where it can be dropped (root). Measures the time from their
// start until B has received every file (and from their connection on), and times `cp -r`
// (and `rsync -a`, where installed) of the tree in the same run, also cold. Prints one
// JSON object and writes it to bench/results/small-files.json.
// SAFETY: dsync runs only with `--no-discovery -a 127.0.0.1:PORT`.
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { countLines, cpuSeconds, dropCaches, freePort, here, mainJs, peakRssMib, round, runBench, startDsync, stop, tempDirs, timeReference, waitFor } from "./harness.mjs"

const FOLDERS = 100
const TIMEOUT_MS = 300_000

const parseFiles = (argv) => {
  const i = argv.indexOf("--files")
  const n = i >= 0 ? Number(argv[i + 1]) : 2000
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new Error("--files must be an integer from 1 to 100000")
  return n
}

const main = async () => {
  const files = parseFiles(process.argv.slice(2))
  if (!fs.existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npm run build\` first`)
  const tmpRoot = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-bench-files-")))
  tempDirs.add(tmpRoot)
  const [dirA, dirB, configHome] = ["A", "B", "xdg"].map((d) => path.join(tmpRoot, d))
  for (const d of [dirA, dirB, configHome]) fs.mkdirSync(d)
  let bytes = 0
  for (let i = 0; i < files; i++) {
    const folder = path.join(dirA, `d${String(i % FOLDERS).padStart(2, "0")}`)
    fs.mkdirSync(folder, { recursive: true })
    const content = randomBytes(1024 + Math.floor(Math.random() * 7 * 1024))
    fs.writeFileSync(path.join(folder, `f${String(i).padStart(6, "0")}.bin`), content)
    bytes += content.length
  }

  // the references on the same data in the same run: a local copy of the tree
  const cpSeconds = timeReference("cp", ["-r", dirA, path.join(tmpRoot, "cp")], TIMEOUT_MS)
  const rsyncSeconds = timeReference("rsync", ["-a", `${dirA}/`, path.join(tmpRoot, "rsync")], TIMEOUT_MS)

  // Start to finish, as a user waits: both nodes started together (A's first scan of the
  // tree counts), until B holds every file; also from their connection on.
  const [portA, portB] = [await freePort(), await freePort()]
  const cold = dropCaches() // A's scan reads the tree from the disk
  const start = performance.now()
  const a = startDsync({ folder: dirA, port: portA, peerPort: portB, name: "bench-a", configHome })
  const b = startDsync({ folder: dirB, port: portB, peerPort: portA, name: "bench-b", configHome })
  const received = countLines(b, /received: /)
  const procs = [a, b]
  try {
    await waitFor("B to connect", () => b.stderr.includes("connected to bench-a"), 120_000, procs, 1)
    const t0 = performance.now()
    await waitFor(`B to receive ${files} files`, () => received.n >= files, TIMEOUT_MS, procs, 20)
    const end = performance.now()
    const seconds = (end - start) / 1000
    const peak = { sender: peakRssMib(a.pid), receiver: peakRssMib(b.pid) }
    const cpu = { sender: cpuSeconds(a.pid), receiver: cpuSeconds(b.pid) }
    const [stopA, stopB] = await Promise.all([stop(a), stop(b)])
    const result = {
      files,
      mib: round(bytes / 1024 / 1024, 1),
      seconds: round(seconds),
      seconds_after_connect: round((end - t0) / 1000),
      files_per_s: round(files / seconds, 1),
      cp_seconds: cpSeconds,
      rsync_seconds: rsyncSeconds,
      cold_cache: cold,
      peak_rss_mib: peak,
      cpu_s: cpu,
      exit_codes: { sender: stopA.code, receiver: stopB.code }
    }
    fs.mkdirSync(path.join(here, "results"), { recursive: true })
    fs.writeFileSync(path.join(here, "results", "small-files.json"), JSON.stringify(result, null, 2) + "\n")
    process.stdout.write(JSON.stringify(result) + "\n")
    return stopA.code === 0 && stopB.code === 0 ? 0 : 1
  } finally {
    await Promise.all(procs.map((p) => (p.exit ? undefined : stop(p, 3_000))))
  }
}

await runBench(main)
