import type { Redacted } from "effect"

/** A peer address given by the user or found by discovery. */
export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export const formatAddress = (a: PeerAddress): string => (a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)

/** The merged settings a node runs with (flags over config file over defaults). */
export interface NodeConfig {
  readonly root: string
  readonly port: number
  readonly host: string
  readonly name: string
  readonly peers: ReadonlyArray<PeerAddress>
  readonly discovery: boolean
  readonly verbose: boolean
  readonly excludes: ReadonlyArray<string>
  readonly maxConcurrentTransfers: number
  /** The shared-secret passphrase (from --secret-file / secret_file), if any; redacted in any output. */
  readonly secret?: Redacted.Redacted<Uint8Array>
}

export const defaults = {
  port: 9000,
  host: "0.0.0.0",
  name: "dsync-instance",
  maxConcurrentTransfers: 4
} as const
