import { createHash } from "node:crypto"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** A fresh temporary folder, removed when the scope closes. */
export const tempDir = (prefix = "dsync-test-") =>
  Effect.acquireRelease(
    Effect.sync(() => fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Poll `check` every 20 ms until it returns true; fail after `timeoutMs`. */
export const eventually = (what: string, check: () => boolean, timeoutMs = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for: ${what}`))
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
    }
  })

export const readOr = (file: string, fallback = "<missing>") => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return fallback
  }
}

export const sha256File = (file: string): string => {
  const hash = createHash("sha256")
  const fd = fs.openSync(file, "r")
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      hash.update(buf.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest("hex")
}

/**
 * Visit everything under `root` (depth first, links not followed), with its path
 * relative to `root` (`/`-separated). `visit` returning false skips a folder's contents.
 * A folder that vanishes meanwhile (a sync moved it) is skipped, not an error.
 */
export const walkTree = (root: string, visit: (entry: fs.Dirent, abs: string, rel: string) => boolean | void) => {
  const walk = (dir: string, relDir: string) => {
    let entries: Array<fs.Dirent>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const entry of entries) {
      const abs = path.join(dir, entry.name)
      const rel = relDir === "" ? entry.name : `${relDir}/${entry.name}`
      if (visit(entry, abs, rel) !== false && entry.isDirectory()) walk(abs, rel)
    }
  }
  walk(root, "")
}

/** Part files (`*.part`, a download's or a symlink's) anywhere under `root` but the trash: beside their targets, or in `.dsync/parts`. */
export const partFilesIn = (root: string): Array<string> => {
  const found: Array<string> = []
  walkTree(root, (entry, _abs, rel) => {
    if (rel === ".dsync/trash") return false
    if (!entry.isDirectory() && entry.name.endsWith(".part")) found.push(rel)
  })
  return found
}

export interface TreeEntry {
  readonly kind: "dir" | "file" | "symlink" | "other"
  readonly size?: number
  readonly sha256?: string
  /** Permission bits of files (mode & 0o777). */
  readonly mode?: string
  readonly target?: string
}

/**
 * Everything under `root` by relative `/` path, skipping `.dsync/` and `.dsyncignore`.
 * `hash: false` skips the file hashes: cheap enough to poll.
 */
export const describeTree = (root: string, { hash = true } = {}): Record<string, TreeEntry> => {
  const out: Record<string, TreeEntry> = {}
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name)
      const rel = path.relative(root, abs).split(path.sep).join("/")
      if (rel === ".dsync" || rel === ".dsyncignore") continue
      if (entry.isSymbolicLink()) out[rel] = { kind: "symlink", target: fs.readlinkSync(abs) }
      else if (entry.isDirectory()) {
        out[rel] = { kind: "dir" }
        walk(abs)
      } else if (entry.isFile()) {
        const st = fs.statSync(abs)
        const mode = (st.mode & 0o777).toString(8)
        out[rel] = hash ? { kind: "file", size: st.size, sha256: sha256File(abs), mode } : { kind: "file", size: st.size, mode }
      } else out[rel] = { kind: "other" }
    }
  }
  walk(root)
  return out
}

/** A folder and, beside it, an "outside" folder holding a secret; the tree outside is snapshotted. */
export const folderWithOutside = Effect.gen(function*() {
  const parent = yield* tempDir()
  const root = path.join(parent, "folder")
  const outside = path.join(parent, "outside")
  fs.mkdirSync(root)
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(outside, "secret"), "the user's private key")
  fs.writeFileSync(path.join(outside, "authorized_keys"), "the user's keys")
  return { parent, root, outside, snapshot: () => JSON.stringify(describeTree(outside)) }
})
