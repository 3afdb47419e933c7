/**
 * Which paths are not synced: `.dsyncignore` (glob syntax, created with the seed's
 * defaults on first run), `-e/--exclude` patterns, and the always-ignored ones.
 *
 * Pattern rules (paths are relative, `/`-separated):
 * - no `/` (except a trailing one): matches a segment name at any depth (`*.log`, `.git`);
 * - with a `/`: matches from the folder root (`build/out`, `.git/**`, `docs/*.md`;
 *   a leading `/` is allowed and only anchors);
 * - a trailing `/`: directories only (`build/`);
 * - anything inside an ignored directory is ignored;
 * - `!negation` is not supported: such patterns are skipped and reported.
 */
import * as Effect from "effect/Effect"
import { readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import picomatch from "picomatch/posix.js"
import { FsError } from "../domain/Errors.js"

/** The ignore file's name, at the folder root. */
export const IGNORE_FILE_NAME = ".dsyncignore"

/** Written to `<root>/.dsyncignore` on first run (the seed README's defaults). */
export const DEFAULT_IGNORE_FILE = `# dsyncignore - files and patterns listed here will not be synced
# Uses glob syntax. Lines starting with # are comments.
# Version control
.git
.git/**
# Dependencies
node_modules
node_modules/**
# OS files
.DS_Store
# Temporary files
*.tmp
*.part
`

/** Never synced, whatever the ignore file says: partial downloads, the ignore file, our state folder. */
export const ALWAYS_IGNORED: ReadonlyArray<string> = ["*.part", IGNORE_FILE_NAME, ".dsync"]

/** `(relPath, isDir) => ignored?` */
export type Matcher = (relPath: string, isDir: boolean) => boolean

/** A parsed ignore file: the patterns to use, and the lines skipped. */
export interface IgnoreFile {
  readonly patterns: ReadonlyArray<string>
  /** Lines we could not use, for the log (e.g. `line 4: !keep.log: negation is not supported`). */
  readonly unsupported: ReadonlyArray<string>
}

const isNegation = (pattern: string) => pattern.startsWith("!")

/** Patterns of an ignore file: no comments (`#` at line start), blank lines or trailing whitespace. */
export const parseIgnoreFile = (text: string): IgnoreFile => {
  const patterns: Array<string> = []
  const unsupported: Array<string> = []
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd() // also drops the \r of CRLF files
    if (line === "" || line.startsWith("#")) return
    if (isNegation(line)) unsupported.push(`line ${i + 1}: ${line}: negation is not supported`)
    else patterns.push(line)
  })
  return { patterns, unsupported }
}

/** Compile patterns (rules above) into a Matcher; negations are skipped. */
export const makeMatcher = (patterns: ReadonlyArray<string>): Matcher => {
  const byName: Array<string> = []
  const byNameDir: Array<string> = []
  const byPath: Array<string> = []
  const byPathDir: Array<string> = []
  for (const p of patterns) {
    if (isNegation(p)) continue // reported by the caller; never turn it into "ignore everything but"
    const dirOnly = p.endsWith("/")
    const body = p.replace(/\/+$/, "")
    if (body === "") continue
    if (body.includes("/")) (dirOnly ? byPathDir : byPath).push(body.replace(/^\/+/, ""))
    else (dirOnly ? byNameDir : byName).push(body)
  }
  const compile = (globs: Array<string>) => picomatch(globs, { dot: true })
  const name = compile(byName)
  const nameDir = compile(byNameDir)
  const path = compile(byPath)
  const pathDir = compile(byPathDir)

  return (relPath, isDir) => {
    const segments = relPath.split("/")
    // Walk the ancestors from the root: an ignored directory hides everything below it.
    let prefix = ""
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!
      prefix = i === 0 ? segment : `${prefix}/${segment}`
      const dir = isDir || i < segments.length - 1
      if (name(segment) || path(prefix)) return true
      if (dir && (nameDir(segment) || pathDir(prefix))) return true
    }
    return false
  }
}

/**
 * The matcher for folder `root`: always-ignored + `.dsyncignore` + `excludes`. Creates
 * `.dsyncignore` with the defaults when absent (never overwrites one); logs unsupported lines.
 * Call again when `.dsyncignore` changes.
 */
export const loadIgnore = (root: string, excludes: ReadonlyArray<string>): Effect.Effect<Matcher, FsError> =>
  Effect.gen(function*() {
    const file = join(root, IGNORE_FILE_NAME)
    // "wx" creates only if absent, atomically: an existing file is left untouched.
    yield* Effect.tryPromise({
      try: () => writeFile(file, DEFAULT_IGNORE_FILE, { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e
      }),
      catch: (cause) => new FsError({ op: "create", path: file, cause })
    })
    const text = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (cause) => new FsError({ op: "read", path: file, cause })
    })
    const parsed = parseIgnoreFile(text)
    for (const problem of parsed.unsupported) yield* Effect.logWarning(`${file} ${problem}`)
    for (const e of excludes.filter(isNegation)) {
      yield* Effect.logWarning(`--exclude ${e}: negation is not supported`)
    }
    return makeMatcher([...ALWAYS_IGNORED, ...parsed.patterns, ...excludes])
  })
