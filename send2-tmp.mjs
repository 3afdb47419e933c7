import crypto from "node:crypto"; import fs from "node:fs"; import net from "node:net"
const [port, file] = process.argv.slice(2)
const key = Buffer.alloc(32, 7), BS = 512*1024
const srv = net.createServer(async (sock) => {
    sock.setNoDelay(true)
    const fd = fs.openSync(file, "r"); const size = fs.fstatSync(fd).size; const buf = Buffer.allocUnsafe(BS)
    const t = performance.now()
    for (let i = 0; i * BS < size; i++) {
      const n = fs.readSync(fd, buf, 0, BS, i*BS)
      const iv = Buffer.alloc(12); iv.writeUInt32LE(i,4); const c = crypto.createCipheriv("chacha20-poly1305", key, iv, {authTagLength:16}); const o = c.update(buf.subarray(0,n)); c.final(); const tag = c.getAuthTag()
      const hdr = Buffer.alloc(8); hdr.writeUInt32BE(n+16, 0); hdr.writeUInt32BE(i, 4)
      sock.cork(); sock.write(hdr); sock.write(o); sock.write(tag); sock.uncork()
      if (sock.writableLength > 1<<20) await new Promise(r => sock.once("drain", r))
    }
    sock.end(); console.error("send done", ((performance.now()-t)/1000).toFixed(2)); srv.close()
}).listen(+port)
