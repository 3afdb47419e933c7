import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { FileIndex } from "../services/FileIndex.js"

/** One received index batch: the highest sequence in it and how many of its records are not yet done. */
export interface ProgressTicket {
  readonly last: number
  open: number
}

/**
 * How far a peer's index has been taken in this session: the highest sequence such that
 * every record the peer numbered up to it is done here (applied, superseded or refused).
 * Records finish out of order (files apply concurrently); the mark moves only over a run
 * of finished batches, so a record still pending, or given up on, keeps it back and is
 * sent again on the next connection.
 */
export interface IndexProgress {
  /** A batch arrived whose records go up to `last`; `count` of them will be finished later. */
  readonly open: (last: number, count: number) => ProgressTicket
  /** One record of the ticket's batch is done. */
  readonly finish: (ticket: ProgressTicket) => void
  /** Every record numbered up to this is done (starts at what the peer was asked to send after). */
  readonly current: () => number
}

/** Progress from `start`: the sequence after which the peer was asked to send. */
export const makeIndexProgress = (start: number): IndexProgress => {
  // batches in arrival order (the peer sends in sequence order); bounded by what a session receives
  const batches: Array<ProgressTicket> = []
  let head = 0
  let mark = start
  const advance = () => {
    while (head < batches.length && batches[head]!.open <= 0) mark = Math.max(mark, batches[head++]!.last)
    if (head > 1024 && head * 2 > batches.length) {
      batches.splice(0, head)
      head = 0
    }
  }
  return {
    open: (last, count) => {
      const ticket: ProgressTicket = { last, open: count }
      batches.push(ticket)
      advance()
      return ticket
    },
    finish: (ticket) => {
      ticket.open--
      advance()
    },
    current: () => mark
  }
}

/**
 * The progress of one peer replica's index in this session, starting where the index
 * says we left it, saved back every second and when the session's scope closes.
 * `run` is the saver: it runs for the session's lifetime.
 */
export const trackPeerProgress = (replicaId: string) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const progress = makeIndexProgress(yield* index.peerProgress(replicaId))
    let saved = progress.current()
    const save = Effect.suspend(() => {
      const now = progress.current()
      if (now === saved) return Effect.void
      saved = now
      return index.setPeerProgress(replicaId, now)
    })
    yield* Effect.addFinalizer(() => save)
    return { progress, run: Effect.forever(Effect.zipRight(Effect.sleep(SAVE_INTERVAL), save)) }
  })

/** How often a session's progress is written to the index (and at its end). */
const SAVE_INTERVAL = Duration.seconds(1)
