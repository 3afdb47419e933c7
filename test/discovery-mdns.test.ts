// mDNS discovery across real network namespaces: DiscoveryMdns processes
// (test/fixtures/mdns-node.mjs, running dist/) on hosts joined by a private bridge, hostile
// packets from a raw multicast-dns client, and python-zeroconf both ways.
//
// SAFETY: everything that multicasts runs inside the namespaces made here (prefix
// dsd<pid>, removed in afterAll and at exit even on failure); vitest itself stays in the
// machine's namespace and only spawns `ip netns exec`. Children are killed by their PID.
// Needs root and `ip`; otherwise skipped with the reason printed. `npm test` builds dist/
// first; run alone, build it (`npm run build`) or this file builds it when missing.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = join(import.meta.dirname, "..")
const fixture = (name: string) => join(repo, "test", "fixtures", name)
const PREFIX = `dsd${process.pid}`
const SUBNET = "10.231.77"
const HOSTS = 3

const whyNot = (): string | undefined => {
  if (process.platform !== "linux") return "network namespaces need Linux"
  if (process.getuid?.() !== 0) return "network namespaces need root"
  if (spawnSync("ip", ["-V"]).status !== 0) return "the ip command (iproute2) is missing"
  return undefined
}
const skipReason = whyNot()
if (skipReason) console.warn(`discovery-mdns.test.ts skipped: ${skipReason}`)

/** A python3 that imports zeroconf (Debian's python3-zeroconf is for /usr/bin/python3), or why none. */
const python = (() => {
  for (const bin of ["/usr/bin/python3", "python3"]) {
    if (spawnSync(bin, ["-c", "import zeroconf"]).status === 0) return { bin }
  }
  return { why: "python3-zeroconf is not installed (apt-get install python3-zeroconf)" }
})()

// ---- the namespaces ----

const ns = (i: number) => `${PREFIX}-h${i}`
const ipOf = (i: number) => `${SUBNET}.${i}`
const ip = (...args: Array<string>) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] })

const children = new Set<ChildProcess>()
let made = false

const labUp = () => {
  made = true
  ip("netns", "add", `${PREFIX}-br`)
  ip("-n", `${PREFIX}-br`, "link", "add", "br0", "type", "bridge")
  ip("-n", `${PREFIX}-br`, "link", "set", "br0", "up")
  for (let i = 1; i <= HOSTS; i++) {
    ip("netns", "add", ns(i))
    ip("link", "add", `${PREFIX}-v${i}`, "type", "veth", "peer", "name", "eth0", "netns", ns(i))
    ip("link", "set", `${PREFIX}-v${i}`, "netns", `${PREFIX}-br`)
    ip("-n", `${PREFIX}-br`, "link", "set", `${PREFIX}-v${i}`, "master", "br0")
    ip("-n", `${PREFIX}-br`, "link", "set", `${PREFIX}-v${i}`, "up")
    ip("-n", ns(i), "link", "set", "lo", "up")
    ip("-n", ns(i), "addr", "add", `${ipOf(i)}/24`, "dev", "eth0")
    ip("-n", ns(i), "link", "set", "eth0", "up")
    ip("-n", ns(i), "route", "add", "224.0.0.0/4", "dev", "eth0")
  }
}

/** Kills our children (by PID), then removes our namespaces; safe to call twice. */
const labDown = () => {
  for (const child of children) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  children.clear()
  if (!made) return
  for (const name of [...Array.from({ length: HOSTS }, (_, i) => ns(i + 1)), `${PREFIX}-br`]) {
    spawnSync("ip", ["netns", "del", name], { stdio: "ignore" })
  }
  made = false
}
process.on("exit", labDown)

// ---- processes speaking JSON lines ----

interface JsonProcess {
  readonly child: ChildProcess
  readonly lines: Array<any>
  readonly stderr: () => string
  /** The first line (already seen or to come) that `match` accepts. */
  readonly waitFor: (what: string, match: (line: any) => boolean, timeoutMs?: number) => Promise<any>
  readonly send: (line: string) => void
  /** Asks it to stop (stdin `stop`, or EOF), waits; SIGKILL after `timeoutMs`. */
  readonly stop: (timeoutMs?: number) => Promise<void>
  readonly exited: Promise<number | null>
}

