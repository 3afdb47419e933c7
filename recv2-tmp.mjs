// receiver using net.connect-style onread: we dial the sender instead (onread works on client sockets)
import crypto from "node:crypto"; import fs from "node:fs"; import net from "node:net"
import { createBLAKE3 } from "hash-wasm"
const [port, file, rb] = process.argv.slice(2)
const key = Buffer.alloc(32, 7), BS = 512*1024
const h = await createBLAKE3()
const fd = fs.openSync(file, "w")
const frame = Buffer.allocUnsafe(BS + 64); let fill = 0, need = 8, hdr = null, bytes = 0, t = 0, reads = 0
const iv = Buffer.alloc(12)
const onFrame = (body) => {
  iv.writeUInt32LE(hdr.i,4)
  const d = crypto.createDecipheriv("chacha20-poly1305", key, iv, {authTagLength:16}); d.setAuthTag(body.subarray(body.length-16))
  const plain = d.update(body.subarray(0, body.length-16)); d.final()
  h.init(); h.update(plain); h.digest("binary")
  fs.writeSync(fd, plain, 0, plain.length, hdr.i*BS); bytes += plain.length
}
const sock = net.connect({ port: +port, host: "127.0.0.1", onread: { buffer: Buffer.allocUnsafe(+rb * 1024), callback: (n, buf) => {
  reads++
  if (!t) t = performance.now()
  let p = 0
  while (p < n) {
    const k = Math.min(need - fill, n - p)
    buf.copy(frame, fill, p, p + k); fill += k; p += k
    if (fill < need) break
    if (!hdr) { hdr = { len: frame.readUInt32BE(0), i: frame.readUInt32BE(4) }; need = hdr.len; fill = 0; continue }
    onFrame(frame.subarray(0, need)); hdr = null; need = 8; fill = 0
  }
}}})
sock.on("end", () => { fs.fsyncSync(fd); const s=(performance.now()-t)/1000; console.error("recv2 done", s.toFixed(2), "s", (bytes/1e6/s).toFixed(0), "MB/s reads", reads); process.exit(0) })
