/**
 * How far V8 lets the old generation grow between full collections, for the CLI's process
 * (a library leaves its host's heap alone). Left to itself V8 allows up to ~4x what is
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
 */
import { constants, PerformanceObserver } from "node:perf_hooks"
import { setFlagsFromString } from "node:v8"

const NORMAL = 100
const STREAMING = 200

/** The growth to allow next (V8's --heap-growing-percent), from the current one and the full collections of the last second. */
export const growingPercent = (current: number, majorsLastSecond: number): number =>
  majorsLastSecond >= 3 ? STREAMING : majorsLastSecond < 1 ? NORMAL : current

/** Set the growth now and adjust it each second; neither the timer nor the observer keeps the process up. */
export const tuneHeapGrowth = (): void => {
  let current = NORMAL
  setFlagsFromString(`--heap-growing-percent=${current}`)
  let majors = 0
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  setInterval(() => {
    const next = growingPercent(current, majors)
    majors = 0
    if (next !== current) setFlagsFromString(`--heap-growing-percent=${current = next}`)
  }, 1000).unref()
}
