// A module of ours that imports "effect" (or a platform package) by its index loads
// every module of the package: measured, the index of effect alone cost the command ~9 MB
// of RSS it never used. The command is bundled now (tree-shaken), but the library is
// loaded as modules by the apps that embed it: they pay only for the modules it uses.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const src = join(import.meta.dirname, "..", "src")
const files = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []))

// `import type` is erased by the compiler, so only value imports count.
const barrelImport = /^import (?!type )[^;]*? from "(effect|@effect\/[\w-]+)"/gm

describe("imports", () => {
  it("src imports effect and @effect/* packages by module path, never by their index", () => {
    const offenders = files(src).flatMap((f) => [...readFileSync(f, "utf8").matchAll(barrelImport)].map((m) => `${f.slice(src.length + 1)}: ${m[0]}`))
    expect(offenders).toEqual([])
  })

  it("the check finds a barrel import", () => {
    expect('import { Effect } from "effect"\n'.match(barrelImport)).not.toBeNull()
    expect('import * as Stream from "@effect/platform"\n'.match(barrelImport)).not.toBeNull()
    expect('import type { Layer } from "effect"\n'.match(barrelImport)).toBeNull()
    expect('import * as Effect from "effect/Effect"\n'.match(barrelImport)).toBeNull()
  })
})
