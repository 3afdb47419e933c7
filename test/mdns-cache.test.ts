// The pure parts of mDNS discovery: interface choice, the records we announce, reading
// (hostile) packets, and the bounded instance cache. No sockets.
import { Either } from "effect"
import type { NetworkInterfaceInfo } from "node:os"
import { describe, expect, it } from "vitest"
import {
  asksForUs,
  instanceLabel,
  MAX_RECORDS,
  parseTxt,
  readResponse,
  recordsOf,
  selfOf,
  SERVICE
} from "../src/lib/DnsSd.js"
import { defaultLimits, makeMdnsCache } from "../src/lib/MdnsCache.js"
import { addressProblem, chooseInterfaces, type InterfaceTable, type NetInterface, onLink } from "../src/lib/NetInterfaces.js"
import { PeerChange } from "../src/services/Discovery.js"

const v4 = (address: string, prefix: number, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: "",
  family: "IPv4",
  mac: "00:00:00:00:00:00",
  internal,
  cidr: `${address}/${prefix}`
})
const v6 = (address: string, prefix: number): NetworkInterfaceInfo => ({
  address,
  netmask: "",
  family: "IPv6",
  mac: "00:00:00:00:00:00",
  internal: false,
  cidr: `${address}/${prefix}`,
  scopeid: 2
})

const table: InterfaceTable = {
  lo: [v4("127.0.0.1", 8, true)],
  eth0: [v4("10.0.0.5", 24), v6("fe80::5", 64), v6("fd00::5", 64)],
  wlan0: [v4("192.168.1.7", 24)],
  v6only: [v6("fd01::1", 64)]
}
const ifaces = Either.getOrThrow(chooseInterfaces([], table))
const eth0 = ifaces.find((i) => i.name === "eth0")!
const wlan0 = ifaces.find((i) => i.name === "wlan0")!

const hex = (byte: number) => byte.toString(16).padStart(2, "0").repeat(32)
const ME = hex(0xaa)
const PEER = hex(0xbb)
const txt = (...strings: Array<string>) => strings.map((s) => Buffer.from(s))

/** A response announcing one instance, as dns-packet decodes one. */
const response = (label: string, o: { id?: string; port?: number; a?: Array<string>; ttl?: number; group?: string; strings?: Array<Buffer>; host?: string } = {}) => {
  const instance = `${label}.${SERVICE}`
  const host = o.host ?? `${label}.local`
  const ttl = o.ttl ?? 120
  return {
    answers: [
      { name: SERVICE, type: "PTR", ttl, data: instance },
      { name: instance, type: "SRV", ttl, data: { port: o.port ?? 9000, target: host } },
      { name: instance, type: "TXT", ttl, data: o.strings ?? txt(`id=${o.id ?? PEER}`, "v=1", ...(o.group ? [`g=${o.group}`] : [])) }
    ],
    additionals: (o.a ?? ["10.0.0.9"]).map((address) => ({ name: host, type: address.includes(":") ? "AAAA" : "A", ttl, data: address }))
  }
}

const cacheFor = (group?: string) => makeMdnsCache({ peerId: ME, ...(group ? { group } : {}) })
const apply = (cache: ReturnType<typeof makeMdnsCache>, packet: unknown, iface: NetInterface = eth0, source = "10.0.0.9", now = 1000) =>
  cache.apply(readResponse(packet), iface, source, now)
const foundIn = (changes: ReadonlyArray<PeerChange>) => changes.filter((c) => c._tag === "Found").map((c) => (c as Extract<PeerChange, { _tag: "Found" }>).peer)

