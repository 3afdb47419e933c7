/**
 * Discovery over mDNS / DNS-SD (`multicast-dns`): announce `_dsync._tcp.local` on each
 * chosen interface, answer queries for it, browse for other instances, and say goodbye
 * (TTL 0) when the scope closes.
 *
 * One multicast-dns socket per interface (it takes one interface address), each bound to
 * 0.0.0.0:5353. Linux hands every such socket the packets of all joined interfaces, so a
 * packet is taken by the socket whose interface has the sender on its subnet (RFC 6762,
 * 11: mDNS answers come from the link); its addresses must be on that subnet too.
 * Packets are read in the socket's callback into small bounded views (DnsSd) and queued
 * (a sliding queue: a flood drops packets, never grows memory); one fiber applies them to
 * the instance cache (MdnsCache) and publishes the peers found and lost.
 *
 * Not done, on purpose: probing before announcing (RFC 6762, 8.1) — our names carry 32
 * random bits of the node's fresh key, so they do not collide; and an IPv6 socket — the
 * node listens on IPv4 only, so we announce and dial IPv4.
 */
import type { Answer, Question } from "dns-packet"
import { Clock, Duration, Effect, Layer, Option, PubSub, Queue, Stream } from "effect"
import makeMdns from "multicast-dns"
import { ConfigError } from "../domain/Errors.js"
import { asksForUs, browseQuestions, readResponse, recordsOf, type ResponseView, type Self, selfOf } from "../lib/DnsSd.js"
import { type CacheLimits, defaultLimits, makeMdnsCache, type Rejection } from "../lib/MdnsCache.js"
import { chooseInterfaces, describeInterface, type NetInterface, onLink } from "../lib/NetInterfaces.js"
import { printable } from "../lib/Printable.js"
import { Discovery, type DiscoveryApi, make as makeDiscovery, PeerChange } from "../services/Discovery.js"
import { Identity, shortId } from "../services/Identity.js"

/** Settings of the mDNS discovery. */
export interface DiscoveryMdnsOptions {
  /** Our name; the instance is announced as `<name>-<short id>`. */
  readonly name: string
  /** The TCP port the node listens on (announced in SRV; not 0). */
  readonly port: number
  /** Our group: announced in TXT; instances of another group (or none) are skipped. */
  readonly group?: string
  /** Interfaces to use, by name; empty or absent: every non-loopback interface that is up. */
  readonly interfaces?: ReadonlyArray<string>
  /** mDNS UDP port and group address (defaults 5353, 224.0.0.251); tests may change them. */
  readonly mdnsPort?: number
  readonly mdnsAddress?: string
  /** Cache bounds (defaultLimits unless told). */
  readonly limits?: CacheLimits
}

/** Browse queries: at start, then 1 s, 2 s, 4 s ... apart, at most a minute; 1 s again when asked. */
const FIRST_QUERY_GAP = Duration.seconds(1)
const MAX_QUERY_GAP = Duration.minutes(1)
/** Least time between two multicasts of our records on one interface (RFC 6762, 6.2). */
const RESPONSE_GAP = Duration.seconds(1)
/** Packets waiting to be applied; past it the oldest go. */
const INBOX = 64
/** Names asked about in one query, beyond the browse question. */
const QUESTIONS = 8
/** A rejection of one kind is logged at most this often (with the count of those not logged). */
const LOG_EVERY = Duration.minutes(1)
/** Peers (ids) whose other group or version we have logged: each is told once. */
const TOLD_ONCE = 1024
/** How long a socket may take to bind, and the goodbye to go out. */
const SOCKET_TIMEOUT = Duration.seconds(2)

/** Something a socket heard, for the fiber that applies it. */
type Incoming =
  | { readonly _tag: "Heard"; readonly iface: NetInterface; readonly source: string; readonly view: ResponseView }
  | { readonly _tag: "Note"; readonly kind: string; readonly text: string }

/** One interface's socket, and the signal that a query asked for us there. */
interface Link {
  readonly iface: NetInterface
  readonly mdns: makeMdns.MulticastDNS
  readonly asked: Queue.Queue<void>
}

