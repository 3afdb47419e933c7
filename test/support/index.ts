import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MIN_BLOCK_SIZE } from "../../src/domain/FileRecord.js"
import * as IndexSqlite from "../../src/layers/IndexSqlite.js"
import type { FileIndex, NewRecord } from "../../src/services/FileIndex.js"

/** Run `effect` on a fresh SQLite index of folder `root` (closed when it ends). */
export const withIndex = <A, E>(root: string, effect: Effect.Effect<A, E, FileIndex>) =>
  effect.pipe(Effect.provide(Layer.fresh(IndexSqlite.layer(root))))

/** A folder's record to store (any field may be overridden). */
export const dirRecord = (p: string, extra: Partial<NewRecord> = {}): NewRecord => ({
  path: p, kind: "dir", size: 0, mtimeMs: 1, mode: 0o755, hash: "", blockSize: MIN_BLOCK_SIZE, blocks: [], version: { "0000000000000001": 1 },
  deleted: false, inode: 1, ...extra
})
