/**
 * How far V8 lets the heap grow, for the CLI's process (a library leaves its host's heap
 * alone; YoungCollections.ts says when the CLI collects the young generation). The old
 * generation, between full collections: left to itself, V8 allows up to ~4x what is
 * live, or less when collections look slow, and two workloads pull opposite ways:
 *
 * - Many records in flight (small files, large folders): 4x was 100 MB of a receiver's
 *   190 MB peak RSS for 10,000 small files (22 MB live). Doubling at most keeps that peak
 *   near 150 MB, and 100,000 files at 229 MB (from 329); full collections then come about
 *   every 2 s.
 * - A large file streaming (11-13 MB live, 512 KiB buffers coming and going): with room to
 *   double only, V8 marks the old generation again every ~90 ms, 80 full collections per
 *   GiB received, each a marking thread's 50 ms on a 2-core host. Room for 3x measured
 *   -20% CPU on both nodes for 1 GiB (16-19 to 14-15 CPU-s) for +3-10 MB peak RSS; 4x,
 *   -30% for +13-25 MB.
 *
 * So: 2x, and 3x while full collections come back to back (3 or more a second; back to
 * 2x below 1 a second).
 *
 * The young generation is capped too. V8 doubles it under sustained allocation up to 2 x
 * 16 MB semi-spaces. Its maximum is fixed at start-up (`--max-semi-space-size`, which
 * `node dist/dsync.mjs` cannot pass), but each growth step reads
 * `--semi-space-growth-factor` anew: set to 1 once the young generation holds YOUNG_CAP,
 * it stops growing there. Measured, peak RSS and time against no cap: 2 x 8 MB, 10,000
 * small files 149 -> 131-134 MB and 100,000 files 179/205/231 -> 157/188/217 MB (first
 * index, sender, receiver) at the same time and CPU; 2 x 4 MB, 120-125 MB for 10,000 but
 * 100,000 files took 15-20% more CPU (records that live a little longer are promoted,
 * and the old generation is marked more often); 2 x 1 MB, +15% CPU already for 10,000.
 */
import { constants, PerformanceObserver } from "node:perf_hooks"
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8"
import type { Worker } from "node:worker_threads"

const NORMAL = 100
const STREAMING = 200
/** The young generation's size (both semi-spaces) past which it no longer grows. */
export const YOUNG_CAP = 16 * 1024 * 1024

/**
 * V8's --semi-space-growth-factor after `current`, for a young generation of `youngBytes`:
 * 2 while one doubling stays within the cap, then 1 for good. Looked at after collections,
 * not during them; and once V8 has shrunk it at idle, one growth step can take it back to
 * its old size doubled (measured 4 -> 16 MB), so growth never resumes.
 */
export const youngGrowthFactor = (current: number, youngBytes: number): number =>
  current === 2 && 2 * youngBytes <= YOUNG_CAP ? 2 : 1

const youngBytes = (): number => getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0

/** The growth to allow next (V8's --heap-growing-percent), from the current one and the full collections of the last second. */
export const growingPercent = (current: number, majorsLastSecond: number): number =>
  majorsLastSecond >= 3 ? STREAMING : majorsLastSecond < 1 ? NORMAL : current

/** Set the growths now and adjust them as collections come; neither the timer nor the observer keeps the process up. */
export const tuneHeapGrowth = (): void => {
  let current = NORMAL
  setFlagsFromString(`--heap-growing-percent=${current}`)
  let majors = 0
  let growth = 2
  const setGrowth = (factor: number) => setFlagsFromString(`--semi-space-growth-factor=${growth = factor}`)
  // after each batch of collections: the young generation only grows at the end of one
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
    }
    if (growth === 1) return // capped for good: no statistics to gather after each collection
    const next = youngGrowthFactor(growth, youngBytes())
    if (next !== growth) setGrowth(next)
  })
  observer.observe({ entryTypes: ["gc"] })
  // Each new isolate (a worker thread's, as the hash workers come and go) sets V8's factor
  // back to 2 for the whole process as it starts: capped again once the worker runs.
  // Without, the first hash worker lifted the cap (sending 1 GiB: 2 x 16 MB again).
  process.on("worker", (worker: Worker) => {
    worker.once("online", () => growth === 1 && setGrowth(1))
  })
  setInterval(() => {
    const next = growingPercent(current, majors)
    majors = 0
    if (next !== current) setFlagsFromString(`--heap-growing-percent=${current = next}`)
  }, 1000).unref()
}
