import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, LogLevel, Option, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { SyncNodeApi } from "../src/services/SyncNode.js"
import { makeNetwork, partition } from "../src/Testing.js"
import { describeTree, partFilesIn, tempDir, walkTree } from "./support/fs.js"
import { memoryNode } from "./support/nodes.js"
import { type Rng, rng } from "./support/rng.js"

/**
 * Randomized convergence: 3 to 5 nodes on a memory network, a few hundred random user
 * operations interleaved with partitions, restarts (with and without `.dsync/`) and
 * heals. Afterwards every tree is the same, no `.part` file is left, and every content a
 * user wrote is still somewhere (live, a conflict copy, or a trash), unless the user
 * destroyed its last copy themselves.
 *
 *   DSYNC_CONVERGE_SEED=7 npx vitest run test/convergence.test.ts    (one seed)
 *   DSYNC_CONVERGE_SEEDS=30 ...                                       (seeds 1..30; npm run fuzz: 20)
 */
const SEEDS = process.env.DSYNC_CONVERGE_SEED
  ? [Number(process.env.DSYNC_CONVERGE_SEED)]
  : Array.from({ length: Number(process.env.DSYNC_CONVERGE_SEEDS ?? 3) }, (_, i) => i + 1)
const OPERATIONS = Number(process.env.DSYNC_CONVERGE_OPS ?? 200)
const CONVERGE_MS = 90_000

// The periodic rescan is the safety net for a change no watcher event reported. Seed 2
// met one (a file modified, then its folder renamed, both right away: no event came):
// the default 5 minutes is past this test's patience, so it rescans every 5 s.
const timing = { reconnect: { first: "50 millis", max: "500 millis" }, rescanInterval: "5 seconds" } as const

/** Every regular file under `dir` (its `.dsync/trash` too, not the index or part files), by path. */
const filesUnder = (dir: string) => {
  const found = new Map<string, string>()
  walkTree(dir, (entry, abs, rel) => {
    if (rel.startsWith(".dsync/") && !rel.startsWith(".dsync/trash")) return false
    if (!entry.isFile() || entry.name.endsWith(".part") || entry.name === ".dsyncignore") return
    try {
      found.set(abs, fs.readFileSync(abs, "utf8"))
    } catch {
      // gone meanwhile: a sync moved it
    }
  })
  return found
}

/** The user's view of one folder: its files and folders (not .dsync), relative. */
const userEntries = (root: string) => {
  const files: Array<string> = []
  const dirs: Array<string> = []
  walkTree(root, (entry, _abs, rel) => {
    if (rel === ".dsync" || rel === ".dsyncignore" || entry.name.endsWith(".part")) return false
    if (entry.isDirectory()) dirs.push(rel)
    else if (entry.isFile()) files.push(rel)
  })
  return { files, dirs }
}

interface World {
  readonly r: Rng
  readonly roots: ReadonlyArray<string>
  /** Content written by a user -> true when it may be gone (the user destroyed its last copy). */
  readonly written: Map<string, boolean>
  readonly log: Array<string>
  next: number
}

/**
 * Before a user destroys the files `doomed` (path -> content) in one go: a content may
 * vanish only if no copy exists anywhere else. (Copies among the doomed do not count: a
 * folder or a trash removed whole may hold two copies of one content.)
 */
const destroying = (world: World, doomed: ReadonlyMap<string, string>) => {
  const all = new Map<string, string>()
  for (const root of world.roots) for (const [file, text] of filesUnder(root)) all.set(file, text)
  for (const content of new Set(doomed.values())) {
    if (!world.written.has(content)) continue
    const elsewhere = [...all].some(([file, text]) => text === content && !doomed.has(file))
    world.written.set(content, !elsewhere)
  }
}

/** The same, for one file. */
const destroyingOne = (world: World, abs: string) => destroying(world, new Map([[abs, fs.readFileSync(abs, "utf8")]]))

const fresh = (world: World, what: string) => {
  const content = `${what} #${world.next++} ${world.r.next().toString(36).slice(2)}`
  world.written.set(content, false)
  return content
}

