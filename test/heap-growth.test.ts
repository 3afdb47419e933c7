import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { growingPercent, YOUNG_CAP, youngGrowthFactor } from "../src/cli/HeapGrowth.js"

const built = join(__dirname, "..", "dist", "cli", "HeapGrowth.js")

describe("heap growth between full collections (CLI)", () => {
  it("allows 3x while full collections come back to back, 2x once they are rare, and keeps its choice in between", () => {
    expect(growingPercent(100, 0)).toBe(100)
    expect(growingPercent(100, 2)).toBe(100)
    expect(growingPercent(100, 11)).toBe(200) // a large file streaming at 2x
    expect(growingPercent(200, 2)).toBe(200) // fewer at 3x: stays
    expect(growingPercent(200, 0)).toBe(100) // done
  })

  it("lets the young generation double while that stays within the cap, then never again", () => {
    expect(youngGrowthFactor(2, 2 * 1024 * 1024)).toBe(2)
    expect(youngGrowthFactor(2, YOUNG_CAP / 2)).toBe(2)
    expect(youngGrowthFactor(2, YOUNG_CAP / 2 + 1)).toBe(1)
    expect(youngGrowthFactor(2, YOUNG_CAP)).toBe(1)
    expect(youngGrowthFactor(1, YOUNG_CAP / 4)).toBe(1) // shrunk at idle: stays
  })

  // V8 alone grows it to 2 x 16 MB under this load (32 MiB): a process of its own, since
  // the flags are the whole process's
  it.skipIf(!existsSync(built))("keeps a busy process's young generation at the cap (a real V8, `npm test` builds first)", () => {
    const program = `
      import { tuneHeapGrowth } from ${JSON.stringify(built)}
      import { getHeapSpaceStatistics } from "node:v8"
      tuneHeapGrowth()
      let kept = []
      for (let round = 0; round < 300; round++) {
        for (let i = 0; i < 20000; i++) { kept.push({ i, list: [i] }); if (kept.length > 60000) kept = [] }
        await new Promise((resolve) => setImmediate(resolve))
      }
      process.stdout.write(String(getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size))`
    const young = Number(execFileSync(process.execPath, ["--input-type=module", "-e", program], { encoding: "utf8", timeout: 60_000 }))
    expect(young).toBeGreaterThan(0)
    expect(young).toBeLessThanOrEqual(YOUNG_CAP)
  })
})