describe("chooseInterfaces", () => {
  it("by default: every interface up with IPv4, but loopback", () => {
    expect(ifaces.map((i) => i.name)).toEqual(["eth0", "wlan0"])
    expect(eth0.ipv4).toEqual([{ address: "10.0.0.5", prefix: 24 }])
  })

  it("named ones only, each once; unknown or IPv6-only is a clear message", () => {
    expect(Either.getOrThrow(chooseInterfaces(["wlan0", "wlan0"], table)).map((i) => i.name)).toEqual(["wlan0"])
    expect(Either.getOrThrow(chooseInterfaces(["lo"], table)).map((i) => i.name)).toEqual(["lo"])
    expect(chooseInterfaces(["eth9"], table)).toEqual(Either.left(`unknown network interface "eth9", or it is down (interfaces up: lo, eth0, wlan0, v6only)`))
    expect(chooseInterfaces(["v6only"], table)).toEqual(Either.left(`network interface "v6only" has no IPv4 address (mDNS runs over IPv4)`))
  })

  it("judges addresses from the interface they came in on", () => {
    expect(onLink(eth0, "10.0.0.200")).toBe(true)
    expect(onLink(eth0, "192.168.1.2")).toBe(false)
    expect(addressProblem(eth0, "10.0.0.9")).toBeUndefined()
    expect(addressProblem(eth0, "192.168.1.9")).toBe("not in the subnet of eth0")
    expect(addressProblem(wlan0, "10.0.0.9")).toBe("not in the subnet of wlan0")
    expect(addressProblem(eth0, "0.0.0.0")).toBe("unspecified")
    expect(addressProblem(eth0, "224.0.0.251")).toBe("multicast or reserved")
    expect(addressProblem(eth0, "255.255.255.255")).toBe("multicast or reserved")
    expect(addressProblem(eth0, "127.0.0.1")).toBe("loopback")
    expect(addressProblem(eth0, "10.0.0.0")).toBe("a subnet or broadcast address")
    expect(addressProblem(eth0, "10.0.0.255")).toBe("a subnet or broadcast address")
    expect(addressProblem(eth0, "fe80::9")).toBeUndefined()
    expect(addressProblem(eth0, "fd00::9")).toBeUndefined()
    expect(addressProblem(eth0, "fd02::9")).toBe("not on a prefix of eth0")
    expect(addressProblem(eth0, "::1")).toBe("unspecified or loopback")
    expect(addressProblem(eth0, "ff02::fb")).toBe("multicast")
    expect(addressProblem(eth0, "::ffff:10.0.0.9")).toBe("IPv4-mapped")
    expect(addressProblem(eth0, "not an address")).toBe("not an IP address")
  })
})

describe("our records", () => {
  const self = selfOf({ name: "Bob's laptop.home", port: 9001, peerId: ME, group: "photos" })

  it("a unique instance and host per run; the name made DNS-safe", () => {
    expect(self.instance).toBe(`Bob-s laptop-home-aaaaaaaa.${SERVICE}`)
    expect(self.host).toBe("dsync-aaaaaaaaaaaaaaaa.local")
    expect(instanceLabel("...", ME)).toBe("dsync-aaaaaaaa")
    expect(instanceLabel("ä".repeat(100), ME)).toBe("dsync-aaaaaaaa")
    expect(Buffer.byteLength(instanceLabel("x".repeat(300), ME))).toBeLessThanOrEqual(63)
  })

  it("PTR, enumeration PTR, SRV with the port, TXT id/v/g, A per address; TTL 0 for the goodbye", () => {
    const records = recordsOf(self, ["10.0.0.5"])
    expect(records).toEqual([
      { name: SERVICE, type: "PTR", ttl: 120, data: self.instance },
      { name: "_services._dns-sd._udp.local", type: "PTR", ttl: 120, data: SERVICE },
      { name: self.instance, type: "SRV", ttl: 120, flush: true, data: { port: 9001, target: self.host, priority: 0, weight: 0 } },
      { name: self.instance, type: "TXT", ttl: 120, flush: true, data: [`id=${ME}`, "v=1", "g=photos"] },
      { name: self.host, type: "A", ttl: 120, flush: true, data: "10.0.0.5" }
    ])
    expect(recordsOf(self, ["10.0.0.5"], 0).every((r) => "ttl" in r && r.ttl === 0)).toBe(true)
    expect(recordsOf(selfOf({ name: "x", port: 1, peerId: ME }), []).find((r) => r.type === "TXT")!.data).toEqual([`id=${ME}`, "v=1"])
  })

  it("answers queries for the service, the enumeration, its instance and host; not when the asker knows it", () => {
    const q = (name: string, type: string, answers: Array<unknown> = []) => ({ questions: [{ name, type }], answers })
    expect(asksForUs(q(SERVICE, "PTR"), self)).toBe(true)
    expect(asksForUs(q(SERVICE.toUpperCase(), "ANY"), self)).toBe(true)
    expect(asksForUs(q("_services._dns-sd._udp.local", "PTR"), self)).toBe(true)
    expect(asksForUs(q(self.instance, "SRV"), self)).toBe(true)
    expect(asksForUs(q(self.host, "A"), self)).toBe(true)
    expect(asksForUs(q("_http._tcp.local", "PTR"), self)).toBe(false)
    expect(asksForUs(q(self.host, "AAAA"), self)).toBe(false)
    const known = { name: SERVICE, type: "PTR", ttl: 100, data: self.instance }
    expect(asksForUs(q(SERVICE, "PTR", [known]), self)).toBe(false)
    expect(asksForUs(q(SERVICE, "PTR", [{ ...known, ttl: 30 }]), self)).toBe(true) // about to expire there: answer
    expect(asksForUs(null, self)).toBe(false)
    expect(asksForUs({ questions: "x" }, self)).toBe(false)
  })
})

