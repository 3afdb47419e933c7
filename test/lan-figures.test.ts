// Figures for issue 7, measured across real network namespaces (test/support/netns.ts):
// real dsync processes on a private bridge, finding each other by mDNS.
//   1. start-up: process spawn to the first "connected to" line, 2 hosts, empty folders (5 runs)
//   2. late joiner: h1 and h2 hold 500 small files each and converge; h3 starts empty;
//      h3's spawn to h3's tree equal to the others' (3 runs)
//   3. partition: 3 hosts converged; h1 cut off for 15 s while h1 and h2 each create 20
//      files; heal to all three trees equal (3 runs)
// Each run prints one JSON line ({"figure":..., "run":..., "ms":...}), each figure a
// summary line with the median. Runs only with DSYNC_LAN_FIGURES=1 (it takes minutes):
//   npm run build && DSYNC_LAN_FIGURES=1 npx vitest run test/lan-figures.test.ts
// SAFETY: every dsync here runs inside a namespace the harness made (design.md, section 5).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { describe, expect, it } from "vitest"
import { Lan, netnsUnavailable } from "./support/netns.js"
import { sleep } from "./support/proc.js"
import { rng } from "./support/rng.js"

const ENABLED = process.env.DSYNC_LAN_FIGURES === "1"
// (the namespace probe only when asked for: it makes and removes a namespace)
const skipReason = !ENABLED ? "set DSYNC_LAN_FIGURES=1 to run it (real namespaces, several minutes)" : netnsUnavailable()
if (skipReason) console.warn(`lan-figures.test.ts skipped: ${skipReason}`)

const now = () => performance.now()
const round = (ms: number) => Math.round(ms)
const median = (xs: ReadonlyArray<number>) => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return round(s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2)
}
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line))
/** The first lines of an error (a harness timeout carries the differing paths, then the logs). */
const brief = (e: unknown, lines = 400) => String((e as Error)?.stack ?? e).split("\n").slice(0, lines).join("\n")

/** Writes `count` files of 1-8 KiB of seeded random bytes under `dir/` in host `i`'s folder. */
const writeSmallFiles = (lan: Lan, i: number, dir: string, count: number, seed: number) => {
  const r = rng(seed)
  fs.mkdirSync(lan.file(i, dir), { recursive: true })
  let bytes = 0
  for (let k = 0; k < count; k++) {
    const size = 1024 + r.int(7 * 1024 + 1)
    const buf = Buffer.alloc(size)
    for (let b = 0; b < size; b += 4) buf.writeUInt32LE((r.next() * 0x100000000) >>> 0, Math.min(b, size - 4))
    fs.writeFileSync(lan.file(i, path.join(dir, `file-${String(k).padStart(3, "0")}.bin`)), buf)
    bytes += size
  }
  return bytes
}

/**
 * Runs `runs` measurements of `figure`, each on a fresh LAN torn down afterwards; prints a
 * line per run (a failed run: its error, differing paths and log tails) and the summary,
 * and fails at the end if any run failed.
 */
const measure = async (figure: string, runs: number, once: (run: number) => Promise<Record<string, unknown> & { ms: number }>) => {
  const ok: Array<number> = []
  const failures: Array<string> = []
  for (let run = 1; run <= runs; run++) {
    try {
      const result = await once(run)
      ok.push(result.ms)
      emit({ figure, run, ...result, ms: round(result.ms) })
    } catch (e) {
      failures.push(`run ${run}: ${brief(e)}`)
      emit({ figure, run, failed: brief(e, 1) })
      console.error(`${figure} run ${run} failed:\n${brief(e)}`)
    }
  }
  emit({ figure, summary: true, runs_ms: ok.map(round), median_ms: median(ok), failed_runs: failures.length })
  expect(failures, failures.join("\n\n")).toEqual([])
}

/** A fresh LAN with discovery, destroyed (processes, namespaces, folders) whatever happens. */
const withLan = async <A>(hosts: number, f: (lan: Lan) => Promise<A>): Promise<A> => {
  const lan = Lan.create({ hosts, discovery: true })
  try {
    return await f(lan)
  } finally {
    await lan.destroy()
  }
}

/** Spawns dsync in host `i`: its process, the time just before the spawn, and the start (resolves once listening). */
const startTimed = (lan: Lan, i: number) => {
  const t0 = now()
  const started = lan.start(i) // spawns synchronously, then waits for the listening line
  started.catch(() => undefined) // (awaited by the caller; this only keeps an early failure from going unhandled)
  const proc = lan.current(i)!
  return { t0, proc, started }
}

/**
 * Host `i`'s TCP connections of dsync's port as `ss -tin` sees them, one short line each
 * (peer, rto, backoff, unacked): what TCP's retransmission timer holds at that moment.
 */
const tcpState = (lan: Lan, i: number): Array<string> => {
  const out = spawnSync("ip", ["netns", "exec", lan.host(i).ns, "ss", "-tinH", "state", "established"], { encoding: "utf8", timeout: 5_000 })
  const lines = (out.stdout ?? "").split("\n")
  const found: Array<string> = []
  for (let k = 0; k < lines.length; k++) {
    // a connection line, then its indented details line
    if (/^\s/.test(lines[k]!)) continue
    const cols = lines[k]!.trim().split(/\s+/)
    if (cols.length < 4 || !/:\d+$/.test(cols[2] ?? "")) continue
    const info = lines[k + 1] ?? ""
    const field = (name: string) => new RegExp(`\\b${name}:(\\S+)`).exec(info)?.[1] ?? "-"
    found.push(`${cols[2]}->${cols[3]} sendq:${cols[1]} rto:${field("rto")} backoff:${field("backoff")} unacked:${field("unacked")}`)
  }
  return found
}

