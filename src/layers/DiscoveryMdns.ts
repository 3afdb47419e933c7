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
 * The interfaces are looked at again every few seconds: one that comes up (a laptop
 * joining Wi-Fi, a cable plugged back) gets a socket and is announced at once, one that
 * goes down is dropped (with a goodbye, if it still can).
 *
 * Not done, on purpose: probing before announcing (RFC 6762, 8.1) — our names carry 32
 * random bits of the node's fresh key, so they do not collide; and IPv6 (a socket, AAAA
 * records) — the node listens on IPv4 only, so we announce and dial IPv4.
 */
import type { Answer, Question } from "dns-packet"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import makeMdns from "multicast-dns"
import { ConfigError } from "../domain/Errors.js"
import { asksForUs, browseQuestions, readResponse, recordsOf, type ResponseView, type Self, selfOf } from "../lib/DnsSd.js"
import { type CacheLimits, defaultLimits, makeMdnsCache, type MdnsCache, type Rejection } from "../lib/MdnsCache.js"
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
  /** mDNS UDP port (default 5353). */
  readonly mdnsPort?: number
  /** mDNS multicast group (default 224.0.0.251). */
  readonly mdnsAddress?: string
  /** Cache bounds (defaultLimits unless told). */
  readonly limits?: CacheLimits
}

/** Browse queries: at start, then 1 s, 2 s, 4 s ... apart, at most a minute; 1 s again when asked. */
const FIRST_QUERY_GAP = Duration.seconds(1)
const MAX_QUERY_GAP = Duration.minutes(1)
/** Least time between two multicasts of our records on one interface (RFC 6762, 6.2). */
const RESPONSE_GAP = Duration.seconds(1)
/** How often the interfaces are looked at again. */
const INTERFACE_RESCAN = Duration.seconds(5)
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

const close = (link: Link) => Effect.async<void>((resume) => link.mdns.destroy(() => resume(Effect.void)))

const addressesOf = (link: Link) => link.iface.ipv4.map((a) => a.address)

/** Our records with TTL 0 (so peers drop us at once), then the socket closes. */
const goodbye = (link: Link, self: Self) =>
  respondWith(link, recordsOf(self, addressesOf(link), 0)).pipe(
    Effect.timeout(SOCKET_TIMEOUT),
    Effect.ignore,
    Effect.zipRight(close(link).pipe(Effect.timeout(SOCKET_TIMEOUT), Effect.ignore))
  )

/**
 * Opens the socket of one interface and feeds what it hears to `inbox` (responses) and
 * to the link's `asked` signal (queries for us); None when it cannot bind.
 */
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
    if (ready) return Option.some(link)
    yield* close(link)
    return Option.none<Link>()
  })

/**
 * The interfaces to be on now: every one up (`names` empty), or those named that are up.
 * (At start an unknown name is an error; later, a named interface that went down is skipped.)
 */
const interfacesNow = (names: ReadonlyArray<string>): ReadonlyArray<NetInterface> =>
  names.length === 0
    ? Either.getOrElse(chooseInterfaces([]), () => [])
    : names.flatMap((name) => Either.getOrElse(chooseInterfaces([name]), () => []))

/** A link's key: the interface and its address (a new address is a new link). */
const keyOf = (i: NetInterface) => describeInterface(i)

// ---- logging, bounded ----

/** Logs each kind of line at most once per LOG_EVERY, saying how many were not logged. */
const makeThrottle = () => {
  const last = new Map<string, { at: number; skipped: number }>()
  return (kind: string, line: (skipped: number) => string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const seen = last.get(kind)
      if (seen !== undefined && now - seen.at < Duration.toMillis(LOG_EVERY)) {
        seen.skipped++
        return Effect.void
      }
      last.set(kind, { at: now, skipped: 0 })
      return Effect.logWarning(line(seen?.skipped ?? 0))
    })
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

const more = (skipped: number) => (skipped > 0 ? ` (and ${skipped} more like it in the last minute)` : "")

/** The log line of a rejection: another group or version once per peer (info), the rest throttled (warning). */
const makeRejectionLog = () => {
  const throttle = makeThrottle()
  const once = makeOnce()
  const log = (r: Rejection) =>
    r.kind === "group" || r.kind === "version"
      ? (once(`${r.kind} ${r.peerId ?? r.label}`) ? Effect.logInfo(`mDNS: skipping dsync ${who(r)}: ${printable(r.reason)}`) : Effect.void)
      : throttle(r.kind, (skipped) => `mDNS: ignoring ${who(r)}: ${printable(r.reason)}${more(skipped)}`)
  return { log, throttle }
}

