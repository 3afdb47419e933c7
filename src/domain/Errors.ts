import * as Data from "effect/Data"

/** The peer broke the protocol: malformed, oversized or unexpected input. Closes that connection. */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{ readonly reason: string }> {}

/** The connection ended (EOF, reset, idle timeout, or closed by us). */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{ readonly reason: string }> {}

/**
 * The handshake failed; `reason` says why, for the log. `mismatch` is set when the
 * handshake worked but the peer is not one we may sync with (another group, or another
 * key than the one it advertised): dialling it again cannot help.
 */
export class HandshakeError extends Data.TaggedError("HandshakeError")<{
  readonly reason: string
  readonly mismatch?: "group" | "peerId"
}> {}

/** Bad user input (flags, config file): one clear line for the user. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

/** A path from a peer that we refuse to touch. */
export class UnsafePath extends Data.TaggedError("UnsafePath")<{ readonly path: string; readonly reason: string }> {}

/** A local filesystem operation failed. */
export class FsError extends Data.TaggedError("FsError")<{ readonly op: string; readonly path: string; readonly cause: unknown }> {
  override get message() {
    const text = this.cause instanceof Error ? this.cause.message : String(this.cause)
    // Node appends the syscall's own path(s) (", open '/proc/self/fd/23/x'"): ours is the one that means something
    return `${this.op} ${this.path}: ${text.replace(/, \w+ '[^']*'( -> '[^']*')?$/, "")}`
  }
}

/** Listening or dialing failed. */
export class TransportError extends Data.TaggedError("TransportError")<{ readonly message: string }> {}
