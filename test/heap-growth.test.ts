import { describe, expect, it } from "vitest"
import { growingPercent } from "../src/cli/HeapGrowth.js"

describe("heap growth between full collections (CLI)", () => {
  it("allows 3x while full collections come back to back, 2x once they are rare, and keeps its choice in between", () => {
    expect(growingPercent(100, 0)).toBe(100)
    expect(growingPercent(100, 2)).toBe(100)
    expect(growingPercent(100, 11)).toBe(200) // a large file streaming at 2x
    expect(growingPercent(200, 2)).toBe(200) // fewer at 3x: stays
    expect(growingPercent(200, 0)).toBe(100) // done
  })
})
