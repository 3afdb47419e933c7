import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { printable, showPath } from "../src/lib/Printable.js"
import { RootedFs } from "../src/lib/RootedFs.js"
import { numbered } from "../src/programs/Trash.js"

const scratch = () => {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "dsync-rooted-")))
  fs.mkdirSync(path.join(base, "root"))
  fs.mkdirSync(path.join(base, "outside"))
  fs.writeFileSync(path.join(base, "outside", "secret"), "outside secret")
  return { base, root: path.join(base, "root"), outside: path.join(base, "outside"), done: () => fs.rmSync(base, { recursive: true, force: true }) }
}

const code = (f: () => unknown) => {
  try {
    f()
    return "ok"
  } catch (e) {
    return (e as NodeJS.ErrnoException).code
  }
}

describe("RootedFs: no call leaves the folder", () => {
  it("creates, renames, links and reads real paths inside the folder", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      const fd = disk.createExclusive("a/b/new.txt", 0o600)
      fs.writeSync(fd, "hello")
      fs.closeSync(fd)
      expect(fs.readFileSync(path.join(t.root, "a/b/new.txt"), "utf8")).toBe("hello")
      expect(disk.readBlock("a/b/new.txt", 1, 3).toString()).toBe("ell")
      disk.rename("a/b/new.txt", "a/b/same-folder.txt")
      disk.rename("a/b/same-folder.txt", "a/moved.txt")
      expect(disk.lstat("a/moved.txt")?.isFile()).toBe(true)
      expect(disk.lstat("a/b/new.txt")).toBeUndefined()
      expect(disk.linkUnique("a/moved.txt", (n) => (n === 0 ? "a/moved.txt" : `a/copy${n}.txt`))).toBe("a/copy1.txt")
      expect(disk.readdir("a").map((d) => d.name).sort()).toEqual(["b", "copy1.txt", "moved.txt"])
      disk.symlink("../outside", "link")
      expect(disk.readlink("link")).toBe("../outside")
      disk.mkdirs("x/y/z")
      disk.chmodDir("x/y", 0o700)
      expect(fs.statSync(path.join(t.root, "x/y")).mode & 0o777).toBe(0o700)
    } finally {
      t.done()
    }
  })

  it("refuses every call through a symlinked parent, and never follows a final link", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      fs.symlinkSync(t.outside, path.join(t.root, "d"))
      fs.symlinkSync(path.join(t.outside, "secret"), path.join(t.root, "f"))
      const before = fs.readdirSync(t.outside).sort()
      expect(disk.lstat("d/secret")).toBeUndefined() // not a path of this folder
      expect(disk.lstat("d")?.isSymbolicLink()).toBe(true)
      for (const call of [
        () => disk.createExclusive("d/authorized_keys", 0o600),
        () => disk.openRead("d/secret"),
        () => disk.readBlock("d/secret", 0, 10),
        () => disk.mkdirs("d/sub"),
        () => disk.symlink("/etc", "d/l"),
        () => disk.unlink("d/secret"),
        () => disk.rename("d/secret", "stolen"),
        () => disk.rename("d/secret", "d/renamed"), // both in one (linked) directory: one walk, still refused
        () => disk.linkNew("d/secret", "stolen"),
        () => disk.linkNew("d/secret", "d/linked"),
        () => disk.readdir("d"),
        () => disk.chmodDir("d", 0o777),
        () => disk.openRead("f") // a final link is not opened
      ]) expect(["ELOOP", "ENOTDIR"]).toContain(code(call))
      expect(fs.readdirSync(t.outside).sort()).toEqual(before)
      expect(fs.readFileSync(path.join(t.outside, "secret"), "utf8")).toBe("outside secret")
      expect(fs.existsSync(path.join(t.root, "stolen"))).toBe(false)
      // a rename over a link replaces the link itself
      const fd = disk.createExclusive("new", 0o600)
      fs.closeSync(fd)
      disk.rename("new", "f")
      expect(fs.lstatSync(path.join(t.root, "f")).isFile()).toBe(true)
      expect(fs.readFileSync(path.join(t.outside, "secret"), "utf8")).toBe("outside secret")
    } finally {
      t.done()
    }
  })

  it("refuses paths that could step out before touching the disk", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      for (const p of ["../outside/secret", "a/../../outside/secret", "/etc/passwd", "a//b", "./x", "nul\0"]) {
        expect(code(() => disk.openRead(p)), p).toBe("EINVAL")
      }
    } finally {
      t.done()
    }
  })

  it("linkNew never replaces an existing file", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      fs.writeFileSync(path.join(t.root, "a"), "A")
      fs.writeFileSync(path.join(t.root, "b"), "B")
      expect(code(() => disk.linkNew("a", "b"))).toBe("EEXIST")
      expect(fs.readFileSync(path.join(t.root, "b"), "utf8")).toBe("B")
    } finally {
      t.done()
    }
  })
})

