import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { byteBucket } from "../src/layers/RateLimiterTokenBucket.js"
import * as RateLimiterTokenBucket from "../src/layers/RateLimiterTokenBucket.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, sha256File, tempDir } from "./support/fs.js"
import { memoryNode } from "./support/nodes.js"

const MB = 1_000_000

describe("RateLimiter", () => {
  it.effect("a byte bucket lets a burst through, then holds each taker until the rate has paid for it", () =>
    Effect.gen(function*() {
      let now = 0
      const take = byteBucket(4 * MB, () => now) // burst: a quarter second, 1 MB
      yield* take(MB) // the burst: at once
      const fiber = yield* Effect.fork(take(2 * MB)) // 2 MB in debt: half a second
      yield* TestClock.adjust("400 millis")
      now = 400
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("200 millis")
      now = 600
      yield* Fiber.join(fiber)
    }))

  it.effect("unlimited (0) never waits", () =>
    Effect.gen(function*() {
      const take = byteBucket(0)
      for (let i = 0; i < 100; i++) yield* take(1e9)
    }))

  it.effect("the layer holds the connection limits, the transfer slots and both caps", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiterTokenBucket.make({ maxConcurrentTransfers: 1, maxSendRate: 0, maxRecvRate: 0 })
      expect(yield* limiter.withTransferSlot("p")(Effect.succeed(1))).toBe(1)
      expect(yield* limiter.guard("h", Effect.succeed(2))).toBe(2)
      yield* limiter.send(1e9)
      yield* limiter.receive(1e9)
    }))

  for (const side of ["receive", "send"] as const) {
    it.live(`a ${side} cap slows a real transfer between two nodes to the rate`, () =>
      Effect.gen(function*() {
        const a = yield* tempDir()
        const b = yield* tempDir()
        const big = path.join(a, "big.bin")
        fs.writeFileSync(big, randomBytes(6 * MB)) // random: LZ4 cannot shrink it, the wire carries it all
        const network = makeNetwork()
        yield* memoryNode(network, "a", a, [], side === "send" ? { limits: { maxSendRate: 2 * MB } } : undefined)
        const started = Date.now()
        yield* memoryNode(network, "b", b, ["a"], side === "receive" ? { limits: { maxRecvRate: 2 * MB } } : undefined)
        yield* eventually("big.bin arrived", () => fs.existsSync(path.join(b, "big.bin")) && sha256File(path.join(b, "big.bin")) === sha256File(big), 20_000)
        // 6 MB at 2 MB/s after a burst of at most 1 MB: at least 2.5 s (a floor: slowness cannot break it)
        expect(Date.now() - started).toBeGreaterThanOrEqual(2_400)
      }).pipe(Effect.scoped), { timeout: 30_000 })
  }
})
