import type { FileRecord } from "../domain/FileRecord.js"
import { compare } from "../domain/VersionVector.js"

/**
 * What one peer sent us, so that we do not send it back. After we apply a peer's record
 * our index holds it under a new sequence, and the index would go back out to that peer:
 * an echo it only has to look at and drop (10,000 of them after a first sync of 10,000
 * files). A record of ours that is exactly what the peer last sent for its path is not
 * sent: the peer holds that version, or a newer one.
 */
export interface Echoes {
  /** The peer sent `record`. */
  readonly heard: (record: FileRecord) => void
  /** Is `ours`, about to be sent, what the peer last sent for its path? Either way that is forgotten. */
  readonly isEcho: (ours: FileRecord) => boolean
}

/**
 * Echoes of one session, remembering at most `limit` paths: past it the oldest are
 * forgotten (their echo is then sent, as without this), so memory stays bounded when a
 * peer's index arrives faster than it is applied.
 */
export const makeEchoes = (limit: number): Echoes => {
  const sent = new Map<string, FileRecord>()
  return {
    heard: (record) => {
      sent.delete(record.path) // the newest last, for the eviction order
      sent.set(record.path, record)
      if (sent.size > limit) sent.delete(sent.keys().next().value!)
    },
    isEcho: (ours) => {
      const theirs = sent.get(ours.path)
      if (theirs === undefined) return false
      sent.delete(ours.path)
      return theirs.deleted === ours.deleted && theirs.hash === ours.hash && compare(theirs.version, ours.version) === "equal"
    }
  }
}
