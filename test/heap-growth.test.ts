import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import type { CipherApi } from "../src/services/Cipher.js"
import { growingPercent, YOUNG_CAP, youngGrowthFactor } from "../src/cli/HeapGrowth.js"
import { withYoungCollections, youngCollection } from "../src/cli/YoungCollections.js"

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

  /**
   * The young generation's size in a process of its own (the flags are the whole
   * process's), tuned, after `body` ran there: `churn(rounds)` allocates short-lived
   * objects, a load under which V8 alone grows it to 2 x 16 MB (32 MiB).
   */
  const youngAfter = (body: string) => {
    const program = `
      import { tuneHeapGrowth } from ${JSON.stringify(built)}
      import { getHeapSpaceStatistics } from "node:v8"
      import { Worker } from "node:worker_threads"
      tuneHeapGrowth()
      let kept = []
      const churn = async (rounds) => {
        for (let round = 0; round < rounds; round++) {
          for (let i = 0; i < 20000; i++) { kept.push({ i, list: [i] }); if (kept.length > 60000) kept = [] }
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
      ${body}
      process.stdout.write(String(getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size))`
    return Number(execFileSync(process.execPath, ["--input-type=module", "-e", program], { encoding: "utf8", timeout: 60_000 }))
  }

  it.skipIf(!existsSync(built))("keeps a busy process's young generation at the cap (a real V8, `npm test` builds first)", () => {
    const young = youngAfter("await churn(300)")
    expect(young).toBeGreaterThan(0)
    expect(young).toBeLessThanOrEqual(YOUNG_CAP)
  })

  // each new isolate sets V8's growth factor back to 2 for the whole process: the hash
  // workers come and go, and the cap went with the first of them (1 GiB: 2 x 16 MB again)
  it.skipIf(!existsSync(built))("keeps the cap once worker threads have started and gone", () => {
    const young = youngAfter(`
      await churn(100)
      for (let w = 0; w < 3; w++) {
        const worker = new Worker("setTimeout(() => {}, 20)", { eval: true })
        await new Promise((resolve) => worker.once("exit", resolve))
        await churn(100)
      }`)
    expect(young).toBeGreaterThan(0)
    expect(young).toBeLessThanOrEqual(YOUNG_CAP)
  })
})

describe("young collections as the cipher's buffers come and go (CLI)", () => {
  const fake: CipherApi = {
    name: "fake",
    seal: (_k, _n, plaintext) => new Uint8Array(plaintext.length + 16),
    sealParts: (_k, _n, plaintext) => [new Uint8Array(plaintext.length), new Uint8Array(16)],
    open: (_k, _n, sealed) => (sealed[0] === 0xff ? undefined : new Uint8Array(sealed.length - 16))
  }
  const key = new Uint8Array(32)
  const nonce = new Uint8Array(12)
  const turn = () => new Promise((resolve) => setImmediate(resolve))

  it("collects once per CHURN_BYTES sealed or opened, on a later turn of the event loop; a frame that fails to open counts nothing", async () => {
    let collections = 0
    const cipher = withYoungCollections(() => collections++, 1000)(fake)
    cipher.seal(key, nonce, new Uint8Array(400))
    cipher.open(key, nonce, new Uint8Array(416).fill(0xff)) // refused: no buffer made
    await turn()
    expect(collections).toBe(0)
    cipher.sealParts(key, nonce, new Uint8Array(300))
    cipher.open(key, nonce, new Uint8Array(316)) // 1000 bytes made: one collection, not now
    cipher.seal(key, nonce, new Uint8Array(5000)) // past it again before it ran: still one
    expect(collections).toBe(0)
    await turn()
    expect(collections).toBe(1)
    cipher.seal(key, nonce, new Uint8Array(999))
    await turn()
    expect(collections).toBe(1)
    expect(cipher.open(key, nonce, new Uint8Array(17))).toEqual(new Uint8Array(1))
    await turn()
    expect(collections).toBe(2)
  })

  it("has V8's young collection at hand", () => {
    const collect = youngCollection()
    expect(collect).toBeTypeOf("function")
    expect(() => collect!()).not.toThrow()
  })
})
