import { Effect } from "effect"
import { FsError } from "../domain/Errors.js"

/** Run a filesystem promise; a rejection becomes an FsError naming the operation and path. */
export const fsTry = <A>(op: string, path: string, f: () => Promise<A>): Effect.Effect<A, FsError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new FsError({ op, path, cause }) })
