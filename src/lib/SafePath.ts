/**
 * Paths received from peers: validated before any filesystem use (RootedFs then makes
 * sure no call on them goes through a symlink, whatever the disk holds at that moment).
 */
import * as Either from "effect/Either"
import { isAbsolute, relative, resolve, sep } from "node:path"
import { UnsafePath } from "../domain/Errors.js"

/** Longest path accepted from a peer, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096
/** Longest file or folder name accepted from a peer, in UTF-8 bytes (the usual filesystem limit). */
export const MAX_SEGMENT_BYTES = 255
/** Folders nested deeper than this are refused (each level costs a directory open per call). */
export const MAX_DEPTH = 64

/** The folder holding entry `rel` (folder-relative, `/`-separated): "" for a top-level entry. */
export const parentOf = (rel: string): string => rel.slice(0, Math.max(0, rel.lastIndexOf("/")))

/** Entry `name` of folder `dir` (folder-relative, "" for the top): `parentOf`'s inverse. */
export const childOf = (dir: string, name: string): string => (dir === "" ? name : `${dir}/${name}`)

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
  if (segments.length > MAX_DEPTH) return refuse(`more than ${MAX_DEPTH} levels deep`)
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
 * Native absolute path → `/`-separated NFC path relative to `root`;
 * `undefined` for `root` itself or a path outside it.
 */
export const toRelative = (root: string, absolutePath: string): string | undefined => {
  const rel = relative(resolve(root), resolve(absolutePath))
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined
  return rel.split(sep).join("/").normalize("NFC")
}