// ---- sockets ----

/** Multicasts a response with `answers` on the link. */
const respondWith = (link: Link, answers: Array<Answer>) =>
  Effect.async<void, Error>((resume) => link.mdns.respond({ answers }, (e) => resume(e ? Effect.fail(e) : Effect.void)))

/** Multicasts a query with `questions` on the link. */
const queryWith = (link: Link, questions: Array<Question>) =>
  Effect.async<void, Error>((resume) => link.mdns.query({ questions }, (e) => resume(e ? Effect.fail(e) : Effect.void)))

/** Opens the socket of one interface and feeds what it hears to `inbox`; None when it cannot bind. */
const openSocket = (iface: NetInterface, self: Self, inbox: Queue.Queue<Incoming>, options: DiscoveryMdnsOptions) =>
  Effect.gen(function*() {
    const asked = yield* Queue.sliding<void>(1)
    const note = (kind: string, text: string) => void Queue.unsafeOffer(inbox, { _tag: "Note", kind, text })
    const mdns = makeMdns({
      interface: iface.ipv4[0]!.address,
      bind: "0.0.0.0",
      port: options.mdnsPort ?? 5353,
      ...(options.mdnsAddress === undefined ? {} : { ip: options.mdnsAddress }),
      reuseAddr: true,
      loopback: true
    })
    // Without these listeners an 'error' event would throw: a bad packet must never stop the node.
    mdns.on("warning", (e: Error) => note("warning", `${iface.name}: ${e.message}`))
    mdns.on("response", (packet, rinfo) => {
      if (!onLink(iface, rinfo.address)) return
      const view = readResponse(packet)
      if (view.instances.length > 0 || view.hosts.size > 0) Queue.unsafeOffer(inbox, { _tag: "Heard", iface, source: rinfo.address, view })
    })
    mdns.on("query", (packet, rinfo) => {
      if (onLink(iface, rinfo.address) && asksForUs(packet, self)) Queue.unsafeOffer(asked, undefined)
    })
    const ready = yield* Effect.async<boolean>((resume) => {
      mdns.once("ready", () => resume(Effect.succeed(true)))
      mdns.on("error", (e: Error) => {
        note("error", `${iface.name}: ${e.message}`)
        resume(Effect.succeed(false))
      })
    }).pipe(Effect.timeoutOption(SOCKET_TIMEOUT), Effect.map(Option.getOrElse(() => false)))
    const link: Link = { iface, mdns, asked }
    if (!ready) {
      yield* close(link)
      yield* Effect.logWarning(`mDNS: cannot use ${iface.name} (UDP port ${options.mdnsPort ?? 5353}): skipping it`)
      return Option.none<Link>()
    }
    return Option.some(link)
  })

const close = (link: Link) => Effect.async<void>((resume) => link.mdns.destroy(() => resume(Effect.void)))

/** Our records with TTL 0 (so peers drop us at once), then the socket closes. */
const goodbye = (link: Link, self: Self) =>
  respondWith(link, recordsOf(self, addressesOf(link), 0)).pipe(
    Effect.timeout(SOCKET_TIMEOUT),
    Effect.ignore,
    Effect.zipRight(close(link).pipe(Effect.timeout(SOCKET_TIMEOUT), Effect.ignore))
  )

const addressesOf = (link: Link) => link.iface.ipv4.map((a) => a.address)

// ---- logging, bounded ----

/** Logs each kind of rejection at most once per LOG_EVERY, saying how many were not logged. */
const makeThrottle = () => {
  const last = new Map<string, { at: number; skipped: number }>()
  return (kind: string, now: number, line: (skipped: number) => string) => {
    const seen = last.get(kind)
    if (seen !== undefined && now - seen.at < Duration.toMillis(LOG_EVERY)) {
      seen.skipped++
      return Effect.void
    }
    last.set(kind, { at: now, skipped: 0 })
    return Effect.logWarning(line(seen?.skipped ?? 0))
  }
}

