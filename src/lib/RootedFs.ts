/**
 * Filesystem calls on folder-relative paths that cannot leave the folder, whatever
 * happens on disk between two calls. Containment by construction, not by a check that
 * can go stale: each call walks the path one directory at a time, opening every
 * component with O_NOFOLLOW | O_DIRECTORY relative to the one before (through Linux's
 * `/proc/self/fd/N/name`, which is openat(2) for Node), and then acts on the last name
 * inside that directory handle. A symlink anywhere in the parents fails the call
 * (ELOOP / ENOTDIR) at the moment it is made; the last component is never followed
 * either (rename, link, unlink, symlink and lstat act on a link itself; opens use
 * O_NOFOLLOW; modes and times are set through the open descriptor).
 *
 * Where `/proc/self/fd` is missing (macOS, Windows) each parent is lstat'ed just before
 * the call instead: the window left open is microseconds long and only a local process
 * can use it, not a peer (every peer-driven change runs under the path's lock).
 *
 * Everything here is synchronous on purpose: metadata calls take microseconds, less
 * than a thread-pool round trip, and several run per file synced.
 */
import * as fs from "node:fs"
import type { Dirent, Stats } from "node:fs"
import * as path from "node:path"
import { parentOf } from "./SafePath.js"

const C = fs.constants
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW
/** A new file, never an existing one, never through a link. */
const CREATE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW
const PROC_FD = "/proc/self/fd"
/** Folders a `batch` holds at most (descriptors); past them, calls open their own. */
const BATCH_DIRS = 64