const startIn = (host: number, command: string, args: ReadonlyArray<string>): JsonProcess => {
  const child = spawn("ip", ["netns", "exec", ns(host), command, ...args], { cwd: repo, stdio: ["pipe", "pipe", "pipe"] })
  children.add(child)
  const lines: Array<any> = []
  let err = ""
  let buffer = ""
  const listeners = new Set<() => void>()
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    buffer += d
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      try {
        lines.push(JSON.parse(line))
      } catch {
        lines.push({ text: line })
      }
    }
    for (const l of [...listeners]) l()
  })
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
  const exited = new Promise<number | null>((resolve) =>
    child.once("close", (code) => {
      children.delete(child)
      for (const l of [...listeners]) l()
      resolve(code)
    }))
  const describe = () => `[${command} in ${ns(host)}]\n${lines.map((l) => JSON.stringify(l)).join("\n")}\n${err}`
  const waitFor = (what: string, match: (line: any) => boolean, timeoutMs = 10_000) =>
    new Promise<any>((resolve, reject) => {
      const check = () => {
        const hit = lines.find(match)
        if (hit !== undefined) return done(() => resolve(hit))
        if (child.exitCode !== null || child.signalCode !== null) done(() => reject(new Error(`exited before ${what}\n${describe()}`)))
      }
      const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${what}\n${describe()}`))), timeoutMs)
      const done = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        f()
      }
      listeners.add(check)
      check()
    })
  return {
    child,
    lines,
    stderr: () => err,
    waitFor,
    send: (line) => void child.stdin!.write(`${line}\n`),
    stop: async (timeoutMs = 5_000) => {
      if (child.exitCode !== null) return
      child.stdin!.end("stop\n")
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs)
      await exited
      clearTimeout(timer)
    },
    exited
  }
}

/** A DiscoveryMdns on `host`, ready (its id known). */
const mdnsNode = async (host: number, options: { name: string; port: number; group?: string }) => {
  const p = startIn(host, process.execPath, ["--expose-gc", fixture("mdns-node.mjs"), JSON.stringify(options)])
  const ready = await p.waitFor("ready", (l) => l.ready !== undefined)
  return Object.assign(p, { peerId: ready.ready.peerId as string })
}

const found = (p: JsonProcess) => p.lines.filter((l) => l.found !== undefined).map((l) => l.found)
const foundId = (id: string) => (l: any) => l.found?.peerId === id
const logs = (p: JsonProcess) => p.lines.filter((l) => l.log !== undefined).map((l) => l.log.message as string)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

// ---- hostile packets ----

const hexId = () => randomBytes(32).toString("hex")
const bytes = (text: string) => ({ hex: Buffer.from(text).toString("hex") })

/** A full announcement of one instance as a raw client sends it (records passed as given). */
const announcement = (label: string, o: { port?: number; txt?: Array<unknown>; a?: string; service?: string; host?: string }) => {
  const service = o.service ?? "_dsync._tcp.local"
  const instance = `${label}.${service}`
  const host = o.host ?? `${label}.local`
  return [
    { name: service, type: "PTR", ttl: 120, data: instance },
    { name: instance, type: "SRV", ttl: 120, data: { port: o.port ?? 9000, target: host, priority: 0, weight: 0 } },
    { name: instance, type: "TXT", ttl: 120, data: o.txt ?? [] },
    { name: host, type: "A", ttl: 120, data: o.a ?? ipOf(2) }
  ]
}

const sendRaw = async (host: number, packets: ReadonlyArray<{ answers: Array<unknown> }>, gapMs = 0) => {
  const dir = mkdtempSync(join(tmpdir(), "dsync-mdns-raw-"))
  try {
    const file = join(dir, "packets.json")
    writeFileSync(file, JSON.stringify({ interface: ipOf(host), packets, gapMs }))
    const p = startIn(host, process.execPath, [fixture("mdns-raw.mjs"), file])
    const code = await p.exited
    expect(code, p.stderr()).toBe(0)
    return p.lines.find((l) => l.sent !== undefined)?.sent as number
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---- tests ----

describe.skipIf(skipReason !== undefined)(`DiscoveryMdns in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  beforeAll(() => {
    const main = join(repo, "dist", "layers", "DiscoveryMdns.js")
    if (!existsSync(main)) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repo, stdio: "ignore" })
    expect(existsSync(main)).toBe(true)
    labDown()
    labUp()
  }, 180_000)
  afterAll(labDown)

  const running: Array<JsonProcess> = []
  const track = <P extends JsonProcess>(p: P) => (running.push(p), p)
  const stopAll = () => Promise.all(running.splice(0).map((p) => p.stop()))

  it("two instances find each other with the right port, id and address (and how fast, over 5 runs)", async () => {
    const sinceStart: Array<number> = []
    const sinceReady: Array<number> = []
    try {
      for (let run = 0; run < 5; run++) {
        const t0 = performance.now()
        const [a, b] = await Promise.all([
          mdnsNode(1, { name: "alpha", port: 9100 + run }).then(track),
          mdnsNode(2, { name: "beta", port: 9200 + run }).then(track)
        ])
        const tReady = performance.now()
        const [ab, ba] = await Promise.all([a.waitFor("a finds b", foundId(b.peerId)), b.waitFor("b finds a", foundId(a.peerId))])
        sinceStart.push(performance.now() - t0)
        sinceReady.push(performance.now() - tReady)
        expect(ab.found).toEqual({ address: { host: ipOf(2), port: 9200 + run }, peerId: b.peerId, name: `beta-${b.peerId.slice(0, 8)}` })
        expect(ba.found).toEqual({ address: { host: ipOf(1), port: 9100 + run }, peerId: a.peerId, name: `alpha-${a.peerId.slice(0, 8)}` })
        expect(logs(a)).toContain(`mDNS discovery on eth0 (${ipOf(1)}/24) as "alpha-${a.peerId.slice(0, 8)}._dsync._tcp.local"`)
        await stopAll()
      }
    } finally {
      await stopAll()
    }
    console.log(
      `mDNS, both found each other: median ${Math.round(median(sinceStart))} ms from process start ` +
        `(${sinceStart.map(Math.round).join(", ")}), ${Math.round(median(sinceReady))} ms after both were up`
    )
  }, 60_000)

  it("our own announcements are ignored; another instance on the same host is found", async () => {
    try {
      const a = track(await mdnsNode(1, { name: "self", port: 9300 }))
      const b = track(await mdnsNode(1, { name: "same-host", port: 9301 }))
      await a.waitFor("a finds b on its own host", foundId(b.peerId))
      await b.waitFor("b finds a", foundId(a.peerId))
      await sleep(2500) // a few more announcements and queries go by
      expect(found(a).map((f) => f.peerId)).toEqual([b.peerId])
      expect(found(b).map((f) => f.peerId)).toEqual([a.peerId])
    } finally {
      await stopAll()
    }
  }, 30_000)

  it("a goodbye makes the other side report the peer lost at once", async () => {
    try {
      const a = track(await mdnsNode(1, { name: "stays", port: 9400 }))
      const b = track(await mdnsNode(2, { name: "leaves", port: 9401 }))
      await a.waitFor("a finds b", foundId(b.peerId))
      await sleep(1500)
      expect(a.lines.some((l) => l.lost !== undefined)).toBe(false)
      const t0 = performance.now()
      await b.stop()
      expect(b.lines.some((l) => l.closed)).toBe(true) // it closed its scope (sent the goodbye), not killed
      await a.waitFor("a loses b", (l) => l.lost === b.peerId, 3_000)
      expect(performance.now() - t0).toBeLessThan(3_000)
    } finally {
      await stopAll()
    }
  }, 30_000)

  it("hostile packets are ignored, the instance table stays bounded, and a real peer is still found", async () => {
    try {
      const a = track(await mdnsNode(1, { name: "target", port: 9500 }))
      a.send("stats")
      const before = (await a.waitFor("stats", (l) => l.stats !== undefined)).stats
      const good = hexId()
      const ids = { badTxt: hexId(), hugeTxt: hexId(), foreign: hexId(), offSubnet: hexId(), unspecified: hexId(), multicast: hexId(), loopback: hexId(), version: hexId() }
      const valid = (id: string) => [bytes(`id=${id}`), bytes("v=1")]
      const control = { answers: announcement("control", { txt: valid(good) }) }
      const hostile = [
        { answers: announcement("bad-txt", { txt: [{ hex: "ff00017f" }, bytes("no equals sign"), bytes(`ID=${ids.badTxt.slice(2)}`)] }) },
        { answers: announcement("huge-txt", { txt: [...valid(ids.hugeTxt), ...Array.from({ length: 40 }, (_, i) => bytes(`pad${i}=${"x".repeat(240)}`))] }) },
        { answers: announcement("not-hex", { txt: [bytes(`id=${"zz".repeat(32)}`), bytes("v=1")] }) },
        { answers: announcement("no-id", { txt: [bytes("v=1")] }) },
        { answers: announcement("foreign", { txt: valid(ids.foreign), service: "_http._tcp.local" }) },
        { answers: announcement("off-subnet", { txt: valid(ids.offSubnet), a: "192.0.2.55" }) },
        { answers: announcement("unspecified", { txt: valid(ids.unspecified), a: "0.0.0.0", host: "u.local" }) },
        { answers: announcement("multicast", { txt: valid(ids.multicast), a: "224.0.0.251", host: "m.local" }) },
        { answers: announcement("loopback", { txt: valid(ids.loopback), a: "127.0.0.1", host: "l.local" }) },
        { answers: announcement("v2", { txt: [bytes(`id=${ids.version}`), bytes("v=2")] }) }
      ]
      // 5,000 distinct, well-formed instances from one host, ten to a packet.
      const floodIds = Array.from({ length: 5000 }, hexId)
      const flood = Array.from({ length: 500 }, (_, p) => ({
        answers: floodIds.slice(p * 10, p * 10 + 10).flatMap((id, i) => announcement(`flood-${p}-${i}`, { txt: valid(id), host: `f${p}-${i}.local` }))
      }))
      expect(await sendRaw(2, [control, ...hostile, ...flood])).toBe(1 + hostile.length + flood.length)
      // The control shows the raw client's packets arrive and are read.
      await a.waitFor("a finds the control instance", foundId(good))
      await sleep(1500) // let the last packets be applied
      const seen = new Set(found(a).map((f) => f.peerId))
      for (const [what, id] of Object.entries(ids)) expect(seen.has(id), what).toBe(false)
      const fromFlood = floodIds.filter((id) => seen.has(id)).length
      // At most 16 instances from one source address: the control and 15 of the flood.
      expect(fromFlood).toBeLessThanOrEqual(15)
      expect(seen.size).toBe(1 + fromFlood)
      // Each kind of rejection is logged once a minute at most, not once per packet.
      const ignoring = logs(a).filter((m) => m.startsWith("mDNS: ignoring"))
      expect(ignoring.length).toBeGreaterThan(0)
      expect(ignoring.length).toBeLessThanOrEqual(6)
      a.send("stats")
      const after = (await a.waitFor("stats after", (l) => l.stats !== undefined && l !== a.lines.find((x) => x.stats))).stats
      expect(after.heapUsed - before.heapUsed).toBeLessThan(16 * 1024 * 1024)
      // Another host is not crowded out by the flood.
      const c = track(await mdnsNode(3, { name: "latecomer", port: 9501 }))
      await a.waitFor("a finds a real peer after the flood", foundId(c.peerId))
      console.log(`mDNS hostile, logged:\n  ${logs(a).filter((m) => / ignoring | skipping /.test(m)).join("\n  ")}`)
      console.log(
        `mDNS hostile: ${seen.size} instances found (control + ${fromFlood} of 5,000 flooded), ${ignoring.length} "ignoring" lines, ` +
          `heap ${Math.round(before.heapUsed / 1e6)} -> ${Math.round(after.heapUsed / 1e6)} MB`
      )
    } finally {
      await stopAll()
    }
  }, 60_000)

  it("an interface that comes up later (cable plugged in) is used, and we are announced on it at once", async () => {
    const cable = (up: boolean) => ip("-n", `${PREFIX}-br`, "link", "set", `${PREFIX}-v2`, up ? "up" : "down")
    try {
      cable(false)
      const b = track(await mdnsNode(2, { name: "unplugged", port: 9650 }))
      expect(logs(b)).toContain("mDNS: no network interface is up (other than loopback): discovering none until one is")
      const a = track(await mdnsNode(1, { name: "waiting", port: 9651 }))
      await sleep(2000)
      expect(found(a)).toEqual([])
      cable(true)
      await a.waitFor("a finds b once its cable is in", foundId(b.peerId), 10_000)
      await b.waitFor("b finds a", foundId(a.peerId), 5_000)
      expect(logs(b)).toContain(`mDNS: now also on eth0 (${ipOf(2)}/24)`)
    } finally {
      cable(true)
      await stopAll()
    }
  }, 30_000)

  it("an instance of another group is skipped (logged once); one of our group is found", async () => {
    try {
      const a = track(await mdnsNode(1, { name: "a", port: 9600, group: "photos" }))
      const b = track(await mdnsNode(2, { name: "b", port: 9601, group: "music" }))
      const c = track(await mdnsNode(3, { name: "c", port: 9602, group: "photos" }))
      const d = track(await mdnsNode(2, { name: "d", port: 9603 }))
      await a.waitFor("a finds c", foundId(c.peerId))
      await c.waitFor("c finds a", foundId(a.peerId))
      await sleep(3500) // several queries and answers go by
      expect(found(a).map((f) => f.peerId)).toEqual([c.peerId])
      expect(found(b)).toEqual([])
      expect(found(d)).toEqual([])
      const skipped = logs(a).filter((m) => m.includes(`(${b.peerId.slice(0, 8)})`))
      expect(skipped).toEqual([`mDNS: skipping dsync "b-${b.peerId.slice(0, 8)}" (${b.peerId.slice(0, 8)}) from ${ipOf(2)}: it is in group music, we are in group photos`])
      expect(logs(d).filter((m) => m.includes(`(${a.peerId.slice(0, 8)})`))).toEqual([
        `mDNS: skipping dsync "a-${a.peerId.slice(0, 8)}" (${a.peerId.slice(0, 8)}) from ${ipOf(1)}: it is in group photos, we are in no group`
      ])
    } finally {
      await stopAll()
    }
  }, 30_000)

  describe.skipIf(python.bin === undefined)(`interop with python-zeroconf${python.why ? ` (skipped: ${python.why})` : ""}`, () => {
    if (python.why) console.warn(`discovery-mdns.test.ts interop skipped: ${python.why}`)

    it("a zeroconf browser sees our service with its port, TXT and address", async () => {
      try {
        const a = track(await mdnsNode(1, { name: "for python", port: 9700, group: "g1" }))
        const browser = track(startIn(2, python.bin!, [fixture("zeroconf-browse.py"), ipOf(2), "4"]))
        const seen = await browser.waitFor("zeroconf resolves us", (l) => l.name !== undefined)
        expect(seen).toEqual({
          name: `for python-${a.peerId.slice(0, 8)}._dsync._tcp.local.`,
          port: 9700,
          server: `dsync-${a.peerId.slice(0, 16)}.local.`,
          txt: { id: a.peerId, v: "1", g: "g1" },
          addresses: [ipOf(1)]
        })
      } finally {
        await stopAll()
      }
    }, 30_000)

    it("our browser finds a service registered by zeroconf", async () => {
      try {
        const id = hexId()
        const service = track(startIn(2, python.bin!, [fixture("zeroconf-register.py"), ipOf(2), "9701", id]))
        await service.waitFor("zeroconf registered", (l) => l.registered !== undefined)
        const a = track(await mdnsNode(1, { name: "browser", port: 9702 }))
        const hit = await a.waitFor("a finds the zeroconf service", foundId(id))
        expect(hit.found).toEqual({ address: { host: ipOf(2), port: 9701 }, peerId: id, name: "python zeroconf" })
      } finally {
        await stopAll()
      }
    }, 30_000)
  })
})
