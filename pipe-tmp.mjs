// raw pipeline: node pipe.mjs send PORT FILE | node pipe.mjs recv PORT OUT
import crypto from "node:crypto"; import fs from "node:fs"; import net from "node:net"
import { createBLAKE3 } from "hash-wasm"
const [mode, port, file] = process.argv.slice(2)
const key = Buffer.alloc(32, 7), BS = 512*1024
const HASH = process.env.NOHASH ? false : true
const seal = (i, data) => { const iv = Buffer.alloc(12); iv.writeUInt32LE(i,4); const c = crypto.createCipheriv("chacha20-poly1305", key, iv, {authTagLength:16}); const o = c.update(data); c.final(); return [o, c.getAuthTag()] }
if (mode === "send") {
  const sock = net.connect(+port, "127.0.0.1", async () => {
    sock.setNoDelay(true)
    const fd = fs.openSync(file, "r"); const size = fs.fstatSync(fd).size; const buf = Buffer.allocUnsafe(BS)
    const t = performance.now()
    for (let i = 0; i * BS < size; i++) {
      const n = fs.readSync(fd, buf, 0, BS, i*BS)
      const [o, tag] = seal(i, buf.subarray(0,n))
      const hdr = Buffer.alloc(8); hdr.writeUInt32BE(n+16, 0); hdr.writeUInt32BE(i, 4)
      sock.cork(); sock.write(hdr); sock.write(o); sock.write(tag); sock.uncork()
      if (sock.writableLength > 1<<20) await new Promise(r => sock.once("drain", r))
    }
    sock.end(); console.error("send done", ((performance.now()-t)/1000).toFixed(2))
  })
} else {
  const h = await createBLAKE3()
  const fd = fs.openSync(file, "w")
  const srv = net.createServer((sock) => {
    let chunks = [], have = 0, need = 8, hdr = null, t = performance.now(), bytes = 0
    const take = (n) => { const out = Buffer.allocUnsafe(n); let o = 0; while (o < n) { const c = chunks[0]; const k = Math.min(c.length, n-o); c.copy(out, o, 0, k); o += k; if (k === c.length) chunks.shift(); else chunks[0] = c.subarray(k) } have -= n; return out }
    sock.on("data", (c) => { chunks.push(c); have += c.length
      while (have >= need) {
        if (!hdr) { const b = take(8); hdr = { len: b.readUInt32BE(0), i: b.readUInt32BE(4) }; need = hdr.len; continue }
        const body = take(hdr.len); const iv = Buffer.alloc(12); iv.writeUInt32LE(hdr.i,4)
        const d = crypto.createDecipheriv("chacha20-poly1305", key, iv, {authTagLength:16}); d.setAuthTag(body.subarray(body.length-16))
        const plain = d.update(body.subarray(0, body.length-16)); d.final()
        if (HASH) { h.init(); h.update(plain); h.digest("binary") }
        fs.writeSync(fd, plain, 0, plain.length, hdr.i*BS); bytes += plain.length
        hdr = null; need = 8 }
    })
    sock.on("end", () => { fs.fsyncSync(fd); console.error("recv done", ((performance.now()-t)/1000).toFixed(2), "s", (bytes/1e6/((performance.now()-t)/1000)).toFixed(0), "MB/s"); process.exit(0) })
  }).listen(+port)
}
