// End to end: two real `dsync` processes on loopback, discovery off, syncing temp folders.
// SAFETY: dsync runs only with `--no-discovery -a 127.0.0.1:PORT`; no multicast, no other address.
// Skipped when dist/dsync.mjs is missing (`npm test` builds first).
import { createCipheriv } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  describeTree,
  type DsyncProcess,
  freePorts,
  logsOf,
  mainJs,
  partFilesIn,
  sha256File,
  startDsync,
  stopAll,
  type TreeEntry,
  waitUntil
} from "./support/proc.js"

const BIG_MIB = 50
const SYNC_TIMEOUT = 20_000

/** `size` bytes of deterministic noise (AES-128-CTR over zeros), written 1 MiB at a time. */
const writeNoise = (file: string, size: number, seed: number) => {
  const key = Buffer.alloc(16, seed)
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16, 0))
  const zeros = Buffer.alloc(1 << 20)
  const fd = fs.openSync(file, "w")
  try {
    for (let left = size; left > 0; left -= zeros.length) {
      fs.writeSync(fd, cipher.update(zeros.subarray(0, Math.min(left, zeros.length))))
    }
  } finally {
    fs.closeSync(fd)
  }
}

const write = (root: string, rel: string, content: string, mode?: number) => {
  const abs = path.join(root, rel)
  fs.mkdirSync(path.dirname(abs), { recursive: true })
  fs.writeFileSync(abs, content)
  if (mode !== undefined) fs.chmodSync(abs, mode)
}

const readOr = (file: string) => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

/** Paths, kinds, sizes and modes only: cheap enough to poll. */
const shape = (tree: Record<string, TreeEntry>) =>
  Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, `${v.kind}:${v.size ?? ""}:${v.mode ?? ""}`]))

/** Paths, kinds, sizes and modes, without hashing: cheap enough to poll. */
const shallowTree = (root: string) => shape(describeTree(root, { hash: false }))