/** One random user operation on node `i`; false when the pick vanished under us (sync raced it). */
const userOperation = (world: World, i: number): boolean => {
  const { r } = world
  const root = world.roots[i]!
  const { files, dirs } = userEntries(root)
  const dir = () => (dirs.length > 0 && r.int(3) > 0 ? r.pick(dirs) : "")
  const at = (rel: string) => path.join(root, rel)
  const join = (d: string, name: string) => (d === "" ? name : `${d}/${name}`)
  const kind = r.int(10)
  try {
    if (kind <= 2 || files.length === 0) {
      const rel = join(dir(), `f${world.next}.txt`)
      fs.writeFileSync(at(rel), fresh(world, `create ${rel} on n${i}`))
      world.log.push(`n${i} create ${rel}`)
    } else if (kind === 3) {
      const rel = r.pick(files)
      destroyingOne(world, at(rel))
      fs.writeFileSync(at(rel), fresh(world, `modify ${rel} on n${i}`))
      world.log.push(`n${i} modify ${rel}`)
    } else if (kind === 4) {
      const rel = r.pick(files)
      const before = fs.readFileSync(at(rel), "utf8")
      destroying(world, new Map([[at(rel), before]]))
      const suffix = fresh(world, "")
      world.written.delete(suffix)
      world.written.set(before + suffix, false)
      fs.appendFileSync(at(rel), suffix)
      world.log.push(`n${i} append ${rel}`)
    } else if (kind === 5) {
      const rel = r.pick(files)
      destroyingOne(world, at(rel))
      fs.unlinkSync(at(rel))
      world.log.push(`n${i} delete ${rel}`)
    } else if (kind === 6) {
      const rel = r.pick(files)
      const to = join(dir(), `m${world.next++}.txt`)
      fs.renameSync(at(rel), at(to))
      world.log.push(`n${i} rename ${rel} -> ${to}`)
    } else if (kind === 7) {
      const parent = dir()
      if (parent.split("/").length >= 3) return true
      const rel = join(parent, `d${world.next++}`)
      fs.mkdirSync(at(rel))
      world.log.push(`n${i} mkdir ${rel}`)
    } else if (kind === 8 && dirs.length > 0) {
      const rel = r.pick(dirs)
      destroying(world, filesUnder(at(rel)))
      fs.rmSync(at(rel), { recursive: true })
      world.log.push(`n${i} rm -r ${rel}`)
    } else if (kind === 9 && dirs.length > 0) {
      const rel = r.pick(dirs)
      const to = `r${world.next++}`
      fs.renameSync(at(rel), at(to))
      world.log.push(`n${i} rename folder ${rel} -> ${to}`)
    }
    return true
  } catch {
    return false
  }
}

/** Two random non-empty groups of hosts. */
const split = (r: Rng, hosts: ReadonlyArray<string>) => {
  const shuffled = [...hosts].sort(() => r.next() - 0.5)
  const cut = 1 + r.int(hosts.length - 1)
  return [shuffled.slice(0, cut), shuffled.slice(cut)]
}

