#!/usr/bin/env node
// Large-folder benchmark: two real dsync processes on 127.0.0.1 (discovery off).
//   node bench/scale.mjs [--files N] [--no-transfer]   (default 100000; `npm run bench:scale` builds first)
// Builds a tree of N files of 100 B–1 KiB in N/100 folders, then measures, each start to
// finish as a user waits:
//   first_index_s     A started on the tree, until it has indexed everything (its log says so)
//   rescan_s          A restarted on the same tree and index, until it has scanned it again
//   index_received_s  B started empty, until it has A's whole index
//   all_received_s    B started, until it holds every file (unless --no-transfer)
//   restart_new_file_s  then A restarted, a file saved in its folder once it runs: from the
//                       restart until B holds it (unless --no-transfer)
// and each process's peak RSS. The first index and the rescan start from a cold page cache
// where it can be dropped (root). Prints one JSON object and writes bench/results/scale.json.
// SAFETY: dsync runs only with `--no-discovery -a 127.0.0.1:PORT`.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { countLines, cpuSeconds, dropCaches, freePort, here, mainJs, peakRssMib, round, runBench, startDsync, stop, tempDirs, waitFor } from "./harness.mjs"

const TIMEOUT_MS = 900_000
/** A node's log line once its first scan is done (it listens before). */
const INDEXED = /indexed \d+ files and folders/

const parse = (argv) => {
  let files = 100_000
  let transfer = true
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--no-transfer") transfer = false
    else if (argv[i] === "--files") files = Number(argv[++i])
    else throw new Error(`unknown argument ${argv[i]} (usage: scale.mjs [--files N] [--no-transfer])`)
  }
  if (!Number.isInteger(files) || files < 100 || files > 1_000_000) throw new Error("--files must be an integer from 100 to 1000000")
  return { files, transfer }
}

/** N files of 100 B–1 KiB, 100 to a folder; returns their total bytes. */
const makeTree = (root, files) => {
  const chunk = Buffer.alloc(1024)
  let bytes = 0
  for (let i = 0; i < files; i++) {
    const folder = path.join(root, `d${String(Math.floor(i / 100)).padStart(5, "0")}`)
    if (i % 100 === 0) fs.mkdirSync(folder)
    const size = 100 + ((i * 7919) % 925)
    chunk.writeUInt32LE(i, 0) // every file different
    chunk.writeUInt32LE(files, 4)
    fs.writeFileSync(path.join(folder, `f${i}.txt`), chunk.subarray(0, size))
    bytes += size
  }
  return bytes
}

const main = async () => {
  const { files, transfer } = parse(process.argv.slice(2))
  if (!fs.existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npm run build\` first`)
  const tmpRoot = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-bench-scale-")))
  tempDirs.add(tmpRoot)
  const [dirA, dirB, configHome] = ["A", "B", "xdg"].map((d) => path.join(tmpRoot, d))
  for (const d of [dirA, dirB, configHome]) fs.mkdirSync(d)
  const bytes = makeTree(dirA, files)
  const [portA, portB] = [await freePort(), await freePort()]
  const startA = () => startDsync({ folder: dirA, port: portA, peerPort: portB, name: "bench-a", configHome })
  const procs = []
  const timed = async (what, proc, check) => {
    const t0 = performance.now()
    await waitFor(what, check, TIMEOUT_MS, procs, 20)
    return round((performance.now() - t0) / 1000)
  }
  try {
    const cold = dropCaches() // the first index reads every file from the disk, as after a reboot
    let a = startA()
    procs.push(a)
    const firstIndex = await timed("A to index the tree", a, () => INDEXED.test(a.stderr))
    const firstPeak = peakRssMib(a.pid)
    await stop(a, 30_000)
    dropCaches()
    a = startA()
    procs.splice(0, procs.length, a)
    const rescan = await timed("A to rescan the tree", a, () => INDEXED.test(a.stderr))

    const b = startDsync({ folder: dirB, port: portB, peerPort: portA, name: "bench-b", configHome })
    procs.push(b)
    const received = countLines(b, /received: /)
    const t0 = performance.now()
    await waitFor("B to receive A's index", () => /received the index of bench-a/.test(b.stderr), TIMEOUT_MS, procs, 20)
    const indexReceived = round((performance.now() - t0) / 1000)
    let allReceived = null
    let restartNewFile = null
    // the sender's figures up to here: A is restarted below
    let sender = null
    if (transfer) {
      await waitFor(`B to receive ${files} files`, () => received.n >= files, TIMEOUT_MS, procs, 50)
      allReceived = round((performance.now() - t0) / 1000)
      sender = { peak: peakRssMib(a.pid), cpu: cpuSeconds(a.pid) }
      await stop(a, 30_000)
      const r0 = performance.now()
      a = startA()
      procs.splice(0, 1, a)
      // saved as soon as A runs again, in the folder its scan reaches last
      await waitFor("A to run again", () => /listening on/.test(a.stdout), TIMEOUT_MS, procs, 5)
      const fresh = path.join(`d${String(Math.ceil(files / 100) - 1).padStart(5, "0")}`, "made-after-restart.txt")
      fs.writeFileSync(path.join(dirA, fresh), "new after the restart")
      await waitFor("B to receive the file made after A's restart", () => fs.existsSync(path.join(dirB, fresh)), TIMEOUT_MS, procs, 20)
      restartNewFile = round((performance.now() - r0) / 1000)
    }
    const result = {
      measure: "scale",
      files,
      folders: Math.ceil(files / 100),
      mib: round(bytes / 1024 / 1024, 1),
      first_index_s: firstIndex,
      rescan_s: rescan,
      index_received_s: indexReceived,
      all_received_s: allReceived,
      restart_new_file_s: restartNewFile,
      cold_cache: cold,
      peak_rss_mib: { first_index: firstPeak, sender: sender?.peak ?? peakRssMib(a.pid), receiver: peakRssMib(b.pid) },
      cpu_s: { sender: sender?.cpu ?? cpuSeconds(a.pid), receiver: cpuSeconds(b.pid) }
    }
    const stops = await Promise.all([stop(a, 30_000), stop(b, 30_000)])
    result.exit_codes = { sender: stops[0].code, receiver: stops[1].code }
    fs.mkdirSync(path.join(here, "results"), { recursive: true })
    fs.writeFileSync(path.join(here, "results", "scale.json"), JSON.stringify(result, null, 2) + "\n")
    process.stdout.write(JSON.stringify(result) + "\n")
    return stops.every((s) => s.code === 0) ? 0 : 1
  } finally {
    await Promise.all(procs.map((p) => (p.exit ? undefined : stop(p, 3_000))))
  }
}

await runBench(main)