/** Where each host's output ends now: `disconnectsSince` reads what came after. */
const outputMarks = (lan: Lan, indices: ReadonlyArray<number>) => new Map(indices.map((i) => [i, lan.current(i)!.output().length]))

/** The "disconnected from" lines each host logged since `marks` ("h2: disconnected from h1 ...: reason"). */
const disconnectsSince = (lan: Lan, marks: ReadonlyMap<number, number>) =>
  [...marks].flatMap(([i, mark]) =>
    lan.current(i)!.output().slice(mark).split("\n").filter((l) => /\bdisconnected from /.test(l)).map((l) => `h${i}: ${l.replace(/^\S+ +\S+ +/, "").trim()}`)
  )

describe.skipIf(skipReason !== undefined)("issue 7 figures across a LAN of namespaces (mDNS discovery)", () => {
  it("1. process start to the first 'connected to', 2 hosts, empty folders (5 runs)", async () => {
    await measure("start_to_connected_ms", 5, () =>
      withLan(2, async (lan) => {
        const hosts = [1, 2].map((i) => startTimed(lan, i))
        const times = await Promise.all(
          hosts.map(async ({ proc, started, t0 }) => {
            let listening = NaN
            const listened = started.then(() => (listening = now() - t0))
            // waitFor checks on every chunk of output, so the time is that of the line's arrival
            await proc.waitFor(/\bconnected to /, 30_000)
            const connected = now() - t0
            await listened
            return { listening, connected }
          })
        )
        const [h1, h2] = [times[0]!, times[1]!]
        const line = lan.current(1)!.output().split("\n").find((l) => /\bconnected to /.test(l)) ?? ""
        return {
          ms: Math.max(h1.connected, h2.connected),
          h1_connected_ms: round(h1.connected),
          h2_connected_ms: round(h2.connected),
          h1_listening_ms: round(h1.listening),
          h2_listening_ms: round(h2.listening),
          h1_line: line.trim()
        }
      })
    )
  }, 5 * 60_000)

  it("2. a host started last, empty, gets the 500 + 500 small files of the others (3 runs)", async () => {
    await measure("late_joiner_500x2_ms", 3, (run) =>
      withLan(3, async (lan) => {
        const bytes = writeSmallFiles(lan, 1, "from-h1", 500, 1000 + run) + writeSmallFiles(lan, 2, "from-h2", 500, 2000 + run)
        const t12 = now()
        await lan.startAll([1, 2])
        const tree12 = await lan.waitConverged([1, 2], 180_000, "h1 and h2 with 500 + 500 files")
        const h12ConvergedMs = now() - t12
        expect(Object.keys(tree12).filter((p) => p.endsWith(".bin"))).toHaveLength(1000)
        const { t0, started } = startTimed(lan, 3)
        await started
        const tree = await lan.waitConverged([1, 2, 3], 240_000, "h3 (started last, empty) has the others' tree")
        const ms = now() - t0
        expect(Object.keys(tree).filter((p) => p.endsWith(".bin"))).toHaveLength(1000)
        return { ms, files: 1000, bytes, h1_h2_first_converged_ms: round(h12ConvergedMs) }
      })
    )
  }, 20 * 60_000)

  it("3. converging after h1 is cut off for 15 s while h1 and h2 each create 20 files (3 runs)", async () => {
    await measure("heal_to_converged_ms", 3, (run) =>
      withLan(3, async (lan) => {
        for (const i of [1, 2, 3]) lan.write(i, `start-${i}.txt`, `initial on h${i}, run ${run}\n`)
        await lan.startAll()
        await lan.waitConverged([1, 2, 3], 60_000, "all three before the cut")
        const pids = [1, 2, 3].map((i) => lan.current(i)!.pid)

        const marks = outputMarks(lan, [1, 2, 3])
        lan.cut(1)
        const cutAt = Date.now()
        // 20 files each, one per side every 500 ms from 1 s to 10.5 s into the cut
        for (let k = 0; k < 20; k++) {
          await sleep(Math.max(0, cutAt + 1_000 + k * 500 - Date.now()))
          lan.write(1, `cut/h1-${String(k).padStart(2, "0")}.txt`, `created on h1 while cut, #${k}, run ${run}\n`)
          lan.write(2, `cut/h2-${String(k).padStart(2, "0")}.txt`, `created on h2 while cut, #${k}, run ${run}\n`)
        }
        // the cut is real: h2 and h3 converge without h1, and h1 gets none of h2's files
        await lan.waitConverged([2, 3], Math.max(1_000, cutAt + 14_000 - Date.now()), "h2 and h3 while h1 is cut off")
        await sleep(Math.max(0, cutAt + 15_000 - Date.now()))
        const leaked = [...Array(20).keys()].filter((k) => lan.read(1, `cut/h2-${String(k).padStart(2, "0")}.txt`) !== undefined)
        expect(leaked, "h1 is cut off, yet got h2's files").toEqual([])
        const tcpAtHeal = { h1: tcpState(lan, 1), h2: tcpState(lan, 2) }
        const cutMs = Date.now() - cutAt
        lan.heal(1)
        const t0 = now()
        const tree = await lan.waitConverged([1, 2, 3], 120_000, "all three after the 15 s cut was healed")
        const ms = now() - t0
        expect([1, 2, 3].map((i) => lan.current(i)!.pid), "a dsync was restarted").toEqual(pids)
        expect(Object.keys(tree).filter((p) => p.startsWith("cut/") && p.endsWith(".txt"))).toHaveLength(40)
        return { ms, cut_ms: cutMs, files_created_while_cut: 40, disconnects_since_cut: disconnectsSince(lan, marks), tcp_at_heal: tcpAtHeal }
      })
    )
  }, 15 * 60_000)
})