describe("randomized convergence", () => {
  for (const seed of SEEDS) {
    it.live(`seed ${seed} (DSYNC_CONVERGE_SEED=${seed}): random edits, partitions and restarts converge, nothing a user wrote is lost`, () =>
      Effect.gen(function*() {
        const r = rng(seed)
        const n = 3 + r.int(3)
        const hosts = Array.from({ length: n }, (_, i) => `n${i}`)
        const roots = yield* Effect.forEach(hosts, () => tempDir())
        const world: World = { r, roots, written: new Map(), log: [], next: 0 }
        const network = makeNetwork()
        const scopes: Array<Scope.CloseableScope> = []
        const nodes: Array<SyncNodeApi> = []
        const start = (i: number) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            scopes[i] = scope
            nodes[i] = yield* memoryNode(network, hosts[i]!, roots[i]!, hosts.filter((_, j) => j !== i), timing).pipe(Scope.extend(scope))
          })
        yield* Effect.addFinalizer(() => Effect.forEach(scopes, (s) => Scope.close(s, Exit.void), { discard: true }))
        yield* Effect.forEach(hosts, (_, i) => start(i), { discard: true })

        const failed = (what: string) =>
          new Error(`seed ${seed}: ${what}\nlast operations:\n${world.log.slice(-40).join("\n")}`)
        for (let op = 0; op < OPERATIONS; op++) {
          const roll = r.int(100)
          if (roll < 3) {
            const groups = split(r, hosts)
            world.log.push(`partition ${JSON.stringify(groups)}`)
            yield* partition(network, groups)
          } else if (roll < 6) {
            world.log.push("heal")
            yield* partition(network, [])
          } else if (roll < 8) {
            const i = r.int(n)
            const wipe = r.int(2) === 0
            world.log.push(`restart n${i}${wipe ? " without its .dsync/" : ""}`)
            yield* Scope.close(scopes[i]!, Exit.void)
            if (wipe) {
              // its trash goes with it: what was only there was the user's to lose
              destroying(world, filesUnder(path.join(roots[i]!, ".dsync", "trash")))
              fs.rmSync(path.join(roots[i]!, ".dsync"), { recursive: true, force: true })
            }
            yield* start(i)
          } else {
            userOperation(world, r.int(n))
          }
          yield* Effect.sleep(`${r.int(40)} millis`)
        }
        world.log.push("heal (end)")
        yield* partition(network, [])

        // every tree the same
        const deadline = Date.now() + CONVERGE_MS
        const trees = () => roots.map((root) => JSON.stringify(describeTree(root)))
        while (new Set(trees()).size > 1) {
          if (Date.now() > deadline) {
            const [first, ...rest] = roots.map((root) => describeTree(root, { hash: false }))
            const differ = rest.map((t, i) =>
              [...new Set([...Object.keys(first!), ...Object.keys(t)])].filter((k) => JSON.stringify(first![k]) !== JSON.stringify(t[k])).map((k) => `n${i + 1}: ${k}`)
            )
            const peers = yield* Effect.forEach(nodes, (node) => node.connectedPeers)
            const links = peers.map((p, i) => `n${i} (${nodes[i]!.peerId.slice(0, 8)}) connected to ${p.map((id) => id.slice(0, 8)).join(", ")}`)
            // what each node's index holds for the first paths that differ: enough to tell a
            // record that never arrived from one that was refused or lost a conflict
            const paths = [...new Set(differ.flat().map((line) => line.slice(line.indexOf(": ") + 2)))].slice(0, 5)
            const records = yield* Effect.forEach(paths, (p) =>
              Effect.map(Effect.forEach(nodes, (node) => node.record(p)), (found) =>
                [`${p}:`, ...found.map((r, i) =>
                  `  n${i}: ${Option.match(r, {
                    onNone: () => "no record",
                    onSome: (r) => `${r.deleted ? "deleted" : r.kind} ${JSON.stringify(r.version)} seq ${r.sequence} hash ${r.hash.slice(0, 8)}`
                  })}`)].join("\n")))
            throw failed(`trees still differ after ${CONVERGE_MS / 1000} s:\n${differ.flat().slice(0, 30).join("\n")}\n${links.join("\n")}\n${records.join("\n")}`)
          }
          yield* Effect.sleep("200 millis")
        }
        // no part file anywhere
        for (const root of roots) {
          const parts = partFilesIn(root)
          if (parts.length > 0) throw failed(`part files left: ${parts.join(", ")}`)
        }
        // nothing a user wrote is lost
        const everywhere = new Set(roots.flatMap((root) => [...filesUnder(root).values()]))
        const lost = [...world.written].filter(([content, mayBeGone]) => !mayBeGone && !everywhere.has(content)).map(([c]) => c)
        if (lost.length > 0) throw failed(`contents lost:\n${lost.slice(0, 20).join("\n")}`)
        expect(world.log.length).toBeGreaterThan(OPERATIONS / 2)
      }).pipe(Effect.scoped, process.env.DSYNC_CONVERGE_DEBUG ? Logger.withMinimumLogLevel(LogLevel.Debug) : (e) => e), { timeout: 240_000 })
  }
})