describe("parseTxt", () => {
  it("reads id, v and g; keys without case, the first of a key wins", () => {
    expect(parseTxt(txt(`ID=${PEER.toUpperCase()}`, "V=1", "g=Photos", `id=${ME}`, "other"))).toEqual(Either.right({ peerId: PEER, group: "photos" }))
    expect(parseTxt(txt(`id=${PEER}`, "v=1", "g=two words"))).toEqual(Either.left({ kind: "malformed", reason: "bad group in TXT" }))
    expect(parseTxt(txt(`id=${PEER}`, "v=1"))).toEqual(Either.right({ peerId: PEER }))
  })

  it("refuses bad, huge, versionless, id-less and non-hex TXT", () => {
    const reason = (data: unknown) => Either.match(parseTxt(data), { onLeft: (p) => `${p.kind}: ${p.reason}`, onRight: () => "ok" })
    expect(reason("not a list")).toBe("malformed: TXT is not a list of strings")
    expect(reason(Array.from({ length: 17 }, () => Buffer.from("a=b")))).toBe("malformed: TXT has 17 strings (at most 16)")
    expect(reason(txt(`id=${PEER}`, "v=1", `pad=${"x".repeat(250)}`, `pad2=${"x".repeat(250)}`))).toMatch(/^malformed: TXT of \d+ bytes \(at most 400\)$/)
    expect(reason(txt(`id=${PEER}`))).toBe("malformed: no protocol version (v=) in TXT")
    expect(reason(txt(`id=${PEER}`, "v=2"))).toBe("version: protocol version 2 (we speak 1)")
    expect(reason(txt("v=1"))).toBe("malformed: no id in TXT")
    expect(reason(txt(`id=${"zz".repeat(32)}`, "v=1"))).toBe("malformed: id in TXT is not 64 hex digits")
    expect(reason(txt(`id=${PEER}0`, "v=1"))).toBe("malformed: id in TXT is not 64 hex digits")
    expect(reason([Buffer.from([0xff, 0x00]), Buffer.from("v=1")])).toBe("malformed: no id in TXT")
  })
})

