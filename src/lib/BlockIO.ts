import * as fs from "node:fs"

/**
 * Read `size` bytes at `offset`. Synchronous on purpose: one block from the page cache
 * is cheaper read in place than through a thread-pool round trip, and it sits on the
 * per-block hot path. May return fewer bytes when the file is shorter.
 */
export const readBlockSync = (abs: string, offset: number, size: number): Buffer => {
  const fd = fs.openSync(abs, "r")
  try {
    const buffer = Buffer.allocUnsafe(size)
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, size, offset))
  } finally {
    fs.closeSync(fd)
  }
}
