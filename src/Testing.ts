import type * as Layer from "effect/Layer"
import type { PeerAddress } from "./domain/Config.js"
import type { Discovery } from "./services/Discovery.js"
import type { Identity } from "./services/Identity.js"
import type { RateLimits } from "./services/RateLimiter.js"
import * as TransportMemory from "./layers/TransportMemory.js"
import { nodeLayer } from "./Live.js"

/** One node of a memory network (`memoryNodeLayer`): its host there, its folder and its peers. */
export interface MemoryNodeConfig {
  readonly network: TransportMemory.MemoryNetwork
  /** This node's host name on the memory network. */
  readonly host: string
  readonly root: string
  readonly peers: ReadonlyArray<PeerAddress>
  readonly excludes?: ReadonlyArray<string>
  /** Transfer slots and bandwidth caps (defaults: 4 files at once, no cap). */
  readonly limits?: Partial<RateLimits>
  /** Shared-secret passphrase (as with --secret-file). */
  readonly secret?: Uint8Array
  /** Group (as with --group, lower case). */
  readonly group?: string
  /** How the node finds peers; default: it dials `peers`. */
  readonly discovery?: Layer.Layer<Discovery, never, Identity>
}

/**
 * The services of a node whose network is in memory (real folder, index and watcher):
 * several such nodes sync inside one process, with no sockets.
 */
export const memoryNodeLayer = (config: MemoryNodeConfig) =>
  nodeLayer(TransportMemory.layer(config.network, config.host), { ...config, excludes: config.excludes ?? [] })

export { cutAll, makeNetwork, type MemoryNetwork, partition } from "./layers/TransportMemory.js"
