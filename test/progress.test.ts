import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Queue, Stream, TestClock } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, statSync } from "node:fs"
import { join } from "node:path"
import { beforeAll } from "vitest"
import {
  displayWidth,
  formatBytes,
  formatElapsed,
  formatEta,
  renderProgress,
  truncateStart
} from "../src/cli/Progress.js"
import { NodeEvent } from "../src/services/Events.js"

const MiB = 1024 * 1024
const A = "a".repeat(64)
const B = "b".repeat(64)

/** Let every runnable fiber run to its next wait. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const fakeOut = (columns = 100) => {
  const writes: Array<string> = []
  return { writes, out: { isTTY: true, columns, write: (s: string) => void writes.push(s) } }
}

/**
 * A minimal terminal: text, \r, \n (as CR LF, like a tty's onlcr), CUU (`ESC[nA`), EL 2
 * (`ESC[2K`), ED 0 (`ESC[J`) and SGR (ignored). Anything else fails the test. Returns the
 * screen's lines (trailing empty line dropped).
 */
const screen = (output: string): Array<string> => {
  const rows: Array<string> = [""]
  let r = 0
  let c = 0
  for (const m of output.matchAll(/\x1b\[([0-9;]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+/g)) {
    const tok = m[0]
    if (tok === "\r") c = 0
    else if (tok === "\n") {
      r++
      c = 0
      if (rows.length <= r) rows.push("")
    } else if (m[2] !== undefined) {
      const n = m[1] === "" ? undefined : Number(m[1])
      if (m[2] === "A") r = Math.max(0, r - (n ?? 1))
      else if (m[2] === "K" && n === 2) rows[r] = ""
      else if (m[2] === "J" && (n ?? 0) === 0) {
        rows[r] = rows[r]!.slice(0, c)
        rows.length = r + 1
      } else if (m[2] === "m") continue
      else throw new Error(`unexpected escape ${JSON.stringify(tok)}`)
    } else {
      if (tok.includes("\x1b")) throw new Error("stray ESC")
      const row = rows[r]!.padEnd(c)
      rows[r] = row.slice(0, c) + tok + row.slice(c + tok.length)
      c += tok.length
    }
  }
  while (rows.length > 0 && rows[rows.length - 1] === "") rows.pop()
  return rows
}

const stripTime = (line: string) => {
  expect(line).toMatch(/^\d\d:\d\d:\d\d /)
  return line.slice(9)
}

describe("units", () => {
  it("formats bytes, rates and durations for humans", () => {
    expect(formatBytes(0)).toBe("0 B")
    expect(formatBytes(1023)).toBe("1023 B")
    expect(formatBytes(1536)).toBe("1.5 KiB")
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.0 MiB")
    expect(formatBytes(120 * MiB)).toBe("120.0 MiB")
    expect(formatBytes(3 * 1024 * MiB)).toBe("3.0 GiB")
    expect(formatEta(7)).toBe("7s")
    expect(formatEta(65)).toBe("1m05s")
    expect(formatEta(7380)).toBe("2h03m")
    expect(formatEta(Infinity)).toBe("--")
    expect(formatElapsed(350)).toBe("350ms")
    expect(formatElapsed(2450)).toBe("2.4s")
    expect(formatElapsed(65_000)).toBe("1m05s")
  })

  it("measures and truncates by terminal columns", () => {
    expect(displayWidth("abc")).toBe(3)
    expect(displayWidth("日本")).toBe(4)
    expect(displayWidth("e\u0301")).toBe(1)
    expect(truncateStart("abcdefgh", 5)).toBe("…efgh")
    expect(truncateStart("ab日本", 4)).toBe("…本")
    expect(displayWidth(truncateStart("日本語のファイル名.txt", 9))).toBeLessThanOrEqual(9)
  })
})

describe("renderProgress, plain mode", () => {
  const script: ReadonlyArray<NodeEvent> = [
    NodeEvent.Started({ name: "desk\u202etop", peerId: B, folder: "C:\\Users\\me\\sync", address: "0.0.0.0:9000" }),
    NodeEvent.PeerConnected({ peerId: A, name: "laptop", address: "10.0.0.2:9000" }),
    NodeEvent.Backlog({ files: 2, bytes: 3 * MiB }),
    NodeEvent.TransferStarted({ path: "docs/report.pdf", peerId: A, bytes: 3 * MiB, fetchBytes: 2 * MiB }),
    NodeEvent.TransferProgress({ path: "docs/report.pdf", peerId: A, received: MiB, fetchBytes: 2 * MiB }),
    NodeEvent.FileReceived({ path: "docs/report.pdf", peerId: A, kind: "file", bytes: 3 * MiB, fetchedBytes: 2 * MiB, durationMs: 1250 }),
    NodeEvent.FileReceived({ path: "docs", peerId: A, kind: "dir", bytes: 0, fetchedBytes: 0, durationMs: 3 }),
    NodeEvent.FileSent({ path: "notes.txt", peerId: A, bytes: 2048, durationMs: 40 }),
    NodeEvent.FileDeleted({ path: "old.txt", peerId: A }),
    NodeEvent.ConflictKept({ path: "plan.md", keptAs: "plan.sync-conflict-20240101-120000-abcd.md" }),
    NodeEvent.Refused({ peerId: A, path: "../etc/passwd", reason: "path escapes the folder" }),
    NodeEvent.TransferFailed({ path: "big.iso", peerId: A, reason: "stream too slow" }),
    NodeEvent.PeerDisconnected({ peerId: A, name: "laptop", address: "10.0.0.2:9000", reason: "peer left" }),
    NodeEvent.Backlog({ files: 0, bytes: 0 })
  ]

  it.effect("prints one log line per completed file, peer event, conflict, refusal and failure, and no escapes", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const out = { isTTY: false, columns: 0, write: (s: string) => void writes.push(s) }
      yield* renderProgress(Stream.fromIterable(script), out, { color: true, now: () => Date.UTC(2024, 0, 1, 12) })
      const text = writes.join("")
      expect(text).not.toContain("\x1b")
      expect(text.endsWith("\n")).toBe(true)
      const [banner, ...lines] = text.split("\n").slice(0, -1)
      expect(banner).toBe("dsync desk\\u202etop · id bbbbbbbb · folder C:\\Users\\me\\sync · listening on 0.0.0.0:9000")
      expect(lines.map(stripTime)).toEqual([
        "connected to laptop (aaaaaaaa) at 10.0.0.2:9000",
        "received docs/report.pdf (3.0 MiB in 1.2s, 2.0 MiB fetched) from laptop (aaaaaaaa)",
        "received folder docs from laptop (aaaaaaaa)",
        "sent notes.txt (2.0 KiB in 40ms) to laptop (aaaaaaaa)",
        "deleted old.txt (deleted on laptop (aaaaaaaa); kept in the trash)",
        "conflict on plan.md: ours kept as plan.sync-conflict-20240101-120000-abcd.md",
        "refused ../etc/passwd from laptop (aaaaaaaa): path escapes the folder",
        "failed big.iso from laptop (aaaaaaaa): stream too slow (tried again later)",
        "disconnected from laptop (aaaaaaaa) at 10.0.0.2:9000: peer left"
      ])
    }))

  it.effect("escapes control and bidi characters in paths, names and reasons", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const out = { isTTY: false, columns: 80, write: (s: string) => void writes.push(s) }
      const events = Stream.make(
        NodeEvent.PeerConnected({ peerId: A, name: "evil\x1b[2J", address: "10.0.0.2:9000" }),
        NodeEvent.FileReceived({ path: "admin\u202egnp.exe", peerId: A, kind: "file", bytes: 10, fetchedBytes: 10, durationMs: 1 }),
        NodeEvent.Refused({ peerId: A, path: "a\nfake line", reason: "bad\u2028reason" })
      )
      yield* renderProgress(events, out, { color: false, mode: "plain" })
      const text = writes.join("")
      expect(text).not.toMatch(/[\x1b\u202e\u2028]/)
      const lines = text.split("\n").slice(0, -1).map(stripTime)
      expect(lines).toEqual([
        "connected to evil\\u001b[2J (aaaaaaaa) at 10.0.0.2:9000",
        "received \"admin\\u202egnp.exe\" (10 B in 1ms) from evil\\u001b[2J (aaaaaaaa)",
        "refused \"a\\u000afake line\" from evil\\u001b[2J (aaaaaaaa): bad\\u2028reason"
      ])
    }))
})

