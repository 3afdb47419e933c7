import { describe, expect, it } from "vitest"
import { growingPercent } from "../src/cli/HeapGrowth.js"

const MiB = 1024 * 1024

describe("heap growth between full collections (CLI)", () => {
  it("allows 3x while the old space is small (a large file streaming), 2x once it holds more (many records)", () => {
    expect(growingPercent(12 * MiB)).toBe(200)
    expect(growingPercent(15.9 * MiB)).toBe(200)
    expect(growingPercent(16 * MiB)).toBe(100)
    expect(growingPercent(200 * MiB)).toBe(100)
  })
})
