/**
 * DNS-SD over mDNS for `_dsync._tcp.local`, as pure functions: the records we announce,
 * the queries we send, and what a received packet says about other instances. Packets
 * come from anyone on the link, so reading treats every field as hostile: types are
 * checked, sizes and counts are capped, and anything odd is dropped.
 */
import type { Answer, Question } from "dns-packet"
import * as Either from "effect/Either"
import { parseGroup } from "../domain/Config.js"

/** The service type dsync announces and browses. */
export const SERVICE = "_dsync._tcp.local"
/** DNS-SD service enumeration (RFC 6763, 9): answered so `avahi-browse -a` lists us. */
export const SERVICE_ENUMERATION = "_services._dns-sd._udp.local"
/** Our TXT `v=` value; another one is another protocol. */
export const MDNS_VERSION = "1"
/** TTL of every record we announce: RFC 6762's 120 s for records that name a host. */
export const RECORD_TTL = 120
/** Longest TTL we believe, so a record flooded in once is gone within minutes. */
export const MAX_TTL = 300

/** Largest TXT record we read, in bytes (ours is under 150). */
export const MAX_TXT_BYTES = 400
/** Most strings in a TXT record we read (ours has 3). */
export const MAX_TXT_STRINGS = 16
/** Records read from one packet (answers and additionals); the rest are not looked at. */
export const MAX_RECORDS = 64
/** Instances taken from one packet. */
export const MAX_INSTANCES_PER_PACKET = 16
/** Host names whose addresses are taken from one packet. */
export const MAX_HOSTS_PER_PACKET = 16
/** Addresses taken for one host name. */
export const MAX_ADDRESSES_PER_HOST = 8

const SUFFIX = `.${SERVICE}`

/** This node as announced. */
export interface Self {
  /** Full instance name, `<label>._dsync._tcp.local`. */
  readonly instance: string
  /** The host name our A records are for, unique to this run. */
  readonly host: string
  readonly port: number
  readonly peerId: string
  readonly group?: string
}

/** Our instance label: the node's name made DNS-safe (no dots), then `-` and the short id, so it is unique. */
export const instanceLabel = (name: string, peerId: string): string => {
  const clean = name.replace(/[^A-Za-z0-9 _-]+/g, "-").replace(/^[ -]+|[ -]+$/g, "").slice(0, 40)
  return `${clean === "" ? "dsync" : clean}-${peerId.slice(0, 8)}`
}

/** Who we are on the link: instance `<name>-<short id>`, host `dsync-<16 hex of id>.local`. */
export const selfOf = (options: { readonly name: string; readonly port: number; readonly peerId: string; readonly group?: string }): Self => ({
  instance: `${instanceLabel(options.name, options.peerId)}${SUFFIX}`,
  host: `dsync-${options.peerId.slice(0, 16)}.local`,
  port: options.port,
  peerId: options.peerId,
  ...(options.group === undefined ? {} : { group: options.group })
})

/** Our TXT strings: `id=<public key hex>`, `v=1`, and `g=<group>` when we have one. */
export const txtOf = (self: Self): Array<string> => [
  `id=${self.peerId}`,
  `v=${MDNS_VERSION}`,
  ...(self.group === undefined ? [] : [`g=${self.group}`])
]

/**
 * Everything we announce on one interface: the PTR (shared), SRV, TXT and A records
 * (ours alone: cache-flush set), and the enumeration PTR. `ttl` 0 is the goodbye.
 */
export const recordsOf = (self: Self, ipv4: ReadonlyArray<string>, ttl: number = RECORD_TTL): Array<Answer> => [
  { name: SERVICE, type: "PTR", ttl, data: self.instance },
  { name: SERVICE_ENUMERATION, type: "PTR", ttl, data: SERVICE },
  { name: self.instance, type: "SRV", ttl, flush: true, data: { port: self.port, target: self.host, priority: 0, weight: 0 } },
  { name: self.instance, type: "TXT", ttl, flush: true, data: txtOf(self) },
  ...ipv4.map((address): Answer => ({ name: self.host, type: "A", ttl, flush: true, data: address }))
]

