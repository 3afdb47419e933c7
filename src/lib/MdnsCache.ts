/**
 * The `_dsync._tcp` instances heard on the link, as one small synchronous object: it takes
 * what each packet says (DnsSd.readResponse), keeps what is usable, and reports peers
 * found and lost. Everything in it is bounded: instances in all and per source address,
 * the instances it ignores, and how long anything is believed (MAX_TTL).
 */
import * as Either from "effect/Either"
import { type DiscoveredPeer, PeerChange } from "../services/Discovery.js"
import type { InstanceSighting, ResponseView, TxtInfo } from "./DnsSd.js"
import { addressProblem, dialHost, type NetInterface } from "./NetInterfaces.js"

/** How much the cache holds. */
export interface CacheLimits {
  /** Instances tracked at once (found or still incomplete). */
  readonly instances: number
  /** Of those, from one source address: a flood from one host cannot crowd out the others. */
  readonly perSource: number
  /** Instances remembered as ignored (ours, another group, bad TXT or address) until their TTL ends. */
  readonly ignored: number
}

/** The limits dsync runs with. */
export const defaultLimits: CacheLimits = { instances: 256, perSource: 16, ignored: 256 }

/** An instance not used, and why; the discovery layer decides what to log. */
export interface Rejection {
  readonly kind: "malformed" | "version" | "group" | "address" | "duplicate" | "full"
  readonly label: string
  readonly source: string
  readonly reason: string
  /** The id it claims, when it has a readable one. */
  readonly peerId?: string
}

/** What one packet changed. */
export interface Outcome {
  readonly changes: ReadonlyArray<PeerChange>
  readonly rejections: ReadonlyArray<Rejection>
}

interface Entry {
  readonly key: string
  readonly name: string
  readonly label: string
  readonly source: string
  /** The interface its address was learnt on (the first one it was heard on until then). */
  iface: NetInterface
  expiresAt: number
  srv?: { readonly port: number; readonly target: string }
  txt?: TxtInfo
  host?: string
  /** What was last reported Found, if anything. */
  reported?: { readonly host: string; readonly port: number }
}

/** Whose announcements we ignore (our own id) and which group we are in. */
export interface CacheSelf {
  readonly peerId: string
  readonly group?: string
}

const describeGroup = (group: string | undefined) => (group === undefined ? "no group" : `group ${group}`)