describe("renderProgress, live mode", () => {
  it.scoped("status lines with rate and ETA, overall line, in-place redraws, lines above the block, cleared on interrupt", () =>
    Effect.gen(function*() {
      const { out, writes } = fakeOut(100)
      const queue = yield* Queue.unbounded<NodeEvent>()
      const fiber = yield* Effect.fork(renderProgress(Stream.fromQueue(queue), out, { color: false }))
      const send = (...events: Array<NodeEvent>) => Effect.zipRight(queue.offerAll(events), settle)

      yield* settle
      expect(screen(writes.join(""))).toEqual(["no peers connected"])

      yield* send(
        NodeEvent.PeerConnected({ peerId: A, name: "laptop", address: "10.0.0.2:9000" }),
        NodeEvent.Backlog({ files: 3, bytes: 30 * MiB }),
        NodeEvent.TransferStarted({ path: "a.txt", peerId: A, bytes: 10 * MiB, fetchBytes: 10 * MiB }),
        NodeEvent.TransferStarted({ path: "dir/b.bin", peerId: A, bytes: 20 * MiB, fetchBytes: 20 * MiB })
      )
      yield* TestClock.adjust("1 second")
      yield* send(
        NodeEvent.TransferProgress({ path: "a.txt", peerId: A, received: 1 * MiB, fetchBytes: 10 * MiB }),
        NodeEvent.TransferProgress({ path: "dir/b.bin", peerId: A, received: 2 * MiB, fetchBytes: 20 * MiB })
      )
      yield* TestClock.adjust("1 second")
      yield* send(
        NodeEvent.TransferProgress({ path: "a.txt", peerId: A, received: 2 * MiB, fetchBytes: 10 * MiB }),
        NodeEvent.TransferProgress({ path: "dir/b.bin", peerId: A, received: 4 * MiB, fetchBytes: 20 * MiB })
      )
      yield* TestClock.adjust("100 millis")

      let shown = screen(writes.join(""))
      expect(shown).toHaveLength(4)
      expect(stripTime(shown[0]!)).toBe("connected to laptop (aaaaaaaa) at 10.0.0.2:9000")
      expect(shown[1]).toMatch(/^  a\.txt\s+2\.0 MiB\/10\.0 MiB\s+20%\s+1\.0 MiB\/s\s+ETA 8s$/)
      expect(shown[2]).toMatch(/^  dir\/b\.bin\s+4\.0 MiB\/20\.0 MiB\s+20%\s+2\.0 MiB\/s\s+ETA 8s$/)
      expect(shown[3]).toBe("1 peer | 2 downloading at 3.0 MiB/s | 3 files, 30.0 MiB left, ETA 10s")
      // redrawn in place: cursor up over the 3-line block, each line cleared
      expect(writes.some((w) => w.startsWith("\x1b[3A\r\x1b[2K"))).toBe(true)
      for (const line of shown) expect(line.length).toBeLessThan(100)

      // a completed file goes above the block, which shrinks to one transfer
      yield* send(
        NodeEvent.FileReceived({ path: "a.txt", peerId: A, kind: "file", bytes: 10 * MiB, fetchedBytes: 10 * MiB, durationMs: 65_000 }),
        NodeEvent.Backlog({ files: 2, bytes: 20 * MiB })
      )
      yield* TestClock.adjust("100 millis")
      shown = screen(writes.join(""))
      expect(shown.slice(0, 2).map(stripTime)).toEqual([
        "connected to laptop (aaaaaaaa) at 10.0.0.2:9000",
        "received a.txt (10.0 MiB in 1m05s) from laptop (aaaaaaaa)"
      ])
      expect(shown[2]).toMatch(/^  dir\/b\.bin /)
      expect(shown[3]).toMatch(/^1 peer \| 1 downloading at 2\.0 MiB\/s \| 2 files, 20\.0 MiB left, ETA 10s$/)
      expect(shown).toHaveLength(4)
      expect(writes[writes.length - 1]!.startsWith("\x1b[3A\r\x1b[J")).toBe(true)

      // at most one redraw per 100 ms, however many events arrive
      const before = writes.length
      for (let i = 0; i < 20; i++) {
        yield* send(NodeEvent.TransferProgress({ path: "dir/b.bin", peerId: A, received: 4 * MiB + i * 10_000, fetchBytes: 20 * MiB }))
        yield* TestClock.adjust("10 millis")
      }
      expect(writes.length - before).toBeLessThanOrEqual(2)

      // nothing left waiting: no progress for a while shows "stalled"
      yield* TestClock.adjust("4 seconds")
      expect(screen(writes.join(""))[2]).toMatch(/stalled\s+ETA --$/)

      // interrupted: the last write erases the 2-line block, the permanent lines stay
      yield* Fiber.interrupt(fiber)
      expect(writes[writes.length - 1]).toBe("\x1b[2A\r\x1b[J")
      shown = screen(writes.join(""))
      expect(shown.map(stripTime)).toEqual([
        "connected to laptop (aaaaaaaa) at 10.0.0.2:9000",
        "received a.txt (10.0 MiB in 1m05s) from laptop (aaaaaaaa)"
      ])
    }))

  it.scoped("prints pending lines and erases the block when the stream ends", () =>
    Effect.gen(function*() {
      const { out, writes } = fakeOut(80)
      const events = Stream.make(
        NodeEvent.TransferStarted({ path: "x", peerId: A, bytes: 100, fetchBytes: 100 }),
        NodeEvent.FileReceived({ path: "x", peerId: A, kind: "file", bytes: 100, fetchedBytes: 100, durationMs: 5 })
      )
      yield* renderProgress(events, out, { color: true, now: () => 0 })
      const text = writes.join("")
      expect(text).toContain("\x1b[32mreceived\x1b[0m x (100 B in 5ms) from aaaaaaaa")
      expect(screen(text).map((l) => stripTime(l.replace(/\x1b\[[0-9;]*m/g, "")))).toEqual([
        "received x (100 B in 5ms) from aaaaaaaa"
      ])
    }))

  it.scoped("escapes control/bidi characters and cuts long paths to the width", () =>
    Effect.gen(function*() {
      const { out, writes } = fakeOut(80)
      const queue = yield* Queue.unbounded<NodeEvent>()
      const fiber = yield* Effect.fork(renderProgress(Stream.fromQueue(queue), out, { color: false }))
      const long = Array.from({ length: 20 }, (_, i) => `folder${i}`).join("/") + "/the-end.txt"
      yield* queue.offerAll([
        NodeEvent.TransferStarted({ path: "evil\u202egnp.exe\x1b[2J", peerId: A, bytes: 100, fetchBytes: 100 }),
        NodeEvent.TransferStarted({ path: long, peerId: A, bytes: 1000, fetchBytes: 1000 }),
        NodeEvent.TransferStarted({ path: "日本語/".repeat(20) + "ファイル.txt", peerId: A, bytes: 1000, fetchBytes: 1000 })
      ])
      yield* settle
      yield* TestClock.adjust("100 millis")
      const text = writes.join("")
      expect(text).not.toMatch(/[\u202e]|\x1b\[2J/)
      const shown = screen(text)
      expect(shown[0]).toMatch(/^  "evil\\u202egnp\.exe\\u001b\[2J"\s+0 B\/100 B/)
      expect(shown[1]).toMatch(/^  …[^ ]*\/the-end\.txt\s+0 B\/1000 B\s+0%\s+--\s+ETA --$/)
      expect(displayWidth(shown[1]!)).toBeLessThanOrEqual(79)
      expect(shown[2]).toMatch(/^  …[^ ]*ファイル\.txt\s+0 B/)
      expect(displayWidth(shown[2]!)).toBeLessThanOrEqual(79)
      expect(shown[3]).toBe("no peers connected | 3 downloading")
      yield* Fiber.interrupt(fiber)
      expect(screen(writes.join(""))).toEqual([])
    }))
})

describe("renderProgress under a real pseudo-terminal", () => {
  const repo = join(import.meta.dirname, "..")
  const built = join(repo, "dist", "cli", "Progress.js")
  const demo = join(repo, "test", "fixtures", "progress-demo.mjs")
  const hasScript = spawnSync("sh", ["-c", "command -v script"]).status === 0
  if (!hasScript) console.log("skipping the pseudo-terminal test: util-linux `script` is not installed")

  beforeAll(() => {
    if (!hasScript) return
    const source = join(repo, "src", "cli", "Progress.ts")
    // `npm test` builds dist/ first; build here when it is missing or older than the source.
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
      spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repo, stdio: "ignore" })
    }
  }, 180_000)

  it.skipIf(!hasScript)("draws with cursor movement on a tty and leaves the block cleared", () => {
    expect(existsSync(built)).toBe(true)
    const run = spawnSync("script", ["-qfec", `${JSON.stringify(process.execPath)} ${JSON.stringify(demo)}`, "/dev/null"], {
      cwd: repo,
      encoding: "utf8",
      timeout: 20_000,
      env: { ...process.env, TERM: "xterm" }
    })
    expect(run.status).toBe(0)
    const output = run.stdout
    expect(output).toContain("isTTY=true")
    expect(output).toMatch(/\x1b\[2A\r\x1b\[2K/) // in-place redraw of transfer + overall line
    expect(output).toMatch(/video\.mkv\s+\d+\.\d MiB\/8\.0 MiB\s+\d+%\s+[\d.]+ [KM]iB\/s\s+ETA \d+s/)
    // ends with the block erased (pty output turns \n into \r\n)
    expect(output).toMatch(/\x1b\[\d+A\r\x1b\[J$/)
    const shown = screen(output.replace(/\r\n/g, "\n"))
    expect(shown[0]).toBe("isTTY=true")
    expect(shown[1]).toBe("dsync demo · id cccccccc · folder /tmp/demo · listening on 127.0.0.1:9000")
    expect(shown.slice(2).map(stripTime)).toEqual([
      "connected to laptop (bbbbbbbb) at 10.0.0.2:9000",
      "received big/video.mkv (8.0 MiB in 1.6s) from laptop (bbbbbbbb)"
    ])
  })
})
