import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ALWAYS_IGNORED, DEFAULT_IGNORE_FILE, loadIgnore, makeMatcher, parseIgnoreFile } from "../src/lib/Ignore.js"

const withTempDir = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "dsync-ignore-"))),
    use,
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

describe("parseIgnoreFile", () => {
  it("drops comments, blank lines and trailing whitespace; reports negation", () => {
    const parsed = parseIgnoreFile("# comment\n\n  \n*.log  \r\nbuild/\t\na#b\n!keep.log\n   # not a comment\n")
    expect(parsed.patterns).toEqual(["*.log", "build/", "a#b", "   # not a comment"])
    expect(parsed.unsupported).toEqual(["line 7: !keep.log: negation is not supported"])
  })

  it("reads the default file as the seed's patterns", () => {
    expect(parseIgnoreFile(DEFAULT_IGNORE_FILE)).toEqual({
      patterns: [".git", ".git/**", "node_modules", "node_modules/**", ".DS_Store", "*.tmp", "*.part"],
      unsupported: []
    })
  })
})

describe("makeMatcher", () => {
  const defaults = makeMatcher(parseIgnoreFile(DEFAULT_IGNORE_FILE).patterns)

  it("applies the default patterns at any depth", () => {
    expect(defaults(".git", true)).toBe(true)
    expect(defaults(".git/config", false)).toBe(true)
    expect(defaults("sub/.git/objects/ab/cd", false)).toBe(true)
    expect(defaults("node_modules/effect/package.json", false)).toBe(true)
    expect(defaults("web/node_modules", true)).toBe(true)
    expect(defaults("photos/.DS_Store", false)).toBe(true)
    expect(defaults("a/b/c.tmp", false)).toBe(true)
    expect(defaults("a/b/c.part", false)).toBe(true)
    expect(defaults("src/main.ts", false)).toBe(false)
    expect(defaults(".gitignore", false)).toBe(false)
    expect(defaults("my.git", true)).toBe(false)
    expect(defaults("x.tmp.txt", false)).toBe(false)
  })

  it("matches a name pattern like *.log at any depth, dot files included", () => {
    const m = makeMatcher(["*.log"])
    expect(m("a.log", false)).toBe(true)
    expect(m("deep/er/still/b.log", false)).toBe(true)
    expect(m("deep/.hidden.log", false)).toBe(true)
    expect(m("logs.d/a.txt", false)).toBe(false)
    expect(m("a.log.txt", false)).toBe(false)
  })

  it("a trailing slash matches directories only, and everything below them", () => {
    const m = makeMatcher(["build/"])
    expect(m("build", true)).toBe(true)
    expect(m("build", false)).toBe(false)
    expect(m("pkg/build", true)).toBe(true)
    expect(m("pkg/build/out.js", false)).toBe(true)
    expect(m("build/x/y", false)).toBe(true)
    expect(m("builder/x", false)).toBe(false)
  })

  it("a pattern with a slash matches from the root only", () => {
    const m = makeMatcher(["build/out", "docs/*.md", "/top.txt", "cache/"])
    expect(m("build/out", false)).toBe(true)
    expect(m("build/out/a.o", false)).toBe(true)
    expect(m("x/build/out", false)).toBe(false)
    expect(m("docs/readme.md", false)).toBe(true)
    expect(m("docs/sub/readme.md", false)).toBe(false)
    expect(m("x/docs/readme.md", false)).toBe(false)
    expect(m("top.txt", false)).toBe(true)
    expect(m("a/top.txt", false)).toBe(false)
  })

  it(".git/** ignores the contents from the root", () => {
    const m = makeMatcher([".git/**"])
    expect(m(".git/HEAD", false)).toBe(true)
    expect(m(".git/refs/heads/main", false)).toBe(true)
    expect(m("sub/.git/HEAD", false)).toBe(false)
  })

  it("ignores the always-ignored paths", () => {
    const m = makeMatcher(ALWAYS_IGNORED)
    expect(m(".dsync", true)).toBe(true)
    expect(m(".dsync/index.sqlite", false)).toBe(true)
    expect(m(".dsync/trash/a/b.txt", false)).toBe(true)
    expect(m(".dsyncignore", false)).toBe(true)
    expect(m("a/b/file.bin.part", false)).toBe(true)
    expect(m("notes.txt", false)).toBe(false)
    expect(m(".dsync-notes", false)).toBe(false)
  })

  it("skips negation patterns instead of guessing", () => {
    const m = makeMatcher(["*.log", "!keep.log"])
    expect(m("keep.log", false)).toBe(true)
    expect(m("other.txt", false)).toBe(false)
  })

  it("ignores nothing without patterns", () => {
    expect(makeMatcher([])("anything/at/all", false)).toBe(false)
  })
})

describe("loadIgnore", () => {
  it.effect("creates .dsyncignore with the defaults on first run", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        const ignored = yield* loadIgnore(dir, [])
        expect(yield* Effect.promise(() => readFile(join(dir, ".dsyncignore"), "utf8"))).toBe(DEFAULT_IGNORE_FILE)
        expect(ignored("node_modules/x", false)).toBe(true)
        expect(ignored(".dsync/index", false)).toBe(true)
        expect(ignored("a.part", false)).toBe(true)
        expect(ignored("src/a.ts", false)).toBe(false)
      })
    ))

  it.effect("leaves an existing .dsyncignore untouched and uses it, plus excludes", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        const mine = "# mine\n*.log\n"
        yield* Effect.promise(() => writeFile(join(dir, ".dsyncignore"), mine))
        const ignored = yield* loadIgnore(dir, ["secret/", "*.bak"])
        expect(yield* Effect.promise(() => readFile(join(dir, ".dsyncignore"), "utf8"))).toBe(mine)
        expect(ignored("x/y.log", false)).toBe(true)
        expect(ignored("secret", true)).toBe(true)
        expect(ignored("secret/key", false)).toBe(true)
        expect(ignored("a/b.bak", false)).toBe(true)
        expect(ignored(".dsyncignore", false)).toBe(true) // always ignored
        expect(ignored(".dsync", true)).toBe(true)
        // The defaults are not merged in when the user has their own file.
        expect(ignored("node_modules/x", false)).toBe(false)
      })
    ))

  it.effect("fails with FsError when the folder is missing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(loadIgnore(join(tmpdir(), "dsync-no-such-dir-" + Date.now()), []))
      expect(error._tag).toBe("FsError")
    }))
})
