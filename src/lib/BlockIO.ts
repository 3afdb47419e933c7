import * as fs from "node:fs"

/**
 * Read `size` bytes at `offset`. Synchronous on purpose: one block from the page cache
 * is cheaper read in place than through a thread-pool round trip, and it sits on the
 * per-block hot path. May return fewer bytes when the file is shorter.
 */
export const readBlockSync = (abs: string, offset: number, size: number): Buffer => {
  const buffer = Buffer.allocUnsafe(size)
  return buffer.subarray(0, readBlockInto(abs, offset, buffer))
}

/** Read into `target` (its whole length) from `offset`; returns the bytes read. */
export const readBlockInto = (abs: string, offset: number, target: Uint8Array): number => {
  const fd = fs.openSync(abs, "r")
  try {
    return fs.readSync(fd, target, 0, target.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}
