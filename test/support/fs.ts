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

/** Files under `root` (relative paths → content), skipping .dsync and .dsyncignore. */
export const snapshot = (root: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name)
      const rel = path.relative(root, abs).split(path.sep).join("/")
      if (rel === ".dsync" || rel === ".dsyncignore") continue
      if (entry.isDirectory()) {
        out[rel + "/"] = ""
        walk(abs)
      } else if (entry.isSymbolicLink()) out[rel] = "-> " + fs.readlinkSync(abs)
      else out[rel] = fs.readFileSync(abs, "utf8")
    }
  }
  walk(root)
  return out
}