/** The cache of instances heard; see the module comment. */
export const makeMdnsCache = (self: CacheSelf, limits: CacheLimits = defaultLimits) => {
  const entries = new Map<string, Entry>()
  /** Instance key → until when it is ignored. */
  const ignored = new Map<string, number>()
  /** Peer id → key of the instance that claimed it first. */
  const owners = new Map<string, string>()
  const perSource = new Map<string, number>()

  const remove = (key: string, changes: Array<PeerChange>) => {
    const e = entries.get(key)
    if (e === undefined) return
    entries.delete(key)
    const left = (perSource.get(e.source) ?? 1) - 1
    if (left > 0) perSource.set(e.source, left)
    else perSource.delete(e.source)
    if (e.txt !== undefined && owners.get(e.txt.peerId) === key) owners.delete(e.txt.peerId)
    if (e.reported !== undefined && e.txt !== undefined) changes.push(PeerChange.Lost({ peerId: e.txt.peerId }))
  }

  const ignore = (key: string, until: number, changes: Array<PeerChange>) => {
    remove(key, changes)
    ignored.delete(key)
    if (ignored.size >= limits.ignored) ignored.delete(ignored.keys().next().value!)
    ignored.set(key, until)
  }

  /** The entry for a sighting, made if there is room; a Rejection when there is none. */
  const entryFor = (s: InstanceSighting, iface: NetInterface, source: string): Entry | Rejection => {
    const existing = entries.get(s.key)
    if (existing !== undefined) return existing
    const full = entries.size >= limits.instances
      ? `more than ${limits.instances} instances`
      : (perSource.get(source) ?? 0) >= limits.perSource
      ? `more than ${limits.perSource} instances from ${source}`
      : undefined
    if (full !== undefined) return { kind: "full", label: s.label, source, reason: full }
    const e: Entry = { key: s.key, name: s.name, label: s.label, source, iface, expiresAt: 0 }
    entries.set(s.key, e)
    perSource.set(source, (perSource.get(source) ?? 0) + 1)
    return e
  }

  /** Takes the TXT; a Rejection when the instance is not one to use. */
  const takeTxt = (e: Entry, txt: TxtInfo, changes: Array<PeerChange>): Rejection | "own" | undefined => {
    const reject = (kind: Rejection["kind"], reason: string): Rejection => ({ kind, label: e.label, source: e.source, reason, peerId: txt.peerId })
    if (txt.peerId === self.peerId) return "own"
    if (txt.group !== self.group) {
      return reject("group", `it is in ${describeGroup(txt.group)}, we are in ${describeGroup(self.group)}`)
    }
    const owner = owners.get(txt.peerId)
    if (owner !== undefined && owner !== e.key && entries.has(owner)) return reject("duplicate", "its id is already announced by another instance")
    if (e.txt !== undefined && e.txt.peerId !== txt.peerId) {
      // Same instance, new key: the old peer is gone.
      if (e.reported !== undefined) changes.push(PeerChange.Lost({ peerId: e.txt.peerId }))
      if (owners.get(e.txt.peerId) === e.key) owners.delete(e.txt.peerId)
      e.reported = undefined
    }
    e.txt = txt
    owners.set(txt.peerId, e.key)
    return undefined
  }

  /** Picks the address to dial among those given for the SRV target; a Rejection when none will do. */
  const takeAddresses = (e: Entry, iface: NetInterface, addresses: ReadonlyArray<string>): Rejection | undefined => {
    // An address is learnt on one interface; the same instance heard on another only stays alive.
    if (e.host !== undefined && iface !== e.iface) return undefined
    const usable = addresses.filter((a) => addressProblem(iface, a) === undefined)
    const best = usable.find((a) => !a.includes(":")) ?? usable[0]
    if (best !== undefined) {
      e.iface = iface
      e.host = dialHost(iface, best)
      return undefined
    }
    if (e.host !== undefined) return undefined
    const first = addresses[0]!
    return {
      kind: "address",
      label: e.label,
      source: e.source,
      reason: `address ${first} is ${addressProblem(iface, first)}`,
      ...(e.txt ? { peerId: e.txt.peerId } : {})
    }
  }

  /** A Found when the entry is complete and says something new. */
  const report = (e: Entry, changes: Array<PeerChange>) => {
    if (e.txt === undefined || e.srv === undefined || e.host === undefined) return
    if (e.reported?.host === e.host && e.reported.port === e.srv.port) return
    e.reported = { host: e.host, port: e.srv.port }
    const peer: DiscoveredPeer = { address: { host: e.host, port: e.srv.port }, peerId: e.txt.peerId, name: e.label }
    changes.push(PeerChange.Found({ peer }))
  }

  /**
   * Takes what a response says, heard on `iface` from `source` at `now` (ms): new and
   * changed peers come back as Found, goodbyes as Lost, unusable instances as rejections.
   */
  const apply = (view: ResponseView, iface: NetInterface, source: string, now: number): Outcome => {
    const changes: Array<PeerChange> = []
    const rejections: Array<Rejection> = []
    const reject = (key: string, r: Rejection, ttl: number) => {
      ignore(key, now + ttl * 1000, changes)
      rejections.push(r)
    }
    for (const s of view.instances) {
      if (s.ttl === 0) {
        remove(s.key, changes)
        continue
      }
      if ((ignored.get(s.key) ?? 0) > now) continue
      const e = entryFor(s, iface, source)
      if (!("key" in e)) {
        rejections.push(e)
        continue
      }
      e.expiresAt = Math.max(e.expiresAt, now + s.ttl * 1000)
      if (s.srv !== undefined) {
        if (e.srv?.target !== s.srv.target) e.host = undefined
        e.srv = s.srv
      }
      if (s.txt !== undefined) {
        if (Either.isLeft(s.txt)) {
          reject(s.key, { ...s.txt.left, label: s.label, source }, s.ttl)
          continue
        }
        const problem = takeTxt(e, s.txt.right, changes)
        if (problem === "own") ignore(s.key, now + s.ttl * 1000, changes)
        else if (problem !== undefined) reject(s.key, problem, s.ttl)
        if (problem !== undefined) continue
      }
    }
    // Addresses, whether they came with the instance or on their own (an answer to our A query).
    for (const e of entries.values()) {
      const given = e.srv === undefined ? undefined : view.hosts.get(e.srv.target.toLowerCase())
      if (given === undefined || given.addresses.length === 0) continue
      const problem = takeAddresses(e, iface, given.addresses)
      if (problem !== undefined) reject(e.key, problem, Math.max(1, Math.round((e.expiresAt - now) / 1000)))
    }
    for (const e of entries.values()) report(e, changes)
    return { changes, rejections }
  }

  /** Drops what has outlived its TTL: peers no longer answering are Lost. */
  const expire = (now: number): ReadonlyArray<PeerChange> => {
    const changes: Array<PeerChange> = []
    for (const e of [...entries.values()]) if (e.expiresAt <= now) remove(e.key, changes)
    for (const [key, until] of ignored) if (until <= now) ignored.delete(key)
    return changes
  }

  /** The peers found and not lost, as Found would report them. */
  const peers = (): ReadonlyArray<DiscoveredPeer> =>
    [...entries.values()].flatMap((e) =>
      e.reported !== undefined && e.txt !== undefined
        ? [{ address: { host: e.reported.host, port: e.reported.port }, peerId: e.txt.peerId, name: e.label }]
        : []
    )

  /** Names worth asking about: instances lacking SRV or TXT, hosts lacking an address (at most `max` each). */
  const incomplete = (max: number) => {
    const instances: Array<string> = []
    const hosts: Array<string> = []
    for (const e of entries.values()) {
      if ((e.srv === undefined || e.txt === undefined) && instances.length < max) instances.push(e.name)
      else if (e.srv !== undefined && e.host === undefined && hosts.length < max) hosts.push(e.srv.target)
    }
    return { instances, hosts }
  }

  /** The instance name a peer id was found under, to ask about it again. */
  const nameOf = (peerId: string): string | undefined => {
    const key = owners.get(peerId)
    return key === undefined ? undefined : entries.get(key)?.name
  }

  return { apply, expire, peers, incomplete, nameOf, size: () => entries.size, ignoredCount: () => ignored.size }
}

/** The cache's interface, from makeMdnsCache. */
export type MdnsCache = ReturnType<typeof makeMdnsCache>