/** Can we reach a descriptor's directory by path (openat emulation)? Checked once. */
const procFdWorks = (() => {
  try {
    const fd = fs.openSync(".", C.O_RDONLY | C.O_DIRECTORY)
    try {
      return fs.statSync(`${PROC_FD}/${fd}/.`).isDirectory()
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return false
  }
})()

const errno = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: ${message}`), { code })

/** The path's segments; anything that could step outside (`..`, absolute, NUL) is refused. */
const segmentsOf = (rel: string): Array<string> => {
  if (rel === "") return []
  const segments = rel.split("/")
  for (const s of segments) {
    if (s === "" || s === "." || s === ".." || s.includes("\0") || s.includes(path.sep)) {
      throw errno("EINVAL", `not a folder-relative path: ${JSON.stringify(rel)}`)
    }
  }
  return segments
}

const sameFile = (a: Stats, b: Stats) => a.dev === b.dev && a.ino === b.ino

/** True for the errors meaning "nothing (real) is there": missing, under a file, or under a link. */
export const isAbsent = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  return code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP"
}

/** A directory inside the folder, held open while a call uses it; `at(name)` names an entry in it. */
interface DirRef {
  readonly at: (name: string) => string
  readonly close: () => void
}

/** The folder itself, held open: `users` walks start from it now; a replaced one is closed once they are done. */
interface RootHandle {
  readonly fd: number
  users: number
  retired: boolean
}

/**
 * How long the folder's own descriptor is used before its path is looked up again: a
 * folder moved or replaced is followed within this long. Opening it for every call was
 * a third of each call's cost (a path walk and a descriptor; 18 opens per file received).
 */
const ROOT_RECHECK_MS = 1000

/** Filesystem calls on `/`-separated paths relative to `root` that cannot leave it (see above). */
export class RootedFs {
  private rootHandle: RootHandle | undefined
  private rootCheckedAt = 0
  /** Folders held during `batch`, by path. */
  private batchDirs: Map<string, DirRef> | undefined

  constructor(
    /** Absolute path of the folder (the folder itself may be reached through links: the user chose it). */
    readonly root: string
  ) {}

  /** Close the folder's descriptor (once no call uses it); a later call opens it again. */
  close(): void {
    const handle = this.rootHandle
    this.rootHandle = undefined
    if (handle) this.retire(handle)
  }

  private retire(handle: RootHandle): void {
    handle.retired = true
    if (handle.users === 0) fs.closeSync(handle.fd)
  }

  /** The folder's descriptor, for one walk (`releaseRoot` after): opened again when stale or replaced. */
  private acquireRoot(): RootHandle {
    const now = Date.now()
    if (this.rootHandle === undefined || now - this.rootCheckedAt >= ROOT_RECHECK_MS) {
      const fd = fs.openSync(this.root, C.O_RDONLY | C.O_DIRECTORY)
      const held = this.rootHandle
      if (held !== undefined && sameFile(fs.fstatSync(held.fd), fs.fstatSync(fd))) {
        fs.closeSync(fd)
      } else {
        // a descriptor still in use is never closed under its user: its number could be reused
        if (held !== undefined) this.retire(held)
        this.rootHandle = { fd, users: 0, retired: false }
      }
      this.rootCheckedAt = now
    }
    const handle = this.rootHandle!
    handle.users++
    return handle
  }

  private releaseRoot(handle: RootHandle): void {
    if (--handle.users === 0 && handle.retired) fs.closeSync(handle.fd)
  }

  /**
   * Run `f`, synchronous, with each folder its calls walk to opened once and held until
   * it returns: a batch of calls in a few folders (the commit of received files, a
   * recheck's lstats) walks each once, not once per call (a third of each call's cost).
   * Every call is still contained as it is made: the walk is the same, and nothing is
   * held beyond this one synchronous step. `f` must not remove or replace folders.
   */
  batch<A>(f: () => A): A {
    if (this.batchDirs !== undefined || !procFdWorks) return f()
    const dirs = this.batchDirs = new Map<string, DirRef>()
    try {
      return f()
    } finally {
      this.batchDirs = undefined
      for (const dir of dirs.values()) dir.close()
    }
  }

  /** Open directory `rel` (every component a real directory); `create` makes missing ones. */
  private openDir(segments: ReadonlyArray<string>, create: boolean): DirRef {
    if (!procFdWorks) return this.openDirByCheck(segments, create)
    const dirs = this.batchDirs
    if (dirs === undefined) return this.openDirByFd(segments, create)
    const key = segments.join("/")
    let dir = dirs.get(key)
    if (dir === undefined) {
      dir = this.openDirByFd(segments, create)
      if (dirs.size >= BATCH_DIRS) return dir // descriptors stay bounded: this one is the caller's to close
      dirs.set(key, dir)
    }
    return { at: dir.at, close: () => {} } // closed when the batch ends
  }

  private openDirByFd(segments: ReadonlyArray<string>, create: boolean): DirRef {
    const root = this.acquireRoot()
    let fd = root.fd
    try {
      for (const segment of segments) {
        const entry = `${PROC_FD}/${fd}/${segment}`
        let next: number
        try {
          next = fs.openSync(entry, DIR_FLAGS)
        } catch (e) {
          if (!create || (e as NodeJS.ErrnoException).code !== "ENOENT") throw e
          try {
            fs.mkdirSync(entry, 0o755)
          } catch (m) {
            if ((m as NodeJS.ErrnoException).code !== "EEXIST") throw m
          }
          next = fs.openSync(entry, DIR_FLAGS)
        }
        if (fd !== root.fd) fs.closeSync(fd)
        fd = next
      }
    } catch (e) {
      if (fd !== root.fd) fs.closeSync(fd)
      this.releaseRoot(root)
      throw e
    }
    const dir = `${PROC_FD}/${fd}`
    if (fd === root.fd) return { at: (name) => `${dir}/${name}`, close: () => this.releaseRoot(root) }
    this.releaseRoot(root) // a directory inside holds on by itself
    return { at: (name) => `${dir}/${name}`, close: () => fs.closeSync(fd) }
  }

  private openDirByCheck(segments: ReadonlyArray<string>, create: boolean): DirRef {
    let current = this.root
    for (const segment of segments) {
      current = path.join(current, segment)
      const st = fs.lstatSync(current, { throwIfNoEntry: false })
      if (st === undefined && create) fs.mkdirSync(current, 0o755)
      else if (st === undefined) throw errno("ENOENT", current)
      else if (st.isSymbolicLink()) throw errno("ELOOP", `${current} is a symlink`)
      else if (!st.isDirectory()) throw errno("ENOTDIR", current)
    }
    const dir = current
    return { at: (name) => path.join(dir, name), close: () => {} }
  }

  /** Run `f` on the entry `rel`, its parent held open (and created first when `create`). */
  private inParent<A>(rel: string, f: (entry: string) => A, create = false): A {
    const { dir, name } = this.openParent(rel, create)
    try {
      return f(dir.at(name))
    } finally {
      dir.close()
    }
  }

  /**
   * Run `f` on entries `from` and `to`, their parents held open (`to`'s made first): one
   * walk when both are in the same directory (a symlink's part file and its target are).
   */
  private inParents<A>(from: string, to: string, f: (source: string, target: string) => A): A {
    if (parentOf(from) !== parentOf(to)) return this.inParent(from, (source) => this.inParent(to, (target) => f(source, target), true))
    const { dir, name } = this.openParent(from, false)
    try {
      return f(dir.at(name), dir.at(segmentsOf(to).pop()!))
    } finally {
      dir.close()
    }
  }

  /** The parent of entry `rel`, held open (the caller closes it), and the entry's name in it. */
  private openParent(rel: string, create: boolean): { readonly dir: DirRef; readonly name: string } {
    const segments = segmentsOf(rel)
    const name = segments.pop()
    if (name === undefined) throw errno("EINVAL", "the folder itself is not an entry")
    return { dir: this.openDir(segments, create), name }
  }

  /** lstat, or undefined when nothing is there, or it is only reachable through a link or a file. */
  lstat(rel: string): Stats | undefined {
    if (rel === "") return fs.statSync(this.root)
    try {
      return this.inParent(rel, (entry) => fs.lstatSync(entry, { throwIfNoEntry: false }))
    } catch (e) {
      if (isAbsent(e)) return undefined
      throw e
    }
  }

  readdir(rel: string): Array<Dirent> {
    const dir = this.openDir(segmentsOf(rel), false)
    try {
      return fs.readdirSync(dir.at("."), { withFileTypes: true })
    } finally {
      dir.close()
    }
  }

  readlink(rel: string): string {
    return this.inParent(rel, (entry) => fs.readlinkSync(entry))
  }

  /**
   * Folder `rel` held open, its entries named by paths that stay inside it whatever is
   * renamed meanwhile and that another thread can open (`/proc/self/fd/N/name`); only
   * where such paths work (Linux), else undefined. The caller closes it. Never one a
   * `batch` holds: that one is closed when the batch returns, and this one outlives it.
   */
  holdFolder(rel: string): { readonly at: (name: string) => string; readonly close: () => void } | undefined {
    return procFdWorks ? this.openDirByFd(segmentsOf(rel), false) : undefined
  }

  /** A descriptor for reading the regular file `rel`; a link there fails (ELOOP), never followed. */
  openRead(rel: string): number {
    return this.inParent(rel, (entry) => fs.openSync(entry, C.O_RDONLY | C.O_NOFOLLOW))
  }

  /** Read `size` bytes at `offset` of `rel` (fewer when the file is shorter). */
  readBlock(rel: string, offset: number, size: number): Buffer {
    const fd = this.openRead(rel)
    try {
      const buffer = Buffer.allocUnsafe(size)
      return buffer.subarray(0, fs.readSync(fd, buffer, 0, size, offset))
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Create a new file `rel` for writing (never an existing one, never through a link); parents are made unless `makeParents` is false. */
  createExclusive(rel: string, mode: number, makeParents = true): number {
    return this.inParent(rel, (entry) => fs.openSync(entry, CREATE_FLAGS, mode), makeParents)
  }

  /** Make directory `rel` and any missing parents (all real directories). */
  mkdirs(rel: string): void {
    this.openDir(segmentsOf(rel), true).close()
  }

  /** Set a directory's permission bits through a descriptor (chmod by path would follow a link). */
  chmodDir(rel: string, mode: number): void {
    const dir = this.openDir(segmentsOf(rel), false)
    try {
      fs.chmodSync(dir.at("."), mode)
    } finally {
      dir.close()
    }
  }

  rmdir(rel: string): void {
    this.inParent(rel, (entry) => fs.rmdirSync(entry))
  }

  unlink(rel: string): void {
    this.inParent(rel, (entry) => fs.unlinkSync(entry))
  }

  symlink(target: string, rel: string): void {
    this.inParent(rel, (entry) => fs.symlinkSync(target, entry), true)
  }

  /** Rename `from` to `to` (replacing `to` if it is a file or link); neither is followed. */
  rename(from: string, to: string): void {
    this.inParents(from, to, (source, target) => fs.renameSync(source, target))
  }

  /**
   * A second name for `from` at `to`, which must not exist (EEXIST): never replaces
   * anything. A link is linked as a link. Filesystems without hard links get a copy.
   */
  linkNew(from: string, to: string): void {
    this.inParents(from, to, (source, target) => {
      try {
        fs.linkSync(source, target)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EXDEV") throw e
        if (fs.lstatSync(source).isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(source), target)
        else fs.copyFileSync(source, target, C.COPYFILE_EXCL)
      }
    })
  }

  /**
   * `linkNew` to the first free name of `nameFor(0)`, `nameFor(1)`, ...: an existing
   * file is never replaced. Returns the name used.
   */
  linkUnique(from: string, nameFor: (attempt: number) => string, attempts = 1000): string {
    for (let attempt = 0; ; attempt++) {
      const to = nameFor(attempt)
      try {
        this.linkNew(from, to)
        return to
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt + 1 >= attempts) throw e
      }
    }
  }
}
