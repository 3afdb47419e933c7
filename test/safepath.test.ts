import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { resolveInside, toRelative, validatePeerPath } from "../src/lib/SafePath.js"

const reason = (p: string): string | undefined =>
  Either.match(validatePeerPath(p), { onLeft: (e) => e.reason, onRight: () => undefined })

const withTempDirs = <A, E>(use: (root: string, outside: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const base = await realpath(await mkdtemp(join(tmpdir(), "dsync-safepath-")))
      await mkdir(join(base, "root"))
      await mkdir(join(base, "outside"))
      return base
    }),
    (base) => use(join(base, "root"), join(base, "outside")),
    (base) => Effect.promise(() => rm(base, { recursive: true, force: true }))
  )

describe("validatePeerPath", () => {
  it("accepts normal relative paths", () => {
    for (const p of ["a", "a/b/c.txt", ".hidden/x", "x..y/..z", "ünïcödé/日本.txt", "a ".repeat(10).trim()]) {
      expect(Either.getOrUndefined(validatePeerPath(p)), p).toBe(p)
    }
  })

  it.each([
    ["", "empty path"],
    ["/etc/passwd", "absolute path"],
    ["C:/Windows", "drive-letter path"],
    ["c:x", "drive-letter path"],
    ["a\\b", "contains a backslash"],
    ["..\\x", "contains a backslash"],
    ["..", "'..' segment"],
    ["../x", "'..' segment"],
    ["a/../../x", "'..' segment"],
    ["a/..", "'..' segment"],
    [".", "'.' segment"],
    ["./a", "'.' segment"],
    ["a/./b", "'.' segment"],
    ["a//b", "empty path segment"],
    ["a/", "empty path segment"],
    ["a\u0000b", "contains a NUL or control character"],
    ["a\nb", "contains a NUL or control character"],
    ["a\u007fb", "contains a NUL or control character"],
    ["cafe\u0301.txt", "not in Unicode NFC form"],
    ["a/" + "x".repeat(256), "a segment is longer than 255 bytes"],
    ["é".repeat(128), "a segment is longer than 255 bytes"],
    [Array.from({ length: 20 }, () => "y".repeat(250)).join("/"), "longer than 4096 bytes"],
    [".dsync/index.sqlite", "inside the .dsync state folder"],
    [".DSync", "inside the .dsync state folder"]
  ])("refuses %j (%s)", (p, why) => {
    const result = validatePeerPath(p)
    expect(Either.isLeft(result)).toBe(true)
    expect(reason(p)).toBe(why)
    if (Either.isLeft(result)) {
      expect(result.left._tag).toBe("UnsafePath")
      expect(result.left.path).toBe(p)
    }
  })

  it("accepts the limits exactly", () => {
    expect(reason("x".repeat(255))).toBeUndefined()
    expect(reason(Array.from({ length: 16 }, () => "y".repeat(255)).join("/"))).toBeUndefined() // 4095 bytes
  })
})

describe("resolveInside", () => {
  it.effect("resolves a normal nested path, existing or not", () =>
    withTempDirs((root) =>
      Effect.gen(function*() {
        yield* Effect.promise(() => mkdir(join(root, "a", "b"), { recursive: true }))
        expect(yield* resolveInside(root, "a/b/c.txt")).toBe(join(root, "a", "b", "c.txt"))
        expect(yield* resolveInside(root, "new/dir/file")).toBe(join(root, "new", "dir", "file"))
      })
    ))

  it.effect("refuses a path through a symlinked directory pointing outside the root", () =>
    withTempDirs((root, outside) =>
      Effect.gen(function*() {
        yield* Effect.promise(() => mkdir(join(root, "a")))
        yield* Effect.promise(() => symlink(outside, join(root, "a", "escape")))
        const error = yield* Effect.flip(resolveInside(root, "a/escape/evil.txt"))
        expect(error._tag).toBe("UnsafePath")
        expect(error._tag === "UnsafePath" && error.reason).toBe("parent 'a/escape' is a symlink")
        const deeper = yield* Effect.flip(resolveInside(root, "a/escape/x/y"))
        expect(deeper._tag).toBe("UnsafePath")
      })
    ))

  it.effect("allows the final component to be a symlink (it gets replaced, not followed)", () =>
    withTempDirs((root, outside) =>
      Effect.gen(function*() {
        yield* Effect.promise(() => symlink(outside, join(root, "link")))
        expect(yield* resolveInside(root, "link")).toBe(join(root, "link"))
      })
    ))

  it.effect("refuses invalid paths before touching the filesystem", () =>
    withTempDirs((root) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(resolveInside(root, "../outside/x"))
        expect(error._tag).toBe("UnsafePath")
      })
    ))
})

describe("toRelative", () => {
  it("turns native paths into /-separated NFC relative paths", () => {
    const root = join(tmpdir(), "r")
    expect(toRelative(root, join(root, "a", "b.txt"))).toBe("a/b.txt")
    expect(toRelative(root, join(root, "cafe\u0301"))).toBe("caf\u00e9")
    expect(toRelative(root, root)).toBeUndefined()
    expect(toRelative(root, join(tmpdir(), "other", "x"))).toBeUndefined()
    expect(toRelative(root, join(tmpdir(), "r2"))).toBeUndefined()
    expect(toRelative(root, join(root, "..x"))).toBe("..x")
  })
})