const logChange = (change: PeerChange) =>
  PeerChange.$match(change, {
    Found: ({ peer }) =>
      Effect.logInfo(`mDNS: found "${printable(peer.name ?? "")}" (${shortId(peer.peerId ?? "")}) at ${peer.address.host}:${peer.address.port}`),
    Lost: ({ peerId }) => Effect.logInfo(`mDNS: lost ${shortId(peerId)}`)
  })

// ---- the service ----

/** What the parts of the service share. */
interface State {
  readonly self: Self
  readonly cache: MdnsCache
  readonly hub: PubSub.PubSub<PeerChange>
  readonly inbox: Queue.Queue<Incoming>
  /** Signals the browse loop to query again soon. */
  readonly requery: Queue.Queue<void>
  /** Instances the node lost (peerLost): asked about in the next query. */
  readonly toAsk: Set<string>
  /** The open sockets, by keyOf. */
  readonly links: Map<string, Link>
  readonly logs: ReturnType<typeof makeRejectionLog>
}

const publish = (state: State, changes: ReadonlyArray<PeerChange>) =>
  Effect.zipRight(PubSub.publishAll(state.hub, changes), Effect.forEach(changes, logChange, { discard: true }))

/** Applies what a socket heard; asks again when an instance is still incomplete. */
const handle = (state: State) => (item: Incoming) =>
  Effect.gen(function*() {
    if (item._tag === "Note") return yield* state.logs.throttle(item.kind, (skipped) => `mDNS: ${printable(item.text)}${more(skipped)}`)
    const outcome = state.cache.apply(item.view, item.iface, item.source, yield* Clock.currentTimeMillis)
    yield* publish(state, outcome.changes)
    yield* Effect.forEach(outcome.rejections, state.logs.log, { discard: true })
    const missing = state.cache.incomplete(1)
    if (missing.instances.length + missing.hosts.length > 0) yield* Queue.offer(state.requery, undefined)
  })

/** One query on every link: the browse question, and the names we lack or lost. */
const queryAll = (state: State) =>
  Effect.suspend(() => {
    const missing = state.cache.incomplete(QUESTIONS)
    const asking = [...new Set([...state.toAsk, ...missing.instances])].slice(0, QUESTIONS)
    state.toAsk.clear()
    const questions = browseQuestions(asking, missing.hosts)
    return Effect.forEach(state.links.values(), (link) =>
      queryWith(link, questions).pipe(
        Effect.catchAll((e) => state.logs.throttle("send", () => `mDNS: cannot query on ${link.iface.name}: ${e.message}`))
      ), { discard: true })
  })

/** Query now, then after a gap that doubles up to a minute, or 1 s after a peer was lost. */
const browse = (state: State) =>
  Effect.gen(function*() {
    let gap = FIRST_QUERY_GAP
    for (;;) {
      yield* queryAll(state)
      yield* Effect.sleep(FIRST_QUERY_GAP)
      const urgent = yield* Queue.take(state.requery).pipe(Effect.timeoutOption(Duration.subtract(gap, FIRST_QUERY_GAP)))
      gap = Option.isSome(urgent) ? FIRST_QUERY_GAP : Duration.min(Duration.times(gap, 2), MAX_QUERY_GAP)
    }
  })

/** Announce twice, a second apart (RFC 6762, 8.3), then answer queries, at most once a second. */
const respond = (state: State, link: Link) =>
  Effect.gen(function*() {
    const announce = respondWith(link, recordsOf(state.self, addressesOf(link))).pipe(
      Effect.catchAll((e) => state.logs.throttle("send", () => `mDNS: cannot announce on ${link.iface.name}: ${e.message}`))
    )
    yield* announce
    yield* Effect.sleep(RESPONSE_GAP)
    yield* Queue.takeAll(link.asked)
    for (;;) {
      yield* announce
      yield* Effect.sleep(RESPONSE_GAP)
      yield* Queue.take(link.asked)
    }
  })

/**
 * Opens a socket for each interface that is up and has none, closes those of interfaces
 * gone down. A link lives in its fiber: interrupting it (here, or at the end of the
 * scope) sends the goodbye and closes the socket.
 */
