import { Context, Effect } from "effect"

/** Why a connection was refused before its handshake started. */
export type Refusal = "rate-limited" | "too-many-handshakes"

/**
 * Protects the CPU from handshake floods: a token bucket per source IP and a global
 * cap on handshakes in progress. Over the limit, connections are refused at once
 * (not delayed), so a flood costs us almost nothing.
 */
export interface HandshakeGuardApi {
  /** Run `handshake` if `host` may start one now; otherwise fail with the refusal, without running it. */
  readonly guard: <A, E, R>(host: string, handshake: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Refusal, R>
}

export class HandshakeGuard extends Context.Tag("dsync/HandshakeGuard")<HandshakeGuard, HandshakeGuardApi>() {}

export interface HandshakeGuardConfig {
  /** Tokens a single IP may spend at once. */
  readonly burst: number
  /** Tokens regained per second per IP. */
  readonly refillPerSecond: number
  /** Handshakes in progress across all IPs. */
  readonly maxInProgress: number
}

export const defaultGuardConfig: HandshakeGuardConfig = { burst: 10, refillPerSecond: 2, maxInProgress: 32 }
