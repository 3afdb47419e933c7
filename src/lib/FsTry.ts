import * as Effect from "effect/Effect"
import { FsError } from "../domain/Errors.js"

/** Run a filesystem promise; a rejection becomes an FsError naming the operation and path. */
export const fsTry = <A>(op: string, path: string, f: () => Promise<A>): Effect.Effect<A, FsError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new FsError({ op, path, cause }) })

/** Run a synchronous filesystem call; a throw becomes an FsError naming the operation and path. */
export const fsSync = <A>(op: string, path: string, f: () => A): Effect.Effect<A, FsError> =>
  Effect.try({ try: f, catch: (cause) => new FsError({ op, path, cause }) })
