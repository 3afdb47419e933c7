import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** Which limit refused a connection. */
export type RefusalReason =
  /** The source address spent its token bucket: it opens connections too fast. */
  | "RateLimited"
  /** Handshakes in progress, all addresses together, are at the cap. */
  | "TooManyHandshakes"
  /** This address already has its share of the handshakes in progress. */
  | "TooManyFromAddress"
  /** Inbound sessions, in total or from this address, are at the cap (checked after the handshake). */
  | "TooManySessions"

/** A connection refused by the guard: before its handshake, or right after it (session caps). */
export class HandshakeRefused extends Data.TaggedError("HandshakeRefused")<{
  readonly reason: RefusalReason
  /** The source address, as the transport reports it. */
  readonly host: string
}> {
  override get message() {
    switch (this.reason) {
      case "RateLimited":
        return `${this.host} opens connections too fast`
      case "TooManyHandshakes":
        return "too many handshakes in progress"
      case "TooManyFromAddress":
        return `too many handshakes in progress from ${this.host}`
      case "TooManySessions":
        return "too many peer sessions"
    }
  }
}

/**
 * Protects the node from connection floods: a token bucket per source address, caps on
 * handshakes in progress (per address and in total), and caps on authenticated inbound
 * sessions (per address and in total). Over a limit, connections are refused at once
 * (never queued), so a flood costs us almost nothing. Each limit is logged (warning) when
 * first hit, and again only after it has been clear for a while.
 */
export interface HandshakeGuardApi {
  /** Run `handshake` if `host` may start one now; otherwise fail with the refusal, without running it. */
  readonly guard: <A, E, R>(host: string, handshake: Effect.Effect<A, E, R>) => Effect.Effect<A, E | HandshakeRefused, R>
  /**
   * Run the session of an authenticated inbound connection from `host` if the session caps
   * allow it, holding a slot until it ends; otherwise fail with `TooManySessions` at once,
   * without running it (the caller closes the connection).
   */
  readonly admit: <A, E, R>(host: string, session: Effect.Effect<A, E, R>) => Effect.Effect<A, E | HandshakeRefused, R>
}

/** The connection-flood guard on its own (layer: `HandshakeGuardTokenBucket`); a node gets it as part of RateLimiter. */
export class HandshakeGuard extends Context.Tag("dsync/HandshakeGuard")<HandshakeGuard, HandshakeGuardApi>() {}

/** The guard's limits; each one applies on its own. */
export interface HandshakeGuardConfig {
  /** Tokens (connection attempts) a single address may spend at once. */
  readonly burst: number
  /** Tokens regained per second per address. */
  readonly refillPerSecond: number
  /** Handshakes in progress across all addresses. */
  readonly maxInProgress: number
  /** Handshakes in progress from one address (well below `maxInProgress`, so a few addresses cannot take every slot). */
  readonly maxInProgressPerHost: number
  /** Authenticated inbound sessions in total. */
  readonly maxSessions: number
  /** Authenticated inbound sessions from one address (several dsync instances may share a host). */
  readonly maxSessionsPerHost: number
}

/** Default limits: bursts of 10 attempts per address, refilled at 2/s; 64 handshakes (3 per address), 64 sessions (8 per address). */
export const defaultGuardConfig: HandshakeGuardConfig = {
  burst: 10,
  refillPerSecond: 2,
  maxInProgress: 64,
  maxInProgressPerHost: 3,
  maxSessions: 64,
  maxSessionsPerHost: 8
}
