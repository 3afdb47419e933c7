import Database from "better-sqlite3"
import fs from "node:fs"
const src = "/tmp/sf/A/.dsync/index.db"
for (const mode of ["default", "cache16", "exclusive", "both", "default", "both"]) {
  fs.copyFileSync(src, "/tmp/sq2.db"); for (const s of ["-wal", "-shm"]) try { fs.unlinkSync("/tmp/sq2.db" + s) } catch {}
  const db = new Database("/tmp/sq2.db")
  db.pragma("journal_mode = WAL"); db.pragma("synchronous = NORMAL")
  if (mode === "cache16" || mode === "both") db.pragma("cache_size = -16000")
  if (mode === "exclusive" || mode === "both") db.pragma("locking_mode = EXCLUSIVE")
  const paths = db.prepare("SELECT path FROM files").all().map((r) => r.path)
  const get = db.prepare("SELECT * FROM files WHERE path = ?")
  for (const p of paths) get.get(p) // warm
  let t = performance.now()
  for (let r = 0; r < 2; r++) for (const p of paths) get.get(p)
  console.log(mode, paths.length, "get", ((performance.now() - t) / (2 * paths.length) * 1000).toFixed(1), "us")
  db.close()
}
