import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"

/**
 * The node's transfer slots (`max_concurrent_transfers`), shared fairly between peers:
 * while anyone waits, a new request queues behind them, and a freed slot goes to the
 * waiting peer that holds the fewest slots (first come first served among equals). A
 * peer serving slowly can then hold at most its share once others want slots, and its
 * slow streams are cancelled by the floor rate (PeerSession), so it cannot starve them.
 */
export interface TransferSlots {
  /** Run `effect` holding one slot on behalf of `peer`; waits (interruptibly) for one. */
  readonly withSlot: (peer: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Slots held now, by peer (for tests and diagnostics). */
  readonly held: () => ReadonlyMap<string, number>
}

interface Waiter {
  readonly peer: string
  readonly ready: Deferred.Deferred<void>
  granted: boolean
}

/** `total` transfer slots, shared fairly as described above. */
export const makeTransferSlots = (total: number): Effect.Effect<TransferSlots> =>
  Effect.sync(() => {
    // Plain state: every change below is synchronous, in one step.
    const held = new Map<string, number>()
    const waiting: Array<Waiter> = []
    let inUse = 0

    const take = (peer: string) => {
      inUse++
      held.set(peer, (held.get(peer) ?? 0) + 1)
    }
    const give = (peer: string) => {
      inUse--
      const n = (held.get(peer) ?? 1) - 1
      if (n === 0) held.delete(peer)
      else held.set(peer, n)
    }
    /** Hand free slots to waiters, the peer holding the fewest first. */
    const dispatch = () => {
      while (inUse < total && waiting.length > 0) {
        let best = 0
        for (let i = 1; i < waiting.length; i++) {
          if ((held.get(waiting[i]!.peer) ?? 0) < (held.get(waiting[best]!.peer) ?? 0)) best = i
        }
        const [waiter] = waiting.splice(best, 1)
        waiter!.granted = true
        take(waiter!.peer)
        Deferred.unsafeDone(waiter!.ready, Effect.void)
      }
    }
    const release = (peer: string) =>
      Effect.sync(() => {
        give(peer)
        dispatch()
      })

    const acquire = (peer: string) =>
      Effect.suspend(() => {
        if (inUse < total && waiting.length === 0) {
          take(peer)
          return Effect.void
        }
        const waiter: Waiter = { peer, ready: Deferred.unsafeMake<void>(FiberId.none), granted: false }
        waiting.push(waiter)
        return Deferred.await(waiter.ready).pipe(
          Effect.onInterrupt(() =>
            waiter.granted
              ? release(peer) // granted as we were interrupted: pass it on
              : Effect.sync(() => void waiting.splice(waiting.indexOf(waiter), 1))
          )
        )
      })

    return {
      withSlot: (peer) => (effect) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(restore(acquire(peer)), restore(effect).pipe(Effect.ensuring(release(peer))))
        ),
      held: () => new Map(held)
    }
  })
