#!/usr/bin/env node
// Every benchmark, one after another: prints each one's JSON object as it finishes,
// then a short table. `npm run bench` builds first. Each benchmark is its own process
// (bench/transfer.mjs, bench/small-files.mjs, bench/scale.mjs) and cleans up after itself.
//   node bench/all.mjs [--quick]   (1 GiB transfer; --quick: 256 MiB, and a scale run of 20,000 files, index only)
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { here } from "./harness.mjs"

const quick = process.argv.includes("--quick")
const runs = [
  ["transfer", ["transfer.mjs", "--size-mib", quick ? "256" : "1024"]],
  ["files-2000", ["small-files.mjs", "--files", "2000"]],
  ["files-10000", ["small-files.mjs", "--files", "10000"]],
  ["scale", quick ? ["scale.mjs", "--files", "20000", "--no-transfer"] : ["scale.mjs"]]
]

const results = []
let failed = 0
for (const [measure, [script, ...args]] of runs) {
  const r = spawnSync(process.execPath, [path.join(here, script), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 1_800_000 })
  const line = r.stdout.trim().split("\n").at(-1) ?? ""
  let result
  try {
    result = { ...JSON.parse(line), measure }
  } catch {
    failed++
    process.stderr.write(`bench ${measure}: no result (exit ${r.status ?? r.signal})\n`)
    continue
  }
  results.push(result)
  process.stdout.write(JSON.stringify(result) + "\n")
}

const fmt = (x) => (x === null || x === undefined ? "-" : String(x))
/** The reference tools' times, as run on the same data in the same run (rsync where installed). */
const references = (r, cp) => [`${cp} ${r.cp_seconds} s`, ...(r.rsync_seconds == null ? [] : [`rsync ${r.rsync_seconds} s`])].join(", ") +
  (r.cold_cache ? " (cold cache)" : "")
const rows = results.flatMap((r) => {
  const rss = r.peak_rss_mib ? Object.values(r.peak_rss_mib).map(fmt).join(" / ") : "-"
  switch (r.measure) {
    case "transfer":
      return [
        [`${r.file_mib} MiB initial sync`, `${r.initial_sync_seconds} s from connection (${r.initial_sync_mb_per_s} MB/s), ${r.initial_start_to_finish_seconds} s from start`, references(r, "cp"), rss],
        [`${r.file_mib} MiB live sync`, `${r.sync_seconds} s (${r.sync_mb_per_s} MB/s)`, "", ""],
        ["new 1 KiB file to the peer", `p50 ${r.small_file_latency_ms.median} ms, p90 ${r.small_file_latency_ms.p90} ms`, "", ""]
      ]
    case "files-2000":
    case "files-10000":
      return [[`${r.files} small files, start to finish`, `${r.seconds} s (${r.seconds_after_connect} s after connecting)`, references(r, "cp -r"), rss]]
    case "scale":
      return [[
        `${r.files} files: first index / rescan / index at peer / all at peer`,
        `${fmt(r.first_index_s)} / ${fmt(r.rescan_s)} / ${fmt(r.index_received_s)} / ${fmt(r.all_received_s)} s`,
        "",
        rss
      ], [`${r.files} files: a node restarted, until a file saved then reaches the peer`, `${fmt(r.restart_new_file_s)} s`, "", ""]]
    default:
      return []
  }
})
const table = [["measure", "dsync", "reference (same run)", "peak RSS MiB"], ...rows]
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)))
for (const row of table) process.stdout.write(row.map((c, i) => c.padEnd(widths[i])).join(" | ") + "\n")
process.exit(failed === 0 ? 0 : 1)