describe("readResponse", () => {
  it("takes only _dsync._tcp instances and address records, within its caps", () => {
    const packet = response("peer")
    packet.answers.push({ name: "_http._tcp.local", type: "PTR", ttl: 120, data: "web._http._tcp.local" } as never)
    const view = readResponse(packet)
    expect(view.instances.map((i) => i.label)).toEqual(["peer"])
    expect(view.instances[0]!.srv).toEqual({ port: 9000, target: "peer.local" })
    expect(view.hosts.get("peer.local")).toEqual({ addresses: ["10.0.0.9"], ttl: 120 })
    // 1,000 records: only the first MAX_RECORDS are read, at most 16 instances.
    const many = { answers: Array.from({ length: 1000 }, (_, i) => ({ name: SERVICE, type: "PTR", ttl: 120, data: `n${i}.${SERVICE}` })) }
    expect(readResponse(many).instances).toHaveLength(16)
    const hosts = { answers: Array.from({ length: 1000 }, (_, i) => ({ name: `h${i % 40}.local`, type: "A", ttl: 120, data: "10.0.0.1" })) }
    const hv = readResponse(hosts)
    expect(hv.hosts.size).toBe(16)
    expect([...hv.hosts.values()].reduce((n, h) => n + h.addresses.length, 0)).toBeLessThanOrEqual(MAX_RECORDS)
  })

  it("survives junk: wrong types everywhere, a bad port, a too-long label", () => {
    for (const junk of [null, 7, "x", { answers: "no" }, { answers: [null, 1, { name: 5 }, { name: SERVICE, type: "PTR", data: 7 }] }]) {
      expect(readResponse(junk).instances).toEqual([])
    }
    const badPort = response("p", { port: 0 })
    expect(readResponse(badPort).instances[0]!.srv).toBeUndefined()
    expect(readResponse(response("x".repeat(64))).instances).toEqual([])
  })
})

