import { describe, expect, it } from "vitest"
import type { FileRecord } from "../src/domain/FileRecord.js"
import { appliedVersion, conflictPath, decide, remoteWins } from "../src/domain/Reconcile.js"
import { bump, compare, merge } from "../src/domain/VersionVector.js"
import { rng } from "./support/rng.js"

const A = "aaaaaaaaaaaaaaaa"
const B = "bbbbbbbbbbbbbbbb"
const h = (c: string) => c.repeat(64)

const rec = (over: Partial<FileRecord>): FileRecord => ({
  path: "f.txt", kind: "file", size: 1, mtimeMs: 1000, mode: 0o644, hash: h("1"), blockSize: 131072,
  blocks: [h("9")], version: { [A]: 1 }, deleted: false, sequence: 1, ...over
})

describe("version vectors", () => {
  it("orders and merges", () => {
    expect(compare({ [A]: 2 }, { [A]: 1 })).toBe("newer")
    expect(compare({ [A]: 1 }, { [A]: 1, [B]: 1 })).toBe("older")
    expect(compare({ [A]: 1 }, { [A]: 1 })).toBe("equal")
    expect(compare({ [A]: 2 }, { [A]: 1, [B]: 1 })).toBe("concurrent")
    expect(merge({ [A]: 2 }, { [A]: 1, [B]: 3 })).toEqual({ [A]: 2, [B]: 3 })
    expect(bump({ [A]: 2 }, B)).toEqual({ [A]: 2, [B]: 1 })
  })

  it("orders any two vectors as their entry-wise comparison says (a missing entry is 0)", () => {
    const r = rng(7)
    const replicas = [A, B, "cccccccccccccccc", "dddddddddddddddd"]
    const vector = () => Object.fromEntries(replicas.filter(() => r.int(3) > 0).map((k) => [k, 1 + r.int(3)]))
    const reference = (a: Record<string, number>, b: Record<string, number>) => {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])]
      const ahead = keys.some((k) => (a[k] ?? 0) > (b[k] ?? 0))
      const behind = keys.some((k) => (b[k] ?? 0) > (a[k] ?? 0))
      return ahead && behind ? "concurrent" : ahead ? "newer" : behind ? "older" : "equal"
    }
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const [a, b] = [vector(), vector()]
      expect(compare(a, b), JSON.stringify([a, b])).toBe(reference(a, b))
      seen.add(reference(a, b))
    }
    expect([...seen].sort()).toEqual(["concurrent", "equal", "newer", "older"])
  })
})

describe("decide", () => {
  it("applies newer, ignores older or equal", () => {
    const local = rec({})
    expect(decide(local, rec({ version: { [A]: 2 }, hash: h("2") }))).toBe("apply")
    expect(decide(local, rec({ version: { [A]: 1 } }))).toBe("ignore")
    expect(decide(rec({ version: { [A]: 3 } }), rec({ version: { [A]: 2 }, hash: h("2") }))).toBe("ignore")
    expect(decide(undefined, rec({}))).toBe("apply")
  })

  it("records a newer version of identical content without touching the file", () => {
    expect(decide(rec({}), rec({ version: { [A]: 1, [B]: 1 } }))).toBe("record")
  })

  it("resolves concurrent edits the same way on both sides", () => {
    const ours = rec({ version: { [A]: 2 }, hash: h("2"), mtimeMs: 2000 })
    const theirs = rec({ version: { [A]: 1, [B]: 1 }, hash: h("3"), mtimeMs: 3000 })
    expect(decide(ours, theirs)).toBe("conflict") // theirs is later: ours becomes the copy
    expect(decide(theirs, ours)).toBe("keep") // seen from the other side: it keeps its own
    expect(remoteWins(ours, theirs)).not.toBe(remoteWins(theirs, ours))
  })

  it("an edit beats a concurrent delete, on both sides", () => {
    const edited = rec({ version: { [A]: 2 }, hash: h("2"), mtimeMs: 1 })
    const deleted = rec({ version: { [A]: 1, [B]: 1 }, deleted: true, hash: "", blocks: [], size: 0, mtimeMs: 9999 })
    expect(decide(edited, deleted)).toBe("keep")
    expect(decide(deleted, edited)).toBe("apply")
  })

  it("orders concurrent versions strictly: of two different ones exactly one wins, on either side", () => {
    const versions = [
      rec({}),
      rec({ deleted: true, blocks: [], size: 0 }),
      rec({ mtimeMs: 1001 }),
      rec({ hash: h("2") }),
      rec({ mode: 0o600 }), // same content and time, another mode (a chmod on each side)
      rec({ kind: "symlink" })
    ]
    for (const [i, x] of versions.entries()) {
      for (const y of versions.slice(i + 1)) expect([remoteWins(x, y), remoteWins(y, x)].filter(Boolean)).toHaveLength(1)
    }
  })
})

describe("appliedVersion", () => {
  const C = "cccccccccccccccc"
  const tombstone = (version: Record<string, number>) => rec({ deleted: true, size: 0, hash: "", blocks: [], version })

  it("a newer record keeps its version; one that won over a concurrent one of ours is an edit of ours too", () => {
    expect(appliedVersion(undefined, rec({ version: { [A]: 2 } }), C)).toEqual({ [A]: 2 })
    expect(appliedVersion(rec({ version: { [A]: 1 } }), rec({ version: { [A]: 2, [B]: 1 } }), C)).toEqual({ [A]: 2, [B]: 1 })
    expect(appliedVersion(tombstone({ [A]: 1, [B]: 2 }), rec({ version: { [A]: 2, [B]: 1 } }), C)).toEqual({ [A]: 2, [B]: 2, [C]: 1 })
  })

  it("never gives an edit over a deletion the version another replica gives two deletions merged", () => {
    // replica C: its deletion {A:1,B:2}, then a peer's edit {A:2,B:1} wins over it (an edit beats a delete)
    const edit = rec({ version: { [A]: 2, [B]: 1 } })
    const onC = appliedVersion(tombstone({ [A]: 1, [B]: 2 }), edit, C)
    // elsewhere, that edit's deletion {A:2,B:1} meets the same deletion {A:1,B:2}: same content, versions merged
    const mergedDeletions = merge({ [A]: 2, [B]: 1 }, { [A]: 1, [B]: 2 })
    expect(compare(onC, mergedDeletions)).toBe("newer")
    expect(decide(tombstone(mergedDeletions), rec({ version: onC }))).toBe("apply")
  })
})

describe("conflictPath", () => {
  it("keeps the folder and extension", () => {
    const when = new Date(Date.UTC(2026, 10, 27, 3, 4, 5))
    expect(conflictPath("docs/report.final.txt", when, "0123456789abcdef")).toBe("docs/report.final.sync-conflict-20261127-030405-0123456.txt")
    expect(conflictPath("Makefile", when, "0123456789abcdef")).toBe("Makefile.sync-conflict-20261127-030405-0123456")
    expect(conflictPath(".bashrc", when, "0123456789abcdef")).toBe(".bashrc.sync-conflict-20261127-030405-0123456")
  })
})
