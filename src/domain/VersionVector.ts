import * as Schema from "effect/Schema"

/**
 * Highest counter accepted from a peer: far below 2^53, so a bump can never lose
 * precision, and far above what edits can reach (one per edit, per replica).
 */
export const MAX_COUNTER = 2 ** 40
/** Replicas one file's vector may name: only replicas that edited the file appear in it. */
export const MAX_VECTOR_ENTRIES = 64

/** Per-file version vector: replica id -> counter of edits made on that replica. */
export const VersionVector = Schema.Record({
  key: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{16}$/)),
  value: Schema.Int.pipe(Schema.between(1, MAX_COUNTER))
}).pipe(Schema.filter((v) => Object.keys(v).length <= MAX_VECTOR_ENTRIES || `more than ${MAX_VECTOR_ENTRIES} replicas in a version vector`))
/** A version vector as decoded by its schema. */
export type VersionVector = typeof VersionVector.Type

/** How one version vector relates to another (see `compare`). */
export type Ordering = "equal" | "newer" | "older" | "concurrent"

/** How `a` relates to `b`: newer means `a` has seen everything `b` has, and more. */
export const compare = (a: VersionVector, b: VersionVector): Ordering => {
  // a's keys, then b's that a lacks (a key's counter is at least 1): no set of keys is
  // built, as this runs for every record a peer sends, several times
  let aAhead = false
  let bAhead = false
  for (const key in a) {
    const x = a[key]!
    const y = b[key] ?? 0
    if (x > y) aAhead = true
    else if (y > x) bAhead = true
  }
  for (const key in b) if (!(key in a) && b[key]! > 0) bAhead = true
  if (aAhead && bAhead) return "concurrent"
  if (aAhead) return "newer"
  if (bAhead) return "older"
  return "equal"
}

/** The entry-wise maximum: a vector that has seen everything either one has. */
export const merge = (a: VersionVector, b: VersionVector): VersionVector => {
  const out: Record<string, number> = { ...a }
  for (const [key, value] of Object.entries(b)) out[key] = Math.max(out[key] ?? 0, value)
  return out
}

/**
 * The vector after `replica` made one more edit on top of everything in `v`. Only this
 * replica bumps its own counter, and peers may not raise it (see `checkRecord`), so it
 * grows by one per local edit and stays far below MAX_COUNTER.
 */
export const bump = (v: VersionVector, replica: string): VersionVector => ({ ...v, [replica]: (v[replica] ?? 0) + 1 })
