import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { fsSync } from "./FsTry.js"
import type { RootedFs } from "./RootedFs.js"

/** Our temporary download files: `.dsync-<hex>-<hex>.part`, next to their target. */
export const partName = (relPath: string, tag: string) => {
  const dir = path.posix.dirname(relPath)
  const name = `.dsync-${tag}-${randomBytes(4).toString("hex")}.part`
  return dir === "." ? name : `${dir}/${name}`
}

/** Create a part file next to `relPath`; it is removed again if the scope closes with a failure. */
export const createPart = (disk: RootedFs, relPath: string, tag: string, create: (part: string) => void) =>
  Effect.gen(function*() {
    const part = partName(relPath, tag)
    yield* Effect.acquireRelease(
      fsSync("create", part, () => create(part)),
      (_, exit) => exit._tag === "Failure" ? Effect.sync(() => {
        try {
          disk.unlink(part)
        } catch { /* already renamed into place, or never made */ }
      }) : Effect.void
    )
    return part
  })

