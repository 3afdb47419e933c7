/**
 * Paths received from peers: validated before any filesystem use, and resolved so
 * that nothing is written through a symlink that could lead out of the folder.
 */
import { Effect, Either } from "effect"
import { lstatSync } from "node:fs"
import { isAbsolute, join, relative, resolve, sep } from "node:path"
import { FsError, UnsafePath } from "../domain/Errors.js"

export const MAX_PATH_BYTES = 4096
export const MAX_SEGMENT_BYTES = 255

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8")

/**
 * Check a peer's path. Right: the same path (already canonical). Left: why it is refused.
 * An `Either` is a synchronous result and can also be `yield*`ed inside `Effect.gen`.
 *
 * Accepted: relative, `/`-separated, NFC, no empty / `.` / `..` segments, no control
 * characters or backslashes, no drive prefix, at most 4096 bytes and 255 bytes per
 * segment, and not inside our own `.dsync/` state folder.
 */
export const validatePeerPath = (p: string): Either.Either<string, UnsafePath> => {
  const refuse = (reason: string) => Either.left(new UnsafePath({ path: p, reason }))
  if (p.length === 0) return refuse("empty path")
  if (utf8Length(p) > MAX_PATH_BYTES) return refuse(`longer than ${MAX_PATH_BYTES} bytes`)
  if (/[\u0000-\u001f\u007f]/.test(p)) return refuse("contains a NUL or control character")
  if (p.includes("\\")) return refuse("contains a backslash")
  if (p.startsWith("/")) return refuse("absolute path")
  if (/^[A-Za-z]:/.test(p)) return refuse("drive-letter path")
  if (p !== p.normalize("NFC")) return refuse("not in Unicode NFC form")
  const segments = p.split("/")
  for (const segment of segments) {
    if (segment === "") return refuse("empty path segment")
    if (segment === "." || segment === "..") return refuse(`'${segment}' segment`)
    if (utf8Length(segment) > MAX_SEGMENT_BYTES) return refuse(`a segment is longer than ${MAX_SEGMENT_BYTES} bytes`)
  }
  // Our index and trash live there; a peer writing into it would corrupt them.
  // Lower-cased because the folder may be on a case-insensitive filesystem.
  if (segments[0]!.toLowerCase() === ".dsync") return refuse("inside the .dsync state folder")
  return Either.right(p)
}

/**
 * Absolute target for peer path `rel` under `root`. Refused when `rel` is invalid or an
 * existing parent directory inside `root` is a symlink (it could point anywhere).
 * The final component may itself be a symlink: callers replace it, never follow it.
 * Parents that do not exist yet are fine (the caller creates them as real directories).
 */
export const resolveInside = (root: string, rel: string): Effect.Effect<string, UnsafePath | FsError> =>
  Effect.gen(function*() {
    const valid = yield* validatePeerPath(rel)
    const base = resolve(root)
    const segments = valid.split("/")
    let current = base
    for (const segment of segments.slice(0, -1)) {
      current = join(current, segment)
      const path = current
      // synchronous: a few microseconds per component, on the path of every file written
      const stats = yield* Effect.try({
        // Missing (or under a file): nothing below exists either, so no link is left to check.
        try: () => {
          try {
            return lstatSync(path, { throwIfNoEntry: false })
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOTDIR") return undefined
            throw e
          }
        },
        catch: (cause) => new FsError({ op: "lstat", path, cause })
      })
      if (stats === undefined) break
      if (stats.isSymbolicLink()) {
        return yield* new UnsafePath({ path: rel, reason: `parent '${relative(base, path)}' is a symlink` })
      }
    }
    return join(base, ...segments)
  })

/**
 * Native absolute path → `/`-separated NFC path relative to `root`;
 * `undefined` for `root` itself or a path outside it.
 */
export const toRelative = (root: string, absolutePath: string): string | undefined => {
  const rel = relative(resolve(root), resolve(absolutePath))
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined
  return rel.split(sep).join("/").normalize("NFC")
}