describe.skipIf(!fs.existsSync(mainJs))("dsync end to end (two processes on 127.0.0.1)", { timeout: 120_000 }, () => {
  let tmp = ""
  let dirA = ""
  let dirB = ""
  let configHome = ""
  let a: DsyncProcess | undefined
  let b: DsyncProcess | undefined
  const others: Array<DsyncProcess> = []
  const blockers: Array<net.Server> = []
  const logs = () => logsOf(a, b)

  beforeAll(async () => {
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-e2e-")))
    dirA = path.join(tmp, "A")
    dirB = path.join(tmp, "B")
    configHome = path.join(tmp, "xdg")
    for (const d of [dirA, dirB, configHome]) fs.mkdirSync(d)

    // A: nested folders, small files, an empty folder, an executable, a 50 MiB file.
    write(dirA, "a/b/c/file.txt", "deep file\n")
    write(dirA, "a/x.txt", "x".repeat(1000))
    write(dirA, "docs/readme.md", "# readme\n")
    write(dirA, "docs/guide/intro.md", "intro\n".repeat(50))
    for (let i = 1; i <= 5; i++) write(dirA, `small-${i}.txt`, `small file ${i}\n`.repeat(i * 10))
    write(dirA, "bin/run.sh", "#!/bin/sh\necho hello\n", 0o755)
    fs.mkdirSync(path.join(dirA, "empty"))
    writeNoise(path.join(dirA, "big.bin"), BIG_MIB * 1024 * 1024, 7)
    // B: a couple of its own.
    write(dirB, "notes.md", "notes kept on B\n")
    write(dirB, "b-only/data.txt", "data from B\n".repeat(20))

    const [portA, portB] = await freePorts(2)
    a = startDsync({ folder: dirA, port: portA!, name: "node-a", peerPorts: [portB!], configHome, verbose: true })
    b = startDsync({ folder: dirB, port: portB!, name: "node-b", peerPorts: [portA!], configHome, verbose: true })
    const [lineA, lineB] = await Promise.all([a.startup(20_000), b.startup(20_000)])
    expect(lineA).toMatch(new RegExp(`^dsync node-a · id [0-9a-f]{8} · folder .*A · listening on .*:${portA}$`))
    expect(lineB).toMatch(new RegExp(`^dsync node-b · id [0-9a-f]{8} · folder .*B · listening on .*:${portB}$`))
  }, 60_000)

  afterAll(async () => {
    try {
      await stopAll([a, b, ...others], 3_000)
      await Promise.all(blockers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
    }
  }, 30_000)

  it("initial sync makes both trees identical", async () => {
    await Promise.all([a!.waitForLog("connected to node-b", 20_000), b!.waitForLog("connected to node-a", 20_000)])
    // Poll the cheap shape first, then hash once it matches.
    const deadline = Date.now() + 60_000
    for (;;) {
      await waitUntil(
        "same paths, sizes and modes in A and B",
        () => JSON.stringify(shallowTree(dirA)) === JSON.stringify(shallowTree(dirB)),
        Math.max(1, deadline - Date.now()),
        () => `A: ${JSON.stringify(shallowTree(dirA))}\nB: ${JSON.stringify(shallowTree(dirB))}\n${logs()}`,
        100
      )
      const treeA = describeTree(dirA)
      const treeB = describeTree(dirB)
      if (JSON.stringify(treeA) === JSON.stringify(treeB) || Date.now() > deadline) {
        expect(treeB).toEqual(treeA)
        break
      }
    }
    const treeB = describeTree(dirB)
    expect(Object.keys(treeB).sort()).toEqual(
      [
        "a",
        "a/b",
        "a/b/c",
        "a/b/c/file.txt",
        "a/x.txt",
        "b-only",
        "b-only/data.txt",
        "big.bin",
        "bin",
        "bin/run.sh",
        "docs",
        "docs/guide",
        "docs/guide/intro.md",
        "docs/readme.md",
        "empty",
        "notes.md",
        "small-1.txt",
        "small-2.txt",
        "small-3.txt",
        "small-4.txt",
        "small-5.txt"
      ].sort()
    )
    expect(treeB["empty"]).toEqual({ kind: "dir" })
    expect(treeB["bin/run.sh"]!.mode).toBe("755")
    expect(treeB["big.bin"]!.size).toBe(BIG_MIB * 1024 * 1024)
    expect(sha256File(path.join(dirB, "big.bin"))).toBe(sha256File(path.join(dirA, "big.bin")))
    await b!.waitForLog(/received: big\.bin \(52428800 bytes\b/, 5_000)
  })

  it("propagates live changes both ways", async () => {
    const sameText = (root: string, rel: string, text: string) => () => readOr(path.join(root, rel)) === text
    const gone = (root: string, rel: string) => () => !fs.existsSync(path.join(root, rel))
    const step = (what: string, check: () => boolean) => waitUntil(what, check, SYNC_TIMEOUT, logs)

    // create in A → B
    write(dirA, "created-in-a.txt", "hello from A\n")
    await step("created-in-a.txt in B", sameText(dirB, "created-in-a.txt", "hello from A\n"))

    // modify in B → A
    write(dirB, "a/x.txt", "changed on B, shorter\n")
    await step("a/x.txt modified in A", sameText(dirA, "a/x.txt", "changed on B, shorter\n"))

    // delete in A → B
    fs.rmSync(path.join(dirA, "small-2.txt"))
    await step("small-2.txt deleted in B", gone(dirB, "small-2.txt"))

    // rename in B → A
    fs.renameSync(path.join(dirB, "notes.md"), path.join(dirB, "notes-renamed.md"))
    await step(
      "notes.md renamed in A",
      () => sameText(dirA, "notes-renamed.md", "notes kept on B\n")() && gone(dirA, "notes.md")()
    )

    // new nested folder with a file in A → B
    write(dirA, "new/deep/dir/inside.txt", "inside a new folder\n")
    await step("new/deep/dir/inside.txt in B", sameText(dirB, "new/deep/dir/inside.txt", "inside a new folder\n"))

    // folder removed in B → A
    fs.rmSync(path.join(dirB, "docs"), { recursive: true })
    await step("docs/ removed in A", gone(dirA, "docs"))

    // and everything agrees at the end
    await waitUntil(
      "A and B identical after live changes",
      () => JSON.stringify(describeTree(dirA)) === JSON.stringify(describeTree(dirB)),
      SYNC_TIMEOUT,
      () => `A: ${JSON.stringify(shape(describeTree(dirA)))}\nB: ${JSON.stringify(shape(describeTree(dirB)))}\n${logs()}`,
      200
    )
    expect(describeTree(dirB)["new/deep/dir/inside.txt"]).toBeDefined()
    expect(describeTree(dirA)["docs"]).toBeUndefined()
  })

  it("SIGINT: both exit 0 within 2 s and leave no *.part files", async () => {
    const [stopA, stopB] = await Promise.all([a!.stop(5_000, "SIGINT"), b!.stop(5_000, "SIGINT")])
    const summary = `A: ${JSON.stringify(stopA)} B: ${JSON.stringify(stopB)}\n${logs()}`
    expect(stopA.killed, summary).toBe(false)
    expect(stopB.killed, summary).toBe(false)
    expect(stopA.code, summary).toBe(0)
    expect(stopB.code, summary).toBe(0)
    expect(stopA.ms, summary).toBeLessThan(2_000)
    expect(stopB.ms, summary).toBeLessThan(2_000)
    expect([...partFilesIn(dirA), ...partFilesIn(dirB)]).toEqual([])
  })

  it("a port already in use: exits non-zero with one `dsync:` line on stderr", async () => {
    const [port, peerPort] = await freePorts(2)
    const blocker = net.createServer()
    blockers.push(blocker)
    await new Promise<void>((resolve, reject) => {
      blocker.once("error", reject)
      blocker.listen(port!, "127.0.0.1", () => resolve())
    })
    const folder = path.join(tmp, "C")
    fs.mkdirSync(folder)
    const c = startDsync({ folder, port: port!, name: "node-c", peerPorts: [peerPort!], configHome })
    others.push(c)
    const exit = await Promise.race([c.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 15_000))])
    const details = `stdout: ${c.stdout()}\nstderr: ${c.stderr()}`
    expect(exit, details).not.toBe("timeout")
    if (exit === "timeout") return
    expect(exit.code, details).not.toBe(0)
    expect(exit.code, details).not.toBeNull()
    expect(c.stdout(), details).not.toMatch(/listening on/)
    const errorLines = c.stderr().split("\n").filter((l) => l.startsWith("dsync:"))
    expect(errorLines, details).toHaveLength(1)
    expect(errorLines[0], details).toMatch(new RegExp(`${port}|in use`, "i"))
    expect(c.stderr(), details).not.toMatch(/^\s+at /m)
  })

  it("SIGINT in the middle of a download: exit 0 within 2 s, partial file removed, target untouched", async () => {
    const [portD, portE] = await freePorts(2)
    const dirD = path.join(tmp, "D")
    const dirE = path.join(tmp, "E")
    fs.mkdirSync(dirD)
    fs.mkdirSync(dirE)
    writeNoise(path.join(dirD, "large.bin"), 400 * 1024 * 1024, 3)
    const d = startDsync({ folder: dirD, port: portD!, name: "node-d", peerPorts: [], configHome })
    others.push(d)
    await d.startup(30_000)
    const e = startDsync({ folder: dirE, port: portE!, name: "node-e", peerPorts: [portD!], configHome })
    others.push(e)
    await waitUntil("E to start downloading", () => partFilesIn(dirE).length > 0, 30_000)
    const stopped = await e.stop(5_000, "SIGINT")
    const details = `${JSON.stringify(stopped)}\n${logsOf(d, e)}`
    expect(stopped.killed, details).toBe(false)
    expect(stopped.code, details).toBe(0)
    expect(stopped.ms, details).toBeLessThan(2_000)
    expect(partFilesIn(dirE), details).toEqual([])
    expect(fs.existsSync(path.join(dirE, "large.bin")), details).toBe(false)
  }, 120_000)
})
