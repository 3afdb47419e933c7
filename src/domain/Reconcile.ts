import { type FileRecord, sameContent } from "./FileRecord.js"
import { bump, compare, merge, type VersionVector } from "./VersionVector.js"

/**
 * What to do with a record a peer announced, given ours:
 * - ignore: we already have it (or something newer)
 * - record: same content, only the version differs: store the peer's version, touch nothing
 * - apply: the peer's version replaces ours on disk
 * - conflict: concurrent edits and the peer's side wins: keep ours as a conflict copy, then apply
 * - keep: concurrent edits and our side wins: ours is announced again, and the peer,
 *   seeing it after its own, makes the conflict copy
 */
export type Decision = "ignore" | "record" | "apply" | "conflict" | "keep"

/**
 * Deterministic winner of two concurrent versions, the same on every peer:
 * an edit beats a delete, then the later mtime, then the larger hash, then the larger
 * mode and kind. A strict order: of two different versions exactly one wins on both
 * sides, so two peers never each keep their own (each announcing it again, `keep`).
 */
export const remoteWins = (local: FileRecord, remote: FileRecord): boolean => {
  if (local.deleted !== remote.deleted) return local.deleted
  if (local.mtimeMs !== remote.mtimeMs) return remote.mtimeMs > local.mtimeMs
  if (local.hash !== remote.hash) return remote.hash > local.hash
  if (local.mode !== remote.mode) return remote.mode > local.mode
  return remote.kind > local.kind
}

/** The Decision for a record `remote` announced, given ours for its path (undefined: we have none). */
export const decide = (local: FileRecord | undefined, remote: FileRecord): Decision => {
  if (local === undefined) return remote.deleted ? "record" : "apply"
  switch (compare(remote.version, local.version)) {
    case "older":
    case "equal":
      return "ignore"
    case "newer":
      return sameContent(local, remote) && local.mode === remote.mode ? "record" : "apply"
    case "concurrent":
      if (sameContent(local, remote) && local.mode === remote.mode) return "record"
      if (!remoteWins(local, remote)) return "keep"
      // a deleted or directory loser has no content worth a copy
      return local.deleted || local.kind === "dir" ? "apply" : "conflict"
  }
}

/** `name.sync-conflict-YYYYMMDD-HHMMSS-<replica>.ext`, next to the original. */
export const conflictPath = (relPath: string, when: Date, replicaId: string): string => {
  const slash = relPath.lastIndexOf("/")
  const dir = relPath.slice(0, slash + 1)
  const base = relPath.slice(slash + 1)
  const dot = base.lastIndexOf(".")
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ""]
  const pad = (n: number) => String(n).padStart(2, "0")
  const stamp = `${when.getUTCFullYear()}${pad(when.getUTCMonth() + 1)}${pad(when.getUTCDate())}-` +
    `${pad(when.getUTCHours())}${pad(when.getUTCMinutes())}${pad(when.getUTCSeconds())}`
  return `${dir}${stem}.sync-conflict-${stamp}-${replicaId.slice(0, 7)}${ext}`
}

/**
 * The version of a peer's record once applied here over ours (`local`): both merged;
 * and, where ours was concurrent (a conflict that the peer's side won), one more edit
 * of this replica. The merge alone can equal what another replica makes of the same
 * two versions with another outcome (two concurrent deletions merged there, the edit
 * over a deletion applied here): two contents under one version, which no replica
 * then takes from the other (seen in the convergence fuzz: a file on one node, its
 * deletion on three). The extra edit makes ours newer, so the outcome spreads.
 */
export const appliedVersion = (local: FileRecord | undefined, remote: FileRecord, replica: string): VersionVector => {
  const merged = merge(local?.version ?? {}, remote.version)
  return local !== undefined && compare(local.version, remote.version) === "concurrent" ? bump(merged, replica) : merged
}
