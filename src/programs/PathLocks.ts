import * as Effect from "effect/Effect"

/**
 * One apply at a time per path, node-wide. When two peers announce the same new
 * version, the second session waits for the first and then finds the content already
 * here: the file is fetched once. Two versions of one path never race on the disk.
 */
export interface PathLocks {
  readonly withPath: (path: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Hold several paths' locks, taken in sorted order (two batches never wait on each other in a cycle). */
  readonly withPaths: (paths: ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** Path locks, held only while in use: the table is as large as the applies in flight. */
export const makePathLocks = (): PathLocks => {
  const locks = new Map<string, { readonly lock: Effect.Semaphore; users: number }>()
  const withPath = (path: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let entry = locks.get(path)
      if (!entry) locks.set(path, entry = { lock: Effect.unsafeMakeSemaphore(1), users: 0 })
      entry.users++
      const held = entry
      return held.lock.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (--held.users === 0) locks.delete(path)
        }))
      )
    })
  return {
    withPath,
    withPaths: (paths) => (effect) => [...new Set(paths)].sort().reduceRight((inner, path) => withPath(path)(inner), effect)
  }
}
