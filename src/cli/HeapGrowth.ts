/**
 * How far V8 lets the old generation grow between full collections, for the CLI's process
 * (a library leaves its host's heap alone). Left to itself V8 allows up to ~4x what is
 * live, or less when collections look slow, and two things pull opposite ways:
 *
 * - Many records in flight (small files, large folders): 4x was 100 MB of a receiver's
 *   190 MB peak RSS for 10,000 small files (22 MB live). Doubling at most keeps that peak
 *   near 150 MB, and 100,000 files at 229 MB (from 329).
 * - A large file streaming (a small heap, 11-13 MB of old space, and 512 KiB buffers coming
 *   and going): with room to double only, V8 marks the old generation again every ~90 ms,
 *   80 full collections per GiB received, each a marking thread's 50 ms on a 2-core host.
 *   Room for 4x measured -30% CPU on both nodes for 1 GiB (16-19 to 11-14 CPU-s) for
 *   +13-25 MB peak RSS per process; 3x, -20% CPU (14-15 CPU-s) for +3-10 MB.
 *
 * So: 3x while the old generation is small, 2x once it holds more.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8"

/** Old space in use below which there is room to grow 3x. */
const SMALL_OLD_SPACE = 16 * 1024 * 1024
const CHECK_INTERVAL_MS = 1000

/** The growth allowed, as V8's --heap-growing-percent, for `oldSpaceUsed` bytes of old space. */
export const growingPercent = (oldSpaceUsed: number): number => (oldSpaceUsed < SMALL_OLD_SPACE ? 200 : 100)

const oldSpaceUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === "old_space")?.space_used_size ?? 0

/** Set the growth for the heap as it is now, and again each second; the timer never keeps the process up. */
export const tuneHeapGrowth = (): void => {
  let current = 0
  const tune = () => {
    const percent = growingPercent(oldSpaceUsed())
    if (percent !== current) setFlagsFromString(`--heap-growing-percent=${current = percent}`)
  }
  tune()
  setInterval(tune, CHECK_INTERVAL_MS).unref()
}
