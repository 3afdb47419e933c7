import { expect } from "@effect/vitest"
import { Effect, Layer, Option, Schedule } from "effect"
import type { PeerAddress } from "../../src/domain/Config.js"
import { blockSizeFor, type FileRecord } from "../../src/domain/FileRecord.js"
import { type Frame, Hello, IndexFrom, PROTOCOL, StreamEnd } from "../../src/domain/Messages.js"
import * as CipherNode from "../../src/layers/CipherNode.js"
import * as CurvesNode from "../../src/layers/CurvesNode.js"
import * as HasherBlake3 from "../../src/layers/HasherBlake3.js"
import * as IdentityEphemeral from "../../src/layers/IdentityEphemeral.js"
import * as SecureChannelLive from "../../src/layers/SecureChannelLive.js"
import * as TransportMemory from "../../src/layers/TransportMemory.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../../src/lib/Wire.js"
import { fileHash } from "../../src/programs/Content.js"
import { Hasher, type HasherApi } from "../../src/services/Hasher.js"
import { type Channel, SecureChannel } from "../../src/services/SecureChannel.js"
import { Transport } from "../../src/services/Transport.js"
import { PORT } from "./nodes.js"

export const EVIL_REPLICA = "e".repeat(16)

/**
 * A peer that passes the handshake honestly, then misbehaves; also hands out the raw
 * connection. Dials node "a" on the memory network from host `host`, or `address` over
 * `transportLayer`.
 */
export const hostileClient = (
  network: TransportMemory.MemoryNetwork | undefined,
  { address = { host: "a", port: PORT }, transportLayer, host = "evil", name = "evil" }: {
    address?: PeerAddress
    transportLayer?: Layer.Layer<Transport>
    host?: string
    name?: string
  } = {}
) =>
  Effect.gen(function*() {
    const services = yield* Layer.build(Layer.mergeAll(
      SecureChannelLive.layer.pipe(
        Layer.provideMerge(Layer.merge(CipherNode.layer, IdentityEphemeral.layer)),
        Layer.provideMerge(CurvesNode.layer)
      ),
      transportLayer ?? TransportMemory.layer(network!, host),
      HasherBlake3.layer
    ))
    const transport = yield* Effect.provide(Transport, services)
    const secure = yield* Effect.provide(SecureChannel, services)
    const hasher = yield* Effect.provide(Hasher, services)
    // bounded retry: a node started in the background may not be listening yet
    const connection = yield* transport.dial(address).pipe(
      Effect.retry({ times: 100, schedule: Schedule.spaced("50 millis") })
    )
    const channel = yield* secure.initiate(connection)
    yield* channel.send(encodeMessage(new Hello({ protocol: PROTOCOL, replicaId: EVIL_REPLICA, name })))
    const hello = yield* Effect.flatMap(channel.receive, decodeFrame)
    expect(hello._tag).toBe("Hello")
    // as an honest peer does: ask for the node's whole index
    yield* channel.send(encodeMessage(new IndexFrom({ after: 0 })))
    return { channel, connection, hasher }
  })

/** A consistent file record as a peer would announce it (any fields may be overridden). */
export const fileRecord = (p: string, content: string | Buffer, hasher: HasherApi, overrides: Partial<FileRecord> = {}): FileRecord => {
  const bytes = Buffer.from(content)
  const blockSize = blockSizeFor(bytes.length)
  const blocks: Array<string> = []
  for (let at = 0; at < bytes.length; at += blockSize) blocks.push(hasher.hash(bytes.subarray(at, at + blockSize)))
  return {
    path: p, kind: "file", size: bytes.length, mtimeMs: 1, mode: 0o644,
    hash: fileHash(hasher, blocks, bytes.length), blockSize, blocks,
    version: { [EVIL_REPLICA]: 1 }, deleted: false, sequence: 1, ...overrides
  }
}

/** A symlink record. */
export const symlinkRecord = (p: string, target: string, hasher: HasherApi, overrides: Partial<FileRecord> = {}): FileRecord => ({
  path: p, kind: "symlink", size: 0, mtimeMs: 1, mode: 0, hash: hasher.hash(Buffer.from(target)), target,
  blockSize: blockSizeFor(0), blocks: [], version: { [EVIL_REPLICA]: 1 }, deleted: false, sequence: 1, ...overrides
})

/** One file a request asks for: its blocks, each with the index its BlockData frame carries. */
export interface AskedFile {
  readonly stream: number
  readonly path: string
  readonly hash: string
  readonly blocks: ReadonlyArray<{ readonly block: number; readonly index: number }>
}

/** The files a frame asks for: a FileRequest's one, a FilesRequest's each (block 0, indexed by position); else none. */
export const askedFiles = (frame: Frame): ReadonlyArray<AskedFile> => {
  if (frame._tag === "FileRequest") return [{ ...frame, blocks: frame.blocks.map((block) => ({ block, index: block })) }]
  if (frame._tag === "FilesRequest") return frame.files.map((f, index) => ({ stream: frame.stream, ...f, blocks: [{ block: 0, index }] }))
  return []
}

/**
 * Answer the node's file requests (FileRequest, FilesRequest) with the right blocks of
 * `contents` (by path) until `frames` frames were read or nothing came for `quietMs`.
 * Returns the paths requested.
 */
export const serveFiles = (channel: Channel, contents: ReadonlyMap<string, Buffer>, { frames = 100_000, quietMs = 2_000 } = {}) =>
  Effect.gen(function*() {
    const requested: Array<string> = []
    for (let i = 0; i < frames; i++) {
      const frame = yield* Effect.flatMap(channel.receive, decodeFrame).pipe(Effect.timeout(quietMs), Effect.option)
      if (Option.isNone(frame)) break
      const asked = askedFiles(frame.value)
      if (asked.length === 0) continue
      let missing = false
      for (const file of asked) {
        requested.push(file.path)
        const bytes = contents.get(file.path)
        if (!bytes) {
          missing = true
          continue
        }
        const blockSize = blockSizeFor(bytes.length)
        for (const { block, index } of file.blocks) {
          yield* channel.send(encodeBlockData(file.stream, index, false, bytes.subarray(block * blockSize, (block + 1) * blockSize)))
        }
      }
      const error = missing && frame.value._tag === "FileRequest" ? { error: "no such file" } : {}
      yield* channel.send(encodeMessage(new StreamEnd({ stream: asked[0]!.stream, ...error })))
    }
    return requested
  })
