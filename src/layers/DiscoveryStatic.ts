import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { PeerAddress } from "../domain/Config.js"
import { Discovery, type DiscoveryApi, make as makeDiscovery } from "../services/Discovery.js"

/** The peers given with `-a` / `peer =`, as a DiscoveryApi: each is found once and never lost. */
export const make = (peers: ReadonlyArray<PeerAddress>): DiscoveryApi =>
  makeDiscovery({ peers: Stream.fromIterable(peers.map((address) => ({ address }))) })

/** The peers given with `-a` / `peer =`: each is dialled (and redialled) for the node's lifetime. */
export const layer = (peers: ReadonlyArray<PeerAddress>) => Layer.succeed(Discovery, make(peers))
