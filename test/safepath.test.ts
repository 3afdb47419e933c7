import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { toRelative, validatePeerPath } from "../src/lib/SafePath.js"

const reason = (p: string): string | undefined =>
  Either.match(validatePeerPath(p), { onLeft: (e) => e.reason, onRight: () => undefined })

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

  it("refuses paths nested deeper than 64 levels", () => {
    expect(reason(Array.from({ length: 64 }, () => "d").join("/"))).toBeUndefined()
    expect(reason(Array.from({ length: 65 }, () => "d").join("/"))).toBe("more than 64 levels deep")
  })

  it("accepts the limits exactly", () => {
    expect(reason("x".repeat(255))).toBeUndefined()
    expect(reason(Array.from({ length: 16 }, () => "y".repeat(255)).join("/"))).toBeUndefined() // 4095 bytes
  })
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