/** A set that forgets everything when full: "told once" for a bounded number of peers. */
const makeOnce = () => {
  const told = new Set<string>()
  return (key: string) => {
    if (told.has(key)) return false
    if (told.size >= TOLD_ONCE) told.clear()
    told.add(key)
    return true
  }
}

const who = (r: Rejection) => `"${printable(r.label)}"${r.peerId ? ` (${shortId(r.peerId)})` : ""} from ${r.source}`

// ---- the service ----

/**
 * mDNS discovery for this node (whose id comes from Identity): sockets open, announcing
 * and browsing, until the scope closes (then goodbye). Fails with a ConfigError when a
 * named interface does not exist.
 */
export const make = (options: DiscoveryMdnsOptions) =>
  Effect.gen(function*() {
    const identity = yield* Identity
    const chosen = yield* Effect.mapError(chooseInterfaces(options.interfaces ?? []), (message) => new ConfigError({ message }))
    const self = selfOf({ name: options.name, port: options.port, peerId: identity.peerId, ...(options.group === undefined ? {} : { group: options.group }) })
    const cache = makeMdnsCache({ peerId: identity.peerId, ...(options.group === undefined ? {} : { group: options.group }) }, options.limits ?? defaultLimits)
    const hub = yield* Effect.acquireRelease(PubSub.sliding<PeerChange>(1024), PubSub.shutdown)
    const inbox = yield* Effect.acquireRelease(Queue.sliding<Incoming>(INBOX), Queue.shutdown)
    const requery = yield* Queue.sliding<void>(1)
    /** Instances the node lost (peerLost): asked about in the next query. */
    const toAsk = new Set<string>()

    if (chosen.length === 0) {
      yield* Effect.logWarning("mDNS: no network interface is up (other than loopback): discovering no peers")
    } else {
      yield* Effect.logInfo(`mDNS discovery on ${chosen.map(describeInterface).join(", ")} as "${printable(self.instance)}"`)
    }
    const opened = yield* Effect.forEach(chosen, (iface) =>
      Effect.acquireRelease(openSocket(iface, self, inbox, options), (link) =>
        Option.match(link, { onNone: () => Effect.void, onSome: (l) => goodbye(l, self) })))
    const links = opened.flatMap(Option.toArray)

    const throttle = makeThrottle()
    const once = makeOnce()
    const logRejection = (r: Rejection, now: number) => {
      if (r.kind === "group" || r.kind === "version") {
        return once(`${r.kind} ${r.peerId ?? r.label}`) ? Effect.logInfo(`mDNS: skipping dsync ${who(r)}: ${printable(r.reason)}`) : Effect.void
      }
      return throttle(r.kind, now, (skipped) =>
        `mDNS: ignoring ${who(r)}: ${printable(r.reason)}${skipped > 0 ? ` (and ${skipped} more like it in the last minute)` : ""}`)
    }
    const logChange = (change: PeerChange) =>
      PeerChange.$match(change, {
        Found: ({ peer }) => Effect.logInfo(`mDNS: found "${printable(peer.name ?? "")}" (${shortId(peer.peerId ?? "")}) at ${peer.address.host}:${peer.address.port}`),
        Lost: ({ peerId }) => Effect.logInfo(`mDNS: lost ${shortId(peerId)}`)
      })
    const publish = (changes: ReadonlyArray<PeerChange>) =>
      Effect.zipRight(PubSub.publishAll(hub, changes), Effect.forEach(changes, logChange, { discard: true }))

    const handle = (item: Incoming) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (item._tag === "Note") return yield* throttle(item.kind, now, (skipped) => `mDNS: ${printable(item.text)}${skipped > 0 ? ` (and ${skipped} more)` : ""}`)
        const outcome = cache.apply(item.view, item.iface, item.source, now)
        yield* publish(outcome.changes)
        yield* Effect.forEach(outcome.rejections, (r) => logRejection(r, now), { discard: true })
        const missing = cache.incomplete(1)
        if (missing.instances.length + missing.hosts.length > 0) yield* Queue.offer(requery, undefined)
      })

    const queryAll = Effect.suspend(() => {
      const missing = cache.incomplete(QUESTIONS)
      const asking = [...new Set([...toAsk, ...missing.instances])].slice(0, QUESTIONS)
      toAsk.clear()
      const questions = browseQuestions(asking, missing.hosts)
      return Effect.forEach(links, (link) =>
        queryWith(link, questions).pipe(
          Effect.catchAll((e) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => throttle("send", now, () => `mDNS: cannot query on ${link.iface.name}: ${e.message}`)))
        ), { discard: true })
    })

    /** Query now, then after a gap that doubles up to a minute, or 1 s after a peer was lost. */
    const browse = Effect.gen(function*() {
      let gap = FIRST_QUERY_GAP
      for (;;) {
        yield* queryAll
        yield* Effect.sleep(FIRST_QUERY_GAP)
        const urgent = yield* Queue.take(requery).pipe(Effect.timeoutOption(Duration.subtract(gap, FIRST_QUERY_GAP)))
        gap = Option.isSome(urgent) ? FIRST_QUERY_GAP : Duration.min(Duration.times(gap, 2), MAX_QUERY_GAP)
      }
    })

    const announce = (link: Link) =>
      respondWith(link, recordsOf(self, addressesOf(link))).pipe(
        Effect.catchAll((e) => Effect.flatMap(Clock.currentTimeMillis, (now) => throttle("send", now, () => `mDNS: cannot announce on ${link.iface.name}: ${e.message}`)))
      )

    /** Announce twice, a second apart (RFC 6762, 8.3), then answer queries, at most once a second. */
    const respond = (link: Link) =>
      Effect.gen(function*() {
        yield* announce(link)
        yield* Effect.sleep(RESPONSE_GAP)
        yield* Queue.takeAll(link.asked)
        yield* announce(link)
        yield* Effect.sleep(RESPONSE_GAP)
        for (;;) {
          yield* Queue.take(link.asked)
          yield* announce(link)
          yield* Effect.sleep(RESPONSE_GAP)
        }
      })

    /** Every second: what outlived its TTL goes (peers that stopped answering are lost). */
    const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) => publish(cache.expire(now))).pipe(
      Effect.delay(Duration.seconds(1)),
      Effect.forever
    )

    if (links.length > 0) {
      yield* Effect.forkScoped(Stream.runForEach(Stream.fromQueue(inbox), handle))
      yield* Effect.forkScoped(browse)
      yield* Effect.forEach(links, (link) => Effect.forkScoped(respond(link)), { discard: true })
      yield* Effect.forkScoped(sweep)
    } else if (chosen.length > 0) {
      yield* Effect.logWarning("mDNS: no interface could be used: discovering no peers (give peers with -a)")
    }

    const changes = Stream.unwrapScoped(Effect.gen(function*() {
      // Subscribe first, then read the cache: a change in between comes twice, never not at all.
      const subscription = yield* PubSub.subscribe(hub)
      const known = cache.peers().map((peer) => PeerChange.Found({ peer }))
      return Stream.concat(Stream.fromIterable(known), Stream.fromQueue(subscription))
    }))

    const api: DiscoveryApi = makeDiscovery({
      peers: changes.pipe(Stream.filterMap((c) => (c._tag === "Found" ? Option.some(c.peer) : Option.none()))),
      changes,
      peerLost: (peerId) =>
        Effect.suspend(() => {
          const name = cache.nameOf(peerId)
          if (name === undefined) return Effect.void
          if (toAsk.size < QUESTIONS) toAsk.add(name)
          return Effect.asVoid(Queue.offer(requery, undefined))
        })
    })
    return api
  })

/** The Discovery service over mDNS, for as long as the layer's scope; needs the node's Identity. */
export const layer = (options: DiscoveryMdnsOptions): Layer.Layer<Discovery, ConfigError, Identity> =>
  Layer.scoped(Discovery, make(options))