const reconcile = (state: State, fibers: FiberMap.FiberMap<string>, options: DiscoveryMdnsOptions, quiet: boolean) =>
  Effect.gen(function*() {
    const wanted = new Map(interfacesNow(options.interfaces ?? []).map((i) => [keyOf(i), i] as const))
    for (const [key, link] of [...state.links]) {
      if (wanted.has(key)) continue
      yield* FiberMap.remove(fibers, key)
      if (!quiet) yield* Effect.logInfo(`mDNS: no longer on ${describeInterface(link.iface)} (down or changed)`)
    }
    for (const [key, iface] of wanted) {
      if (state.links.has(key)) continue
      const opened = yield* Effect.uninterruptible(Effect.gen(function*() {
        const link = yield* openSocket(iface, state.self, state.inbox, options)
        if (Option.isNone(link)) return false
        state.links.set(key, link.value)
        yield* FiberMap.run(fibers, key, respond(state, link.value).pipe(
          Effect.ensuring(Effect.suspend(() => {
            state.links.delete(key)
            return goodbye(link.value, state.self)
          }))
        ))
        return true
      }))
      if (!opened) yield* state.logs.throttle(`bind ${iface.name}`, () => `mDNS: cannot use ${iface.name} (UDP port ${options.mdnsPort ?? 5353} refused): skipping it`)
      else if (!quiet) yield* Effect.logInfo(`mDNS: now also on ${describeInterface(iface)}`)
    }
  })

/**
 * mDNS discovery for this node (whose id comes from Identity): sockets open, announcing
 * and browsing, until the scope closes (then goodbye). Fails with a ConfigError when a
 * named interface is not up at start.
 */
export const make = (options: DiscoveryMdnsOptions) =>
  Effect.gen(function*() {
    const identity = yield* Identity
    const chosen = yield* Effect.mapError(chooseInterfaces(options.interfaces ?? []), (message) => new ConfigError({ message }))
    const group = options.group === undefined ? {} : { group: options.group }
    const state: State = {
      self: selfOf({ name: options.name, port: options.port, peerId: identity.peerId, ...group }),
      cache: makeMdnsCache({ peerId: identity.peerId, ...group }, options.limits ?? defaultLimits),
      hub: yield* Effect.acquireRelease(PubSub.sliding<PeerChange>(1024), PubSub.shutdown),
      inbox: yield* Effect.acquireRelease(Queue.sliding<Incoming>(INBOX), Queue.shutdown),
      requery: yield* Queue.sliding<void>(1),
      toAsk: new Set(),
      links: new Map(),
      logs: makeRejectionLog()
    }
    yield* chosen.length === 0
      ? Effect.logWarning("mDNS: no network interface is up (other than loopback): discovering none until one is")
      : Effect.logInfo(`mDNS discovery on ${chosen.map(describeInterface).join(", ")} as "${printable(state.self.instance)}"`)

    const fibers = yield* FiberMap.make<string>()
    yield* reconcile(state, fibers, options, true)
    yield* Effect.forkScoped(Stream.runForEach(Stream.fromQueue(state.inbox), handle(state)))
    yield* Effect.forkScoped(browse(state))
    // Every second, what outlived its TTL goes (peers that stopped answering are lost).
    yield* Effect.forkScoped(
      Effect.flatMap(Clock.currentTimeMillis, (now) => publish(state, state.cache.expire(now))).pipe(
        Effect.repeat(Schedule.spaced(Duration.seconds(1)))
      )
    )
    yield* Effect.forkScoped(reconcile(state, fibers, options, false).pipe(Effect.repeat(Schedule.spaced(INTERFACE_RESCAN))))

    const changes = Stream.unwrapScoped(Effect.gen(function*() {
      // Subscribe first, then read the cache: a change in between comes twice, never not at all.
      const subscription = yield* PubSub.subscribe(state.hub)
      const known = state.cache.peers().map((peer) => PeerChange.Found({ peer }))
      return Stream.concat(Stream.fromIterable(known), Stream.fromQueue(subscription))
    }))

    const api: DiscoveryApi = makeDiscovery({
      peers: changes.pipe(Stream.filterMap((c) => (c._tag === "Found" ? Option.some(c.peer) : Option.none()))),
      changes,
      peerLost: (peerId) =>
        Effect.suspend(() => {
          const name = state.cache.nameOf(peerId)
          if (name === undefined) return Effect.void
          if (state.toAsk.size < QUESTIONS) state.toAsk.add(name)
          return Effect.asVoid(Queue.offer(state.requery, undefined))
        })
    })
    return api
  })

/** The Discovery service over mDNS, for as long as the layer's scope; needs the node's Identity. */
export const layer = (options: DiscoveryMdnsOptions): Layer.Layer<Discovery, ConfigError, Identity> =>
  Layer.scoped(Discovery, make(options))
