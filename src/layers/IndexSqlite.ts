import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Effect, Layer, Option, Stream, SubscriptionRef } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync } from "node:fs"
import * as path from "node:path"
import { FsError } from "../domain/Errors.js"
import type { VersionVector } from "../domain/VersionVector.js"
import { type BlockLocation, FileIndex, type FileIndexApi, type LocalRecord, type NewRecord } from "../services/FileIndex.js"

interface FileRow {
  readonly path: string
  readonly kind: string
  readonly size: number
  readonly mtime_ms: number
  readonly mode: number
  readonly hash: string
  readonly target: string | null
  readonly block_size: number
  readonly blocks: string
  readonly version: string
  readonly deleted: number
  readonly sequence: number
  readonly inode: number
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ms REAL NOT NULL,
    mode INTEGER NOT NULL, hash TEXT NOT NULL, target TEXT, block_size INTEGER NOT NULL,
    blocks TEXT NOT NULL, version TEXT NOT NULL, deleted INTEGER NOT NULL,
    sequence INTEGER NOT NULL UNIQUE, inode INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS blocks (hash TEXT NOT NULL, path TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS blocks_by_hash ON blocks(hash)`,
  `CREATE INDEX IF NOT EXISTS blocks_by_path ON blocks(path)`
]

const RECENT_RECORDS = 256
/** Hashes per `IN (...)` lookup: well under SQLite's bound-parameter limit. */
const LOOKUP_CHUNK = 500

const fromRow = (row: FileRow): LocalRecord => ({
  path: row.path,
  kind: row.kind as LocalRecord["kind"],
  size: row.size,
  mtimeMs: row.mtime_ms,
  mode: row.mode,
  hash: row.hash,
  ...(row.target === null ? {} : { target: row.target }),
  blockSize: row.block_size,
  blocks: JSON.parse(row.blocks) as Array<string>,
  version: JSON.parse(row.version) as VersionVector,
  deleted: row.deleted !== 0,
  sequence: row.sequence,
  inode: row.inode
})

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const statement of SCHEMA) yield* sql.unsafe(statement)

  const existingId = yield* sql<{ value: string }>`SELECT value FROM meta WHERE key = 'replica_id'`
  const replicaId = existingId[0]?.value ?? randomBytes(8).toString("hex")
  if (existingId.length === 0) yield* sql`INSERT INTO meta (key, value) VALUES ('replica_id', ${replicaId})`

  const [{ max }] = yield* sql<{ max: number | null }>`SELECT MAX(sequence) AS max FROM files`
  const sequence = yield* SubscriptionRef.make(max ?? 0)
  // Writes are serialised so sequence numbers are committed in order: a reader of
  // "since N" can never miss a record that commits later with a smaller number.
  const writeLock = yield* Effect.makeSemaphore(1)

  const put = (record: NewRecord) =>
    writeLock.withPermits(1)(
      Effect.gen(function*() {
        const next = (yield* SubscriptionRef.get(sequence)) + 1
        const stored: LocalRecord = { ...record, sequence: next }
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT OR REPLACE INTO files ${
            sql.insert({
              path: stored.path,
              kind: stored.kind,
              size: stored.size,
              mtime_ms: stored.mtimeMs,
              mode: stored.mode,
              hash: stored.hash,
              target: stored.target ?? null,
              block_size: stored.blockSize,
              blocks: JSON.stringify(stored.blocks),
              version: JSON.stringify(stored.version),
              deleted: stored.deleted ? 1 : 0,
              sequence: stored.sequence,
              inode: stored.inode
            })
          }`
          yield* sql`DELETE FROM blocks WHERE path = ${stored.path}`
          if (!stored.deleted && stored.kind === "file" && stored.blocks.length > 0) {
            yield* sql`INSERT INTO blocks ${
              sql.insert(stored.blocks.map((hash, i) => ({
                hash,
                path: stored.path,
                offset: i * stored.blockSize,
                size: Math.min(stored.blockSize, stored.size - i * stored.blockSize)
              })))
            }`
          }
        }))
        remember(stored.path, Option.some(stored))
        yield* SubscriptionRef.set(sequence, next)
        return stored
      })
    ).pipe(Effect.orDie)

  // Serving a file's blocks looks its record up once per block: keep recent ones parsed.
  const recent = new Map<string, Option.Option<LocalRecord>>()
  const remember = (p: string, record: Option.Option<LocalRecord>) => {
    recent.delete(p)
    recent.set(p, record)
    if (recent.size > RECENT_RECORDS) recent.delete(recent.keys().next().value!)
  }

  const api: FileIndexApi = {
    replicaId,
    get: (p) =>
      Effect.suspend(() => {
        const cached = recent.get(p)
        if (cached) return Effect.succeed(cached)
        return sql<FileRow>`SELECT * FROM files WHERE path = ${p}`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
          Effect.tap((record) => remember(p, record)),
          Effect.orDie
        )
      }),
    put,
    touch: (p, mtimeMs, inode) =>
      sql`UPDATE files SET mtime_ms = ${mtimeMs}, inode = ${inode} WHERE path = ${p}`.pipe(
        Effect.zipRight(Effect.sync(() => recent.delete(p))),
        Effect.asVoid,
        Effect.orDie
      ),
    since: (after, limit) =>
      sql<FileRow>`SELECT * FROM files WHERE sequence > ${after} ORDER BY sequence LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(fromRow)),
        Effect.orDie
      ),
    live: sql<FileRow>`SELECT * FROM files WHERE deleted = 0 ORDER BY path`.pipe(
      Effect.map((rows) => rows.map(fromRow)),
      Effect.orDie
    ),
    relocateBlocks: (from, to) =>
      sql`UPDATE blocks SET path = ${to} WHERE path = ${from}`.pipe(Effect.asVoid, Effect.orDie),
    forgetBlocksUnder: (prefix) =>
      sql`DELETE FROM blocks WHERE substr(path, 1, ${prefix.length}) = ${prefix}`.pipe(Effect.asVoid, Effect.orDie),
    findBlocks: (hashes) =>
      Effect.gen(function*() {
        const found = new Map<string, BlockLocation>()
        const unique = [...new Set(hashes)]
        for (let i = 0; i < unique.length; i += LOOKUP_CHUNK) {
          const rows = yield* sql<{ hash: string; path: string; offset: number; size: number }>`
            SELECT hash, path, offset, size FROM blocks WHERE ${sql.in("hash", unique.slice(i, i + LOOKUP_CHUNK))}`
          for (const { hash, ...location } of rows) found.set(hash, location)
        }
        return found as ReadonlyMap<string, BlockLocation>
      }).pipe(Effect.orDie),
    sequence: SubscriptionRef.get(sequence),
    sequenceChanges: sequence.changes.pipe(Stream.changes)
  }
  return api
})

/** The folder index in `<root>/.dsync/index.db` (SQLite, WAL). */
export const layer = (root: string): Layer.Layer<FileIndex, FsError> => {
  const dir = path.join(root, ".dsync")
  const sqlite = Layer.unwrapEffect(
    Effect.try({
      try: () => mkdirSync(dir, { recursive: true }),
      catch: (cause) => new FsError({ op: "create", path: dir, cause })
    }).pipe(Effect.as(SqliteClient.layer({ filename: path.join(dir, "index.db") })))
  ).pipe(
    Layer.provide(Reactivity.layer),
    Layer.catchAll((e) =>
      Layer.fail(e._tag === "FsError" ? e : new FsError({ op: "open index", path: dir, cause: e }))
    )
  )
  return Layer.effect(FileIndex, Effect.orDie(make)).pipe(Layer.provide(sqlite))
}