/** The browse query, plus SRV/TXT for instances and A for hosts we still lack or want to check. */
export const browseQuestions = (instances: ReadonlyArray<string>, hosts: ReadonlyArray<string>): Array<Question> => [
  { name: SERVICE, type: "PTR" },
  ...instances.flatMap((name): Array<Question> => [{ name, type: "SRV" }, { name, type: "TXT" }]),
  ...hosts.map((name): Question => ({ name, type: "A" }))
]

// ---------------------------------------------------------------------------
// Reading packets (hostile input)

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null

const listOf = (v: unknown): ReadonlyArray<unknown> => (Array.isArray(v) ? v : [])

const lower = (v: unknown): string | undefined => (typeof v === "string" ? v.toLowerCase() : undefined)

/** Does this query ask for any of our records (and not already know our PTR, RFC 6762 7.1)? */
export const asksForUs = (query: unknown, self: Self): boolean => {
  if (!isRecord(query)) return false
  const instance = self.instance.toLowerCase()
  const known = listOf(query.answers).slice(0, MAX_RECORDS).some((a) =>
    isRecord(a) && lower(a.name) === SERVICE && a.type === "PTR" && lower(a.data) === instance &&
    typeof a.ttl === "number" && a.ttl >= RECORD_TTL / 2
  )
  return listOf(query.questions).slice(0, MAX_RECORDS).some((q) => {
    if (!isRecord(q)) return false
    const name = lower(q.name)
    const type = q.type
    const any = type === "ANY"
    if (name === SERVICE) return (any || type === "PTR") && !known
    if (name === SERVICE_ENUMERATION) return any || type === "PTR"
    if (name === instance) return any || type === "SRV" || type === "TXT"
    if (name === self.host) return any || type === "A"
    return false
  })
}

/** What a peer's TXT record says. */
export interface TxtInfo {
  /** The Ed25519 public key it claims, lowercase hex. */
  readonly peerId: string
  readonly group?: string
}

/** Why a TXT record is not one we use: not ours to read (`malformed`) or another protocol version. */
export interface TxtProblem {
  readonly kind: "malformed" | "version"
  readonly reason: string
}

/** The TXT strings as `key=value` pairs, keys in lower case, the first of each key kept (RFC 6763, 6.4). */
const txtPairs = (strings: ReadonlyArray<Uint8Array>): Map<string, string> => {
  const pairs = new Map<string, string>()
  for (const bytes of strings) {
    const text = Buffer.from(bytes).toString("utf8")
    const eq = text.indexOf("=")
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase()
    if (key !== "" && !pairs.has(key)) pairs.set(key, eq < 0 ? "" : text.slice(eq + 1))
  }
  return pairs
}

/** Reads a TXT record's data (as dns-packet decodes it: a list of byte strings), checking size, id, version and group. */
export const parseTxt = (data: unknown): Either.Either<TxtInfo, TxtProblem> => {
  const malformed = (reason: string) => Either.left<TxtProblem>({ kind: "malformed", reason })
  const strings = Array.isArray(data) ? data : [data]
  if (strings.length > MAX_TXT_STRINGS) return malformed(`TXT has ${strings.length} strings (at most ${MAX_TXT_STRINGS})`)
  if (!strings.every((s): s is Uint8Array => s instanceof Uint8Array)) return malformed("TXT is not a list of strings")
  const size = strings.reduce((n, s) => n + s.length + 1, 0)
  if (size > MAX_TXT_BYTES) return malformed(`TXT of ${size} bytes (at most ${MAX_TXT_BYTES})`)
  const pairs = txtPairs(strings)
  const version = pairs.get("v")
  if (version === undefined) return malformed("no protocol version (v=) in TXT")
  if (version !== MDNS_VERSION) return Either.left({ kind: "version", reason: `protocol version ${version.slice(0, 16)} (we speak ${MDNS_VERSION})` })
  const id = pairs.get("id")
  if (id === undefined) return malformed("no id in TXT")
  if (!/^[0-9a-fA-F]{64}$/.test(id)) return malformed("id in TXT is not 64 hex digits")
  const g = pairs.get("g")
  if (g === undefined) return Either.right({ peerId: id.toLowerCase() })
  const group = parseGroup(g)
  return group === undefined ? malformed("bad group in TXT") : Either.right({ peerId: id.toLowerCase(), group })
}

