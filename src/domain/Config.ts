import type * as Redacted from "effect/Redacted"

/** A peer address given by the user or found by discovery. */
export interface PeerAddress {
  readonly host: string
  readonly port: number
}

/** `host:port`, with an IPv6 host in brackets (`[::1]:9000`). */
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
  /** Bandwidth caps in bytes per second (0: unlimited), for all peers together. */
  readonly maxSendRate: number
  readonly maxRecvRate: number
  /** The shared-secret passphrase (from --secret-file / secret_file), if any; redacted in any output. */
  readonly secret?: Redacted.Redacted<Uint8Array>
  /** Only peers of this group (see parseGroup) sync with this node; absent: every dsync is a peer. */
  readonly group?: string
  /** Network interfaces to announce and browse on (names); absent or empty: every one that is up. */
  readonly interfaces?: ReadonlyArray<string>
}

/** Settings used when neither a flag nor dsync.toml gives them (rate 0: unlimited). */
export const defaults = {
  port: 9000,
  host: "0.0.0.0",
  name: "dsync-instance",
  maxConcurrentTransfers: 4,
  maxSendRate: 0,
  maxRecvRate: 0
} as const

const UNITS: Record<string, number> = {
  "": 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3
}
/** Highest rate accepted: 100 GB/s (more is surely a typo). */
export const MAX_RATE = 100e9

/**
 * A rate as people write it: `20MB`, `512KiB`, `1.5 MB/s`, `0` (unlimited); decimal
 * (kB = 1000) and binary (KiB = 1024) units. Bytes per second, or undefined when the
 * text is not a rate or is above MAX_RATE.
 */
export const parseRate = (text: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)(?:\/s)?\s*$/i.exec(text)
  if (!m) return undefined
  const unit = UNITS[m[2]!.toLowerCase()]
  if (unit === undefined) return undefined
  const rate = Math.round(Number(m[1]) * unit)
  return Number.isFinite(rate) && rate <= MAX_RATE ? rate : undefined
}

/** Longest group name: one DNS label, so it fits a TXT entry and a log line. */
export const MAX_GROUP_LENGTH = 63

const groupRe = new RegExp(`^[a-z0-9][a-z0-9._-]{0,${MAX_GROUP_LENGTH - 1}}$`)

/**
 * A group name as dsync uses it (lower case: `Photos` and `photos` are one group), or
 * undefined when `text` is not one: 1 to 63 letters, digits, `.`, `_` or `-`, starting
 * with a letter or digit.
 */
export const parseGroup = (text: string): string | undefined => {
  const group = text.toLowerCase()
  return groupRe.test(group) ? group : undefined
}

/** What `parseGroup` accepts, for error messages. */
export const GROUP_EXPECTED = `1 to ${MAX_GROUP_LENGTH} letters, digits, ".", "_" or "-", starting with a letter or digit`
