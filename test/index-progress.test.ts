import { describe, expect, it } from "@effect/vitest"
import { makeIndexProgress } from "../src/programs/IndexProgress.js"

describe("index progress", () => {
  it("moves only over a run of finished batches, whatever order their records finish in", () => {
    const progress = makeIndexProgress(10)
    const first = progress.open(20, 2)
    const second = progress.open(30, 1)
    expect(progress.current()).toBe(10)
    progress.finish(second)
    expect(progress.current()).toBe(10) // the first batch still has records pending
    progress.finish(first)
    expect(progress.current()).toBe(10)
    progress.finish(first)
    expect(progress.current()).toBe(30)
  })

  it("a batch with nothing to apply moves it at once; a record never finished holds it back", () => {
    const progress = makeIndexProgress(0)
    progress.open(5, 0)
    expect(progress.current()).toBe(5)
    progress.open(9, 1) // given up on: never finished
    const later = progress.open(12, 1)
    progress.finish(later)
    expect(progress.current()).toBe(5)
  })

  it("stays correct over many batches", () => {
    const progress = makeIndexProgress(0)
    const tickets = Array.from({ length: 5000 }, (_, i) => progress.open(i + 1, 1))
    for (const t of tickets.slice(1).reverse()) progress.finish(t)
    expect(progress.current()).toBe(0)
    progress.finish(tickets[0]!)
    expect(progress.current()).toBe(5000)
  })
})
