import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"

/** A new file being hashed now: peers may fetch its blocks before its record exists. */
export interface UpcomingFile {
  /** Stands for the content hash in block requests while the hashing lasts (random, never a real hash). */
  readonly token: string
  readonly path: string
  readonly size: number
  /** The hash of its first block (a peer that has it waits for the record, and copies). */
  readonly first: string
}

/**
 * Files new to the index whose hashing is under way, announced to peers so that sending
 * starts before the hashing ends (the scanner announces; sessions tell their peers and
 * serve the blocks). A peer keeps each block it verified by its own hash, and the record
 * that follows says which are right: nothing unverified reaches a target file.
 *
 * @since 0.3.0
 * @category transfer
 */
export interface UpcomingApi {
  /** Run `hashing` (of `file`, a new file) with it announced from its start to its end. */
  readonly announcing: (file: Omit<UpcomingFile, "token">) => <A, E, R>(hashing: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The file a block request's `token` and `path` stand for, while it is being hashed. */
  readonly find: (token: string, path: string) => UpcomingFile | undefined
  /** Subscribe now (for the scope's life): the files announced at this moment, then each new one. */
  readonly subscribe: Effect.Effect<Stream.Stream<UpcomingFile>, never, Scope.Scope>
}

/**
 * @since 0.3.0
 * @category transfer
 */
export class Upcoming extends Context.Tag("dsync/Upcoming")<Upcoming, UpcomingApi>() {}