describe("RootedFs: the folder's own descriptor", () => {
  const openFds = () => fs.readdirSync("/proc/self/fd").length

  it.runIf(fs.existsSync("/proc/self/fd"))("is opened once for many calls, and closed by close()", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      disk.mkdirs("a")
      const before = openFds()
      for (let i = 0; i < 200; i++) {
        fs.closeSync(disk.createExclusive(`a/f${i}`, 0o600))
        disk.lstat(`a/f${i}`)
        disk.rename(`a/f${i}`, `g${i}`)
      }
      expect(openFds()).toBe(before)
      disk.close()
      expect(openFds()).toBe(before - 1)
      expect(disk.lstat("g0")?.isFile()).toBe(true) // used again: opened again
      disk.close()
    } finally {
      t.done()
    }
  })

  it("follows a folder replaced while in use, within a second; a call in flight keeps the old one open", async () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      fs.writeFileSync(path.join(t.root, "old.txt"), "in the first folder")
      expect(disk.lstat("old.txt")?.isFile()).toBe(true)
      const held = disk.holdFolder("")! // a call in flight holds the first folder open
      fs.renameSync(t.root, path.join(t.base, "moved"))
      fs.mkdirSync(t.root)
      fs.closeSync(fs.openSync(held.at("made-in-old.txt"), "wx"))
      held.close()
      expect(fs.existsSync(path.join(t.base, "moved", "made-in-old.txt"))).toBe(true)
      await new Promise((r) => setTimeout(r, 1100))
      expect(disk.lstat("old.txt")).toBeUndefined()
      fs.closeSync(disk.createExclusive("new.txt", 0o600))
      expect(fs.existsSync(path.join(t.root, "new.txt"))).toBe(true)
      expect(fs.existsSync(path.join(t.base, "moved", "new.txt"))).toBe(false)
      disk.close()
    } finally {
      t.done()
    }
  })
})

describe("RootedFs.batch: folders walked once for a batch of calls", () => {
  const openFds = () => fs.readdirSync("/proc/self/fd").length

  it.runIf(fs.existsSync("/proc/self/fd"))("holds each folder once while it runs, at most 64, and lets go of all at its end", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      for (let d = 0; d < 100; d++) fs.mkdirSync(path.join(t.root, `d${d}`, "sub"), { recursive: true })
      for (let d = 0; d < 100; d++) fs.writeFileSync(path.join(t.root, `d${d}`, "sub", "f"), "x")
      disk.lstat("d0") // the folder's own descriptor, opened before counting
      const before = openFds()
      let during = 0
      const found = disk.batch(() => {
        const st = Array.from({ length: 100 }, (_, d) => disk.lstat(`d${d}/sub/f`))
        disk.rename("d1/sub/f", "d1/sub/g") // both names in one held folder
        during = openFds()
        // nested: runs within the outer batch
        return [...st, disk.batch(() => disk.lstat("d1/sub/g"))]
      })
      expect(found.every((st) => st?.isFile() === true)).toBe(true)
      expect(during - before).toBe(64)
      expect(openFds()).toBe(before)
      expect(fs.existsSync(path.join(t.root, "d1/sub/g"))).toBe(true)
      disk.close()
    } finally {
      t.done()
    }
  })

  it.runIf(fs.existsSync("/proc/self/fd"))("a folder held (holdFolder) during a batch is the caller's: it stays open after the batch", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      fs.mkdirSync(path.join(t.root, "d"))
      fs.writeFileSync(path.join(t.root, "d", "f"), "held")
      const held = disk.batch(() => {
        disk.lstat("d/f") // the batch holds d
        return disk.holdFolder("d")!
      })
      expect(fs.readFileSync(held.at("f"), "utf8")).toBe("held")
      held.close()
      disk.close()
    } finally {
      t.done()
    }
  })

  it("still refuses a symlinked parent inside a batch; a folder replaced by a link once it ended is walked afresh", () => {
    const t = scratch()
    try {
      const disk = new RootedFs(t.root)
      fs.symlinkSync(t.outside, path.join(t.root, "link"))
      fs.mkdirSync(path.join(t.root, "real"))
      disk.batch(() => {
        expect(disk.lstat("link/secret")).toBeUndefined()
        expect(code(() => disk.rename("real/x", "link/x"))).not.toBe("ok")
        expect(disk.lstat("real")?.isDirectory()).toBe(true)
      })
      // the batch is over: a folder replaced by a link now is walked afresh, and refused
      fs.rmdirSync(path.join(t.root, "real"))
      fs.symlinkSync(t.outside, path.join(t.root, "real"))
      expect(disk.batch(() => disk.lstat("real/secret"))).toBeUndefined()
      disk.close()
    } finally {
      t.done()
    }
  })
})

describe("printable: peer text in logs", () => {
  it("escapes controls, separators, bidi overrides and invisible format characters", () => {
    expect(printable("admin\u202egnp.exe")).toBe("admin\\u202egnp.exe")
    expect(printable("a\u2028b\u2029c\u0085d\u009be\u0000f\u001b[31mg\u200fh\u2066i\ufeffj")).toBe(
      "a\\u2028b\\u2029c\\u0085d\\u009be\\u0000f\\u001b[31mg\\u200fh\\u2066i\\ufeffj"
    )
    expect(printable("lone \ud800 surrogate")).toBe("lone \\ud800 surrogate")
    expect(printable("ünïcödé 日本 😀")).toBe("ünïcödé 日本 😀")
    expect(printable("quote\" and back\\slash")).toBe("quote\\\" and back\\\\slash")
  })

  it("quotes a path that was escaped or has spaces at its ends", () => {
    expect(showPath("docs/a b.txt")).toBe("docs/a b.txt")
    expect(showPath("x\ny")).toBe("\"x\\u000ay\"")
    expect(showPath(" lead")).toBe("\" lead\"")
  })
})

describe("numbered: second names for trash and conflict copies", () => {
  it("puts the number before the extension, never at the path's folder", () => {
    expect(numbered("a/b.txt", 0)).toBe("a/b.txt")
    expect(numbered("a/b.txt", 1)).toBe("a/b~1.txt")
    expect(numbered("a/b.tar.gz", 2)).toBe("a/b.tar~2.gz")
    expect(numbered("a.d/file", 3)).toBe("a.d/file~3")
    expect(numbered(".hidden", 1)).toBe(".hidden~1")
  })
})