describe("the instance cache", () => {
  it("a complete announcement is Found once, with address, port, id and name; again only when it changes", () => {
    const cache = cacheFor()
    expect(foundIn(apply(cache, response("peer", { port: 9001 })).changes)).toEqual([
      { address: { host: "10.0.0.9", port: 9001 }, peerId: PEER, name: "peer" }
    ])
    expect(apply(cache, response("peer", { port: 9001 })).changes).toEqual([])
    expect(foundIn(apply(cache, response("peer", { port: 9001, a: ["10.0.0.10"] })).changes)[0]!.address).toEqual({ host: "10.0.0.10", port: 9001 })
    expect(cache.peers()).toEqual([{ address: { host: "10.0.0.10", port: 9001 }, peerId: PEER, name: "peer" }])
  })

  it("our own announcement is ignored, silently", () => {
    const cache = cacheFor()
    expect(apply(cache, response("me", { id: ME }))).toEqual({ changes: [], rejections: [] })
    expect(cache.size()).toBe(0)
  })

  it("another group (or none) is skipped, saying which", () => {
    const mine = cacheFor("photos")
    expect(apply(mine, response("p", { group: "music" })).rejections).toMatchObject([
      { kind: "group", reason: `it is in group music, we are in group photos`, peerId: PEER }
    ])
    expect(apply(mine, response("q", { id: hex(0xcc) })).rejections[0]!.reason).toBe(`it is in no group, we are in group photos`)
    expect(foundIn(apply(mine, response("r", { id: hex(0xdd), group: "photos" })).changes)).toHaveLength(1)
    // ignored until its TTL ends: heard again, nothing new to report
    expect(apply(mine, response("p", { group: "music" }))).toEqual({ changes: [], rejections: [] })
  })

  it("addresses off the interface's subnet, unspecified, multicast or loopback are refused; IPv6 link-local is the fallback", () => {
    for (const address of ["192.168.1.9", "0.0.0.0", "224.0.0.1", "127.0.0.1", "10.0.0.255"]) {
      const cache = cacheFor()
      const outcome = apply(cache, response("p", { a: [address] }))
      expect(outcome.changes).toEqual([])
      expect(outcome.rejections).toMatchObject([{ kind: "address", peerId: PEER }])
      expect(outcome.rejections[0]!.reason).toContain(address)
    }
    const mixed = cacheFor()
    expect(foundIn(apply(mixed, response("p", { a: ["192.168.1.9", "10.0.0.9"] })).changes)[0]!.address.host).toBe("10.0.0.9")
    const v6only = cacheFor()
    expect(foundIn(apply(v6only, response("p", { a: ["fe80::9"] })).changes)[0]!.address.host).toBe("fe80::9%eth0")
  })

  it("a goodbye (TTL 0) loses the peer at once; silence loses it when its TTL ends", () => {
    const cache = cacheFor()
    apply(cache, response("p"))
    expect(apply(cache, response("p", { ttl: 0 })).changes).toEqual([PeerChange.Lost({ peerId: PEER })])
    expect(cache.size()).toBe(0)
    apply(cache, response("p", { ttl: 10 }), eth0, "10.0.0.9", 1000)
    expect(cache.expire(10_999)).toEqual([])
    expect(cache.expire(11_000)).toEqual([PeerChange.Lost({ peerId: PEER })])
    expect(cache.peers()).toEqual([])
  })

  it("an instance completed over several packets: PTR alone, then SRV and TXT, then its address", () => {
    const cache = cacheFor()
    const instance = `p.${SERVICE}`
    expect(apply(cache, { answers: [{ name: SERVICE, type: "PTR", ttl: 120, data: instance }] }).changes).toEqual([])
    expect(cache.incomplete(8)).toEqual({ instances: [instance], hosts: [] })
    const { additionals: _, ...noAddress } = response("p")
    expect(apply(cache, noAddress).changes).toEqual([])
    expect(cache.incomplete(8)).toEqual({ instances: [], hosts: ["p.local"] })
    expect(foundIn(apply(cache, { answers: [{ name: "p.local", type: "A", ttl: 120, data: "10.0.0.9" }] }).changes)).toHaveLength(1)
    expect(cache.nameOf(PEER)).toBe(instance)
  })

  it("a second instance claiming an id already announced is refused", () => {
    const cache = cacheFor()
    apply(cache, response("real"))
    const outcome = apply(cache, response("impostor", { a: ["10.0.0.66"] }), eth0, "10.0.0.66")
    expect(outcome.changes).toEqual([])
    expect(outcome.rejections).toMatchObject([{ kind: "duplicate", label: "impostor" }])
    expect(cache.peers().map((p) => p.address.host)).toEqual(["10.0.0.9"])
  })

  it("stays bounded: per source address, in all, and in what it ignores", () => {
    const cache = cacheFor()
    let found = 0
    for (let i = 0; i < 5000; i++) {
      const id = i.toString(16).padStart(64, "0")
      found += foundIn(apply(cache, response(`flood-${i}`, { id })).changes).length
    }
    expect(found).toBe(defaultLimits.perSource)
    expect(cache.size()).toBe(defaultLimits.perSource)
    const wide = cacheFor()
    for (let i = 0; i < 2000; i++) {
      const source = `10.0.${(i >> 8) & 255}.${i & 255}`
      apply(wide, response(`w-${i}`, { id: (i + 1).toString(16).padStart(64, "0"), a: [] }), eth0, source)
    }
    expect(wide.size()).toBe(defaultLimits.instances)
    const bad = cacheFor()
    for (let i = 0; i < 2000; i++) apply(bad, response(`bad-${i}`, { strings: txt("v=1") }), eth0, `10.0.0.${i % 250 + 1}`)
    expect(bad.size()).toBe(0)
    expect(bad.ignoredCount()).toBe(defaultLimits.ignored)
  })

  it("an instance heard on two interfaces is one peer, at the address of the first", () => {
    const cache = cacheFor()
    expect(foundIn(apply(cache, response("p"), eth0, "10.0.0.9").changes)).toHaveLength(1)
    expect(apply(cache, response("p", { a: ["192.168.1.9"] }), wlan0, "192.168.1.9")).toEqual({ changes: [], rejections: [] })
    expect(cache.peers()).toHaveLength(1)
  })
})