/** What one packet says about one `_dsync._tcp` instance. */
export interface InstanceSighting {
  /** Full instance name, lower case (the cache key). */
  readonly key: string
  /** Full instance name as received (to query it). */
  readonly name: string
  /** The instance label, for logs. */
  readonly label: string
  /** Smallest TTL among its records here, in seconds (0: a goodbye). */
  readonly ttl: number
  readonly srv?: { readonly port: number; readonly target: string }
  readonly txt?: Either.Either<TxtInfo, TxtProblem>
}

/** The addresses a packet gives for one host name. */
export interface HostAddresses {
  readonly addresses: ReadonlyArray<string>
  readonly ttl: number
}

/** What a response packet says that concerns dsync: instances and host addresses. */
export interface ResponseView {
  readonly instances: ReadonlyArray<InstanceSighting>
  /** By lower-case host name. */
  readonly hosts: ReadonlyMap<string, HostAddresses>
}

const ttlOf = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.min(v, MAX_TTL) : MAX_TTL)

/** An instance name under our service, or undefined (another service, too long a label). */
const instanceName = (name: unknown): { key: string; name: string; label: string } | undefined => {
  if (typeof name !== "string") return undefined
  const key = name.toLowerCase()
  if (!key.endsWith(SUFFIX)) return undefined
  const label = name.slice(0, -SUFFIX.length)
  return label.length === 0 || Buffer.byteLength(label) > 63 ? undefined : { key, name, label }
}

const srvOf = (data: unknown): InstanceSighting["srv"] => {
  if (!isRecord(data)) return undefined
  const { port, target } = data
  const ok = typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535 &&
    typeof target === "string" && target.length > 0 && target.length <= 255
  return ok ? { port, target } : undefined
}

interface Draft {
  key: string
  name: string
  label: string
  ttl: number
  srv?: InstanceSighting["srv"]
  txt?: InstanceSighting["txt"]
}

/** Reads a response: `_dsync._tcp` instances (PTR, SRV, TXT) and A/AAAA records, within the caps. */
export const readResponse = (packet: unknown): ResponseView => {
  const drafts = new Map<string, Draft>()
  const hosts = new Map<string, { addresses: Array<string>; ttl: number }>()
  if (!isRecord(packet)) return { instances: [], hosts }
  const records = [...listOf(packet.answers), ...listOf(packet.additionals)].slice(0, MAX_RECORDS)
  const draftFor = (found: { key: string; name: string; label: string }) => {
    const existing = drafts.get(found.key)
    if (existing !== undefined || drafts.size >= MAX_INSTANCES_PER_PACKET) return existing
    const draft: Draft = { ...found, ttl: MAX_TTL }
    drafts.set(found.key, draft)
    return draft
  }
  for (const r of records) {
    if (!isRecord(r) || typeof r.name !== "string") continue
    const ttl = ttlOf(r.ttl)
    if (r.type === "A" || r.type === "AAAA") {
      if (typeof r.data !== "string") continue
      const host = r.name.toLowerCase()
      const entry = hosts.get(host) ?? (hosts.size < MAX_HOSTS_PER_PACKET ? { addresses: [], ttl } : undefined)
      if (entry === undefined || entry.addresses.length >= MAX_ADDRESSES_PER_HOST) continue
      entry.addresses.push(r.data)
      entry.ttl = Math.min(entry.ttl, ttl)
      hosts.set(host, entry)
      continue
    }
    const found = r.type === "PTR" ? (lower(r.name) === SERVICE ? instanceName(r.data) : undefined) : instanceName(r.name)
    if (found === undefined) continue
    const draft = draftFor(found)
    if (draft === undefined) continue
    if (r.type === "PTR") draft.ttl = Math.min(draft.ttl, ttl)
    else if (r.type === "SRV") {
      draft.ttl = Math.min(draft.ttl, ttl)
      draft.srv ??= srvOf(r.data)
    } else if (r.type === "TXT") draft.txt ??= parseTxt(r.data)
  }
  return { instances: [...drafts.values()], hosts }
}
