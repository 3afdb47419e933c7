import * as Effect from "effect/Effect"

/**
 * Locks by path, held only while in use: the table is as large as the holders of the
 * moment. A set of paths is taken all at once or waited for, never held in part, so two
 * holders of several never wait on each other in a cycle, and taking a batch of 32 paths
 * is one step, not 32 nested semaphores (each a dozen fiber operations per file).
 */
export interface PathLocks {
  readonly withPath: (path: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly withPaths: (paths: ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const makePathLocks = (): PathLocks => {
  // each held path, with the waiters to wake when it is let go
  const held = new Map<string, Array<() => void>>()

  const firstHeld = (paths: ReadonlyArray<string>) => paths.find((path) => held.has(path))

  const release = (paths: ReadonlyArray<string>) =>
    Effect.sync(() => {
      for (const path of paths) {
        const waiters = held.get(path)
        held.delete(path)
        waiters?.forEach((wake) => wake())
      }
    })

  /**
   * Wait until every path is free, then take them all. As in Effect's semaphores, they
   * are taken when the waiting fiber runs again, not when it is woken: a fiber
   * interrupted meanwhile has taken nothing. An interrupted wait leaves its queue.
   */
  const take = (paths: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      const claim = Effect.suspend(() => {
        if (firstHeld(paths) !== undefined) return take(paths) // taken again before we ran
        for (const path of paths) held.set(path, [])
        return Effect.void
      })
      let waitingOn: string | undefined
      const wake = () => {
        waitingOn = firstHeld(paths)
        if (waitingOn === undefined) resume(claim)
        else held.get(waitingOn)!.push(wake)
      }
      wake()
      return Effect.sync(() => {
        const queue = waitingOn === undefined ? undefined : held.get(waitingOn)
        const at = queue ? queue.indexOf(wake) : -1
        if (at >= 0) queue!.splice(at, 1)
      })
    })

  const withPaths = (paths: ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const unique = [...new Set(paths)]
    // as Effect's semaphores do: the wait is interruptible, the release always follows the take
    return Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(take(unique)), Effect.ensuring(restore(effect), release(unique)))
    )
  }
  return { withPath: (path) => withPaths([path]), withPaths }
}
