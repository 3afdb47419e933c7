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
  /** The peer sent `record`. */
  readonly heard: (record: FileRecord) => void
  /** Is `ours`, about to be sent, what the peer sent for its path? Either way that is forgotten. */
  readonly isEcho: (ours: OurRecord) => boolean
}

/** A record of ours as the index gives it: with the replica it was put in place from, if any. */
export type OurRecord = FileRecord & Pick<LocalRecord, "sentBy">

/**
 * Was `ours` put in place from `replica`'s record, and is it still in the version that
 * replica sent? Kept in the index (SentBy), so it holds however large the folder: the
 * first sync of 100,000 files sent ~86,000 records back before.
 */
export const sentBy = (ours: OurRecord, replica: string): boolean =>
  ours.sentBy !== undefined && ours.sentBy.replica === replica && compare(ours.sentBy.version, ours.version) === "equal"

/**
 * Echoes of one session with `replica`: what was put in place from its records (sentBy),
 * and the last `limit` paths it sent, for a version it sent that we took from another
 * peer (in a mesh, several announce it). Past `limit` the oldest paths are forgotten
 * (such an echo is then sent, and dropped there), so memory stays bounded.
 */
export const makeEchoes = (limit: number, replica: string): Echoes => {
  const sent = new Map<string, FileRecord>()
  return {
    heard: (record) => {
      sent.delete(record.path) // the newest last, for the eviction order
      sent.set(record.path, record)
      if (sent.size > limit) sent.delete(sent.keys().next().value!)
    },
    isEcho: (ours) => {
      const theirs = sent.get(ours.path)
      if (theirs !== undefined) sent.delete(ours.path)
      if (sentBy(ours, replica)) return true
      return theirs !== undefined && theirs.deleted === ours.deleted && theirs.hash === ours.hash && compare(theirs.version, ours.version) === "equal"
    }
  }
}
