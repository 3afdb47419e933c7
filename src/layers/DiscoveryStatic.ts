import { Layer, Stream } from "effect"
import type { PeerAddress } from "../domain/Config.js"
import { Discovery } from "../services/Discovery.js"

/** The peers given with `-a` / `peer =`: each is dialled (and redialled) for the node's lifetime. */
export const layer = (peers: ReadonlyArray<PeerAddress>) =>
  Layer.succeed(Discovery, { peers: Stream.fromIterable(peers.map((address) => ({ address }))) })
