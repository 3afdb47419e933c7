import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { PART_DIR, PART_FILE, partName, placePart } from "../src/lib/PartFile.js"
import { RootedFs } from "../src/lib/RootedFs.js"
import { partFilesIn, tempDir } from "./support/fs.js"

/** A finished part file in the part folder of `root`, as a download leaves it. */
const finishedPart = (disk: RootedFs, content: string) => {
  const part = partName("sub/f.txt", "cafe")
  const fd = disk.createExclusive(part, 0o640)
  fs.writeSync(fd, content)
  fs.futimesSync(fd, new Date(), 1_000_000)
  fs.closeSync(fd)
  return part
}

/** `disk`, its renames out of the part folder failing as across two filesystems. */
const acrossFilesystems = (disk: RootedFs) => {
  const rename = disk.rename.bind(disk)
  disk.rename = (from, to) => {
    if (from.startsWith(`${PART_DIR}/`)) throw Object.assign(new Error("EXDEV: cross-device link not permitted"), { code: "EXDEV" })
    rename(from, to)
  }
  return disk
}

/** Can this process mount a tmpfs (root, with mount(8))? */
const canMount = (() => {
  try {
    return process.getuid?.() === 0 && execFileSync("sh", ["-c", "command -v mount"]).length > 0
  } catch {
    return false
  }
})()

describe("part files", () => {
  it("are made in the part folder, where the watcher does not look; a symlink's beside its target", () => {
    expect(partName("sub/f.txt", "cafe")).toMatch(/^\.dsync\/parts\/\.dsync-cafe-[0-9a-f]+\.part$/)
    expect(partName("sub/link", "0", "beside")).toMatch(/^sub\/\.dsync-0-[0-9a-f]+\.part$/)
    expect(partName("f.txt", "a") === partName("f.txt", "a")).toBe(false)
    // always a name the scanner and the watcher know as ours, whatever the tag
    for (const tag of ["cafe", "0", "not hex", ""]) expect(path.posix.basename(partName("d/f", tag, "beside"))).toMatch(PART_FILE)
  })

  it.live("placePart renames a finished part over its target", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const disk = new RootedFs(root)
      fs.mkdirSync(path.join(root, "sub"))
      fs.writeFileSync(path.join(root, "sub/f.txt"), "old")
      const part = finishedPart(disk, "new")
      const inode = fs.statSync(path.join(root, part)).ino
      expect(placePart(disk, part, "sub/f.txt")).toBeUndefined() // the part itself: its stat holds
      expect(fs.readFileSync(path.join(root, "sub/f.txt"), "utf8")).toBe("new")
      expect(fs.statSync(path.join(root, "sub/f.txt")).ino).toBe(inode)
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped))

  it.live("placePart across filesystems (EXDEV): a copy made beside the target, with the part's mode and mtime, goes in its place", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const disk = acrossFilesystems(new RootedFs(root))
      fs.mkdirSync(path.join(root, "sub"))
      fs.writeFileSync(path.join(root, "sub/f.txt"), "old")
      const part = finishedPart(disk, "new content")
      const st = placePart(disk, part, "sub/f.txt")
      const placed = fs.statSync(path.join(root, "sub/f.txt"))
      expect(fs.readFileSync(path.join(root, "sub/f.txt"), "utf8")).toBe("new content")
      expect({ mode: placed.mode & 0o777, mtime: placed.mtimeMs }).toEqual({ mode: 0o640, mtime: 1_000_000_000 })
      expect({ ino: st?.ino, mtime: st?.mtimeMs }).toEqual({ ino: placed.ino, mtime: placed.mtimeMs }) // what the index keeps
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped))

  it.live("placePart across filesystems that cannot finish leaves the target as it was and no copy", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const disk = acrossFilesystems(new RootedFs(root))
      fs.mkdirSync(path.join(root, "sub"))
      fs.mkdirSync(path.join(root, "sub/f.txt")) // a folder where the file goes: the copy cannot replace it
      fs.writeFileSync(path.join(root, "sub/f.txt/inside"), "kept")
      const part = finishedPart(disk, "new")
      expect(() => placePart(disk, part, "sub/f.txt")).toThrow()
      expect(fs.readFileSync(path.join(root, "sub/f.txt/inside"), "utf8")).toBe("kept")
      expect(partFilesIn(root)).toEqual([part]) // the part is its download's to remove
    }).pipe(Effect.scoped))

  it.live.skipIf(!canMount)("placePart into a folder mounted inside the synced one (a real EXDEV)", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const disk = new RootedFs(root)
      const mounted = path.join(root, "mnt")
      fs.mkdirSync(mounted)
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "dsync-test", mounted])
      yield* Effect.addFinalizer(() => Effect.sync(() => execFileSync("umount", [mounted])))
      const part = finishedPart(disk, "across")
      const st = placePart(disk, part, "mnt/f.txt")
      expect(fs.readFileSync(path.join(mounted, "f.txt"), "utf8")).toBe("across")
      expect(st?.ino).toBe(fs.statSync(path.join(mounted, "f.txt")).ino)
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped))
})
