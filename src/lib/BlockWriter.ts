import * as Effect from "effect/Effect"
import * as fs from "node:fs"

/**
 * Bytes of a download's blocks waiting in the thread pool to be written. Past it a block
 * is written on the calling thread, which then waits for the disk: memory stays bounded
 * when the disk is slower than the network. Measured on 1 GiB, both nodes started (three
 * pairs): 4 MiB kept the receiver's peak RSS at 106-110 MiB against 110-115 with 8 MiB, in
 * the same time (5.8-6.3 s against 5.9-6.0); one write at a time was slower.
 */
const QUEUED_BYTES = 4 * 1024 * 1024

/**
 * Writes a download's verified blocks into its part file from the thread pool, so the
 * event loop goes on decrypting and hashing the next ones meanwhile: copying a block into
 * the page cache was 1.6 s of the receiver's 8 s per GiB on its main thread. Each block
 * goes to its own offset, so the order the writes finish in does not matter. A block's
 * buffer must not be reused until written (every block received has its own).
 *
 * The descriptor must stay open until `settled` (a write queued to a closed descriptor
 * could land in a file opened after it under the same number): its owner waits for it
 * before closing.
 */
export class BlockWriter {
  private queued = 0
  private queuedBytes = 0
  private failure: Error | undefined
  private onIdle: Array<() => void> = []

  constructor(private readonly fd: number, private readonly limit = QUEUED_BYTES) {}

  /** Write `data` at `position`; throws if this write, or one before it, failed. */
  write(data: Uint8Array, position: number): void {
    if (this.failure) throw this.failure
    if (this.queuedBytes + data.length > this.limit) {
      if (fs.writeSync(this.fd, data, 0, data.length, position) !== data.length) throw new Error("short write")
      return
    }
    this.queued++
    this.queuedBytes += data.length
    fs.write(this.fd, data, 0, data.length, position, (error, written) => {
      this.queued--
      this.queuedBytes -= data.length
      if (error) this.failure ??= error
      else if (written !== data.length) this.failure ??= new Error("short write")
      if (this.queued === 0) this.onIdle.splice(0).forEach((wake) => wake())
    })
  }

  /** Every write queued so far has finished: fails with the first error, if any. */
  readonly settled: Effect.Effect<void, Error> = Effect.suspend(() => {
    if (this.queued === 0) return this.failure ? Effect.fail(this.failure) : Effect.void
    return Effect.zipRight(
      Effect.async<void>((resume) => {
        const wake = () => resume(Effect.void)
        this.onIdle.push(wake)
        return Effect.sync(() => {
          const at = this.onIdle.indexOf(wake)
          if (at >= 0) this.onIdle.splice(at, 1)
        })
      }),
      this.settled
    )
  })

  /** Wait for what is queued (errors aside): for the descriptor's owner, before it closes it. */
  readonly drained: Effect.Effect<void> = Effect.ignore(this.settled)
}
