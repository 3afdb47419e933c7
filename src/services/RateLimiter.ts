import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { HandshakeGuardApi } from "./HandshakeGuard.js"

/**
 * Every limit the node puts on its peers and itself, in one service: connection
 * attempts and handshakes per address and sessions in total (the HandshakeGuard part),
 * files in flight shared fairly between peers, and the bandwidth caps in each
 * direction, for all peers together.
 *
 * @since 0.2.0
 * @category rate limiting
 */
export interface RateLimiterApi extends HandshakeGuardApi {
  /** Run `effect` (one file download) holding one of the node's transfer slots, on behalf of `peer`. */
  readonly withTransferSlot: (peer: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Wait until `bytes` more may be sent; at once when sending is unlimited. */
  readonly send: (bytes: number) => Effect.Effect<void>
  /** Wait until `bytes` more may be received (the socket is not read meanwhile: TCP slows the sender). */
  readonly receive: (bytes: number) => Effect.Effect<void>
}

/**
 * @since 0.2.0
 * @category rate limiting
 */
export class RateLimiter extends Context.Tag("dsync/RateLimiter")<RateLimiter, RateLimiterApi>() {}

/**
 * @since 0.2.0
 * @category rate limiting
 */
export interface RateLimits {
  /** Files downloaded at once (`max_concurrent_transfers`). */
  readonly maxConcurrentTransfers: number
  /** Bytes per second sent to all peers together; 0: unlimited. */
  readonly maxSendRate: number
  /** Bytes per second received from all peers together; 0: unlimited. */
  readonly maxRecvRate: number
}
