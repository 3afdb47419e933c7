#!/usr/bin/env node
// Transfer benchmark: two real dsync processes on 127.0.0.1 (discovery off).
//   node bench/transfer.mjs [--size-mib N]      (default 512; `npm run bench` builds first)
// Measures: initial sync (a file A indexed at start, from B's connection until B has it,
// and from both nodes started),
// live sync (a file moved into A while both run, until B has it: includes A's watcher
// delay and hashing), `cp` (and `rsync`, where installed) of the same file (until they
// exit, no fsync), the latency of 20 new 1 KiB files, and each process's peak RSS. The
// page cache is dropped (where root may) before the references and before the nodes start.
// Prints one JSON object and writes it to bench/results/transfer.json.
// SAFETY: dsync runs only with `--no-discovery -a 127.0.0.1:PORT`.
import { spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  BIG_TIMEOUT_MS, context, dropCaches, fileSize, freePort, here, mainJs, MiB, parseArgs, peakRssMib, percentile, round, sha256File,
  sleep, SMALL_SAMPLES, SMALL_TIMEOUT_MS, runBench, startDsync, stop, tempDirs, timeReference, waitFor, writeRandomFile
} from "./harness.mjs"

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

  // ---- references: cp (and rsync, where installed) of the same file, from a cold cache ----
  const cpSeconds = timeReference("cp", [src, path.join(cpRoot, "big.bin")], BIG_TIMEOUT_MS)
  const rsyncSeconds = timeReference("rsync", ["--whole-file", src, path.join(cpRoot, "rsync.bin")], BIG_TIMEOUT_MS)
  fs.rmSync(cpRoot, { recursive: true, force: true })

  // ---- two nodes ----
  const [portA, portB] = [await freePort(), await freePort()]
  if (portA === portB) throw new Error("got the same port twice")
  const cold = dropCaches() // A reads seed.bin from the disk to hash it, as after a reboot
  const started = performance.now()
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
    // as a user waits: from both started (A hashes seed.bin meanwhile) to B having it
    const initialStartToFinish = (performance.now() - started) / 1000
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
    // One new file at a time, each after a quiet 0.6 s, as a user saves: @parcel/watcher
    // reports the first change after half a second of quiet at once, and batches changes
    // that follow within it for 50 ms (its MIN_WAIT_TIME); back-to-back samples measured that batching.
    const samples = []
    for (let i = 0; i < SMALL_SAMPLES; i++) {
      await sleep(600)
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
      initial_start_to_finish_seconds: round(initialStartToFinish),
      sync_seconds: round(syncSeconds),
      sync_mb_per_s: round(mb / syncSeconds, 1),
      cp_seconds: cpSeconds,
      cp_mb_per_s: round(mb / cpSeconds, 1),
      rsync_seconds: rsyncSeconds,
      cold_cache: cold,
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

await runBench(main)
