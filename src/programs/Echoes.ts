import type { FileRecord } from "../domain/FileRecord.js"
import { compare } from "../domain/VersionVector.js"
import type { LocalRecord } from "../services/FileIndex.js"

/**
 * What one peer sent us, so that we do not send it back. After we apply a peer's record
 * our index holds it under a new sequence, and the index would go back out to that peer:
 * an echo it only has to look at and drop (10,000 of them after a first sync of 10,000
 * files). A record of ours that is exactly what the peer sent for its path is not sent:
 * the peer holds that version, or a newer one.
 */
export interface Echoes {
  /** The session's id: what was put in place from its records is left out of the index read for it (SentBy). */
  readonly session: string
  /** The peer sent `record`. */
  readonly heard: (record: FileRecord) => void
  /** Is `ours`, about to be sent, what the peer sent for its path? Either way that is forgotten. */
  readonly isEcho: (ours: OurRecord) => boolean
}

/** A record of ours as the index gives it: with the session it was put in place from, if any. */
export type OurRecord = FileRecord & Pick<LocalRecord, "sentBy">

/**
 * Was `ours` put in place from a record that came in `session`, and is it still in the
 * version the peer sent? Kept in the index (SentBy), so it holds however large the
 * folder: the first sync of 100,000 files sent ~86,000 records back before.
 */
export const sentBy = (ours: OurRecord, session: string): boolean =>
  ours.sentBy !== undefined && ours.sentBy.session === session && compare(ours.sentBy.version, ours.version) === "equal"

/**
 * Echoes of one session (`session`, its id): what was put in place from its peer's records
 * (sentBy), and the last `limit` paths the peer sent, for a version it sent that we took
 * from another peer (in a mesh, several announce it). Past `limit` the oldest paths are
 * forgotten (such an echo is then sent, and dropped there), so memory stays bounded.
 */
export const makeEchoes = (limit: number, session: string): Echoes => {
  const sent = new Map<string, FileRecord>()
  return {
    session,
    heard: (record) => {
      sent.delete(record.path) // the newest last, for the eviction order
      sent.set(record.path, record)
      if (sent.size > limit) sent.delete(sent.keys().next().value!)
    },
    isEcho: (ours) => {
      const theirs = sent.get(ours.path)
      if (theirs !== undefined) sent.delete(ours.path)
      if (sentBy(ours, session)) return true
      return theirs !== undefined && theirs.deleted === ours.deleted && theirs.hash === ours.hash && compare(theirs.version, ours.version) === "equal"
    }
  }
}
