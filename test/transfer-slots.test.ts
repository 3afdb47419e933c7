import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makeTransferSlots } from "../src/programs/TransferSlots.js"

/** Let every runnable fiber run to its next wait. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

describe("TransferSlots", () => {
  it.effect("never grants more than the total; a freed slot goes to the waiting peer holding the fewest", () =>
    Effect.gen(function*() {
      const slots = yield* makeTransferSlots(2)
      const order: Array<string> = []
      const gates = new Map<string, Deferred.Deferred<void>>()
      const job = (peer: string, id: string) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          gates.set(id, gate)
          return yield* slots.withSlot(peer)(Effect.zipRight(Effect.sync(() => order.push(id)), Deferred.await(gate)))
        })
      // greedy peer X asks for four, then Y for one
      const fibers = []
      for (const id of ["x1", "x2", "x3", "x4"]) fibers.push(yield* Effect.fork(job("X", id)))
      yield* settle
      fibers.push(yield* Effect.fork(job("Y", "y1")))
      yield* settle
      expect(order).toEqual(["x1", "x2"])
      expect(slots.held()).toEqual(new Map([["X", 2]]))
      // X finishes one: Y (holding none) goes before X's queued requests
      yield* Deferred.succeed(gates.get("x1")!, undefined)
      yield* settle
      expect(order).toEqual(["x1", "x2", "y1"])
      yield* Deferred.succeed(gates.get("x2")!, undefined)
      yield* settle
      expect(order).toEqual(["x1", "x2", "y1", "x3"])
      for (const id of ["y1", "x3"]) yield* Deferred.succeed(gates.get(id)!, undefined)
      yield* settle
      yield* Deferred.succeed(gates.get("x4")!, undefined)
      for (const f of fibers) yield* Fiber.join(f)
      expect(slots.held().size).toBe(0)
    }))

  it.effect("a waiter interrupted while queued, or just as it was granted, leaves no slot taken", () =>
    Effect.gen(function*() {
      const slots = yield* makeTransferSlots(1)
      const hold = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(slots.withSlot("A")(Deferred.await(hold)))
      yield* settle
      const waiter = yield* Effect.fork(slots.withSlot("B")(Effect.never))
      yield* settle
      yield* Fiber.interrupt(waiter)
      yield* Deferred.succeed(hold, undefined)
      yield* Fiber.join(holder)
      expect(slots.held().size).toBe(0)
      // and the slot is free again
      expect(yield* slots.withSlot("C")(Effect.succeed("ran"))).toBe("ran")
    }))
})
