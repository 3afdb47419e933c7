/**
 * Live progress for the `dsync` command, rendered from the node's event stream.
 *
 * Usage: give it to the node as its event observer, e.g.
 * `runNode(config, (events) => renderProgress(events, process.stdout, { mode, color }))`
 * (src/Live.ts subscribes before the node starts and forks the observer); it runs until
 * the stream ends or its fiber is interrupted, and its finalizer erases the live block,
 * so Ctrl-C leaves a clean terminal. It prints the start-up banner from `Started`
 * (`dsync <name> · id … · folder … · listening on …`, as before), so it replaces the
 * default `printStarted` observer. Choose `mode: "live"` only when `process.stdout.isTTY`,
 * `NO_COLOR` is unset and no `--log-level` was given, else `"plain"` (the default when
 * `out.isTTY` is false): one log-style line per completed file, peer join/leave,
 * conflict, refusal and failure, never an ANSI code. `color` only colours the permanent
 * lines of live mode. While the live block is up nothing else may write to the same
 * terminal (a stray line would be overdrawn): pass the process's own log lines as
 * `messages` (a Logger that offers each formatted line to a Queue, then
 * `Stream.fromQueue(queue)`) to have them printed above the block, or keep the log level
 * at Warning (Info logs also repeat the received/deleted lines). `out.columns` is read
 * at every redraw, so `process.stdout` follows resizes (a block drawn before a shrink
 * may leave a stray line, as with most progress bars).
 *
 * Pure apart from `out.write`: no process.stdout here, time from `options.now` or the
 * Effect Clock (TestClock in tests).
 *
 * @since 0.2.0
 * @category cli
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { printable, showPath } from "../lib/Printable.js"
import type { NodeEvent } from "../services/Events.js"
import { shortId } from "../services/Identity.js"

/** Where progress goes: `process.stdout` fits, so does a fake in tests. */
export interface ProgressOutput {
  readonly isTTY: boolean
  /** Terminal width; read at every redraw. 0 or missing means 80. */
  readonly columns: number
  readonly write: (s: string) => void
}

/** How `renderProgress` draws: mode, colours, clock, redraw period, and other lines to print. */
export interface ProgressOptions {
  /** `live`: status block redrawn in place; `plain`: log lines only. Default: live when `out.isTTY`. */
  readonly mode?: "live" | "plain"
  /** SGR colours on the permanent lines (live mode only; plain mode never writes escapes). */
  readonly color: boolean
  /** Milliseconds since the epoch; default: the Effect Clock. */
  readonly now?: () => number
  /** Redraw period of the live block in ms (default 100: at most 10 redraws a second). */
  readonly refreshMs?: number
  /** Other lines (e.g. the process's log lines, already escaped) to print above the block / as is. */
  readonly messages?: Stream.Stream<string>
}

// ---------------------------------------------------------------------------------------
// Units

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"] as const

/** `512 B`, `1.5 KiB`, `120.0 MiB`. */
export const formatBytes = (n: number): string => {
  if (!Number.isFinite(n) || n < 0) return "?"
  if (n < 1024) return `${Math.round(n)} B`
  let value = n / 1024
  let unit = 0
  while (unit < UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`
}

/** `2.0 MiB/s`. */
export const formatRate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`

const two = (n: number) => String(n).padStart(2, "0")

/** A time left: `7s`, `1m05s`, `2h03m` (rounded up). */
export const formatEta = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--"
  const s = Math.ceil(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`
  const h = Math.floor(s / 3600)
  return h > 99 ? ">99h" : `${h}h${two(Math.floor((s % 3600) / 60))}m`
}

/** A time taken: `350ms`, `2.4s`, `12s`, `1m05s`. */
export const formatElapsed = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) return "?"
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 10_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`
  return formatEta(Math.floor(ms / 1000))
}

const clockTime = (ms: number): string => {
  const d = new Date(ms)
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}

// ---------------------------------------------------------------------------------------
// Terminal width of text (escaped text: no controls or format characters are left)

const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u
const ZERO = /[\p{Mn}\p{Me}]/u

const charWidth = (c: string): number => (ZERO.test(c) ? 0 : WIDE.test(c) ? 2 : 1)

/** Columns that `text` takes on a terminal (wide CJK/emoji count 2, combining marks 0). */
export const displayWidth = (text: string): number => {
  let w = 0
  for (const c of text) w += charWidth(c)
  return w
}

/** At most `width` columns: the end of `text`, cut at the start with `…`. */
export const truncateStart = (text: string, width: number): string => {
  if (displayWidth(text) <= width) return text
  if (width <= 0) return ""
  const chars = Array.from(text)
  let w = 1
  let i = chars.length
  while (i > 0 && w + charWidth(chars[i - 1]!) <= width) w += charWidth(chars[--i]!)
  return "…" + chars.slice(i).join("")
}

/** At most `width` columns: the start of `text`, cut at the end with `…`. */
export const truncateEnd = (text: string, width: number): string => {
  if (displayWidth(text) <= width) return text
  if (width <= 0) return ""
  let w = 1
  let out = ""
  for (const c of text) {
    const cw = charWidth(c)
    if (w + cw > width) break
    w += cw
    out += c
  }
  return out + "…"
}

// ---------------------------------------------------------------------------------------
// State: one object, updated synchronously per event

/** Rates come from the samples of the last WINDOW_MS (plus one just before, as the base). */
export const WINDOW_MS = 5_000
/** No progress for this long: the rate shows `stalled`. */
export const STALL_MS = 3_000
/** No event at all for a transfer for this long: it is dropped from the view (its end event was lost). */
export const FORGET_MS = 60_000
/** Status lines shown at most; the rest are summed up as `... and N more`. */
export const MAX_TRANSFER_LINES = 8

/** Bytes received by time `t` (ms): one point of a transfer's rate. */
export interface Sample {
  readonly t: number
  readonly received: number
}

/** A download in progress, as the view tracks it: sizes, bytes received so far, times and rate samples. */
export interface Transfer {
  readonly path: string
  readonly peerId: string
  bytes: number
  fetchBytes: number
  received: number
  readonly startedAt: number
  lastEventAt: number
  samples: Array<Sample>
}

/** Everything the view knows, updated in place by `applyEvent`. */
export interface ProgressState {
  /** Connected peers: id to name. */
  readonly peers: Map<string, string>
  /** Every peer seen, for naming file events after a peer left. */
  readonly names: Map<string, string>
  readonly transfers: Map<string, Transfer>
  backlog: { readonly files: number; readonly bytes: number } | undefined
}

/** An empty state: no peers, no transfers, no backlog heard of yet. */
export const makeState = (): ProgressState => ({ peers: new Map(), names: new Map(), transfers: new Map(), backlog: undefined })

const key = (peerId: string, path: string) => `${peerId}\u0000${path}`

const transferOf = (state: ProgressState, path: string, peerId: string, now: number, fetchBytes: number, bytes = fetchBytes) => {
  const k = key(peerId, path)
  let t = state.transfers.get(k)
  if (t === undefined) {
    t = { path, peerId, bytes, fetchBytes, received: 0, startedAt: now, lastEventAt: now, samples: [{ t: now, received: 0 }] }
    state.transfers.set(k, t)
  }
  return t
}

/** Keep the samples after `last.t - WINDOW_MS` and the newest one at or before it (the base). */
const trim = (samples: Array<Sample>) => {
  const last = samples[samples.length - 1]!
  let base = 0
  for (let i = 0; i < samples.length; i++) if (samples[i]!.t <= last.t - WINDOW_MS) base = i
  if (base > 0) samples.splice(0, base)
}

/** Bytes per second over the window; `undefined` while too young to tell, 0 when stalled. */
export const transferRate = (t: Pick<Transfer, "samples">, now: number): number | undefined => {
  const last = t.samples[t.samples.length - 1]
  const base = t.samples[0]
  if (last === undefined || base === undefined) return undefined
  if (now - last.t > STALL_MS) return 0
  const dt = last.t - base.t
  if (dt < 200) return undefined
  return ((last.received - base.received) * 1000) / dt
}

/** A tone for the permanent line's first word; a `banner` line has no time and no colour. */
export type Tone = "good" | "info" | "warn" | "bad" | "banner"

/** A permanent line: `verb` takes the colour of `tone`; `rest` is already escaped. */
export interface ProgressLine {
  readonly tone: Tone
  readonly verb: string
  readonly rest: string
}

/** Our own folder: shown as is (backslashes and all), only controls and invisible characters escaped. */
const localPath = (path: string): string => path.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu, printable)

const peerLabel = (state: ProgressState, peerId: string): string => {
  const name = state.names.get(peerId)
  return name === undefined ? shortId(peerId) : `${printable(name)} (${shortId(peerId)})`
}

/**
 * Apply one event to the state; returns the permanent line it calls for, if any.
 * `TransferStarted`, `TransferProgress` and `Backlog` only update the state.
 */
export const applyEvent = (state: ProgressState, event: NodeEvent, now: number): ProgressLine | undefined => {
  const forget = (path: string, peerId: string) => state.transfers.delete(key(peerId, path))
  switch (event._tag) {
    case "Started":
      // The start-up banner, as the CLI always printed it (tests and scripts look for it): untimed, uncoloured.
      return {
        tone: "banner",
        verb: "dsync",
        rest: `${printable(event.name)} · id ${shortId(event.peerId)} · folder ${localPath(event.folder)} · listening on ${printable(event.address)}`
      }
    case "PeerConnected": {
      state.peers.set(event.peerId, event.name)
      state.names.set(event.peerId, event.name)
      return { tone: "good", verb: "connected", rest: `to ${peerLabel(state, event.peerId)} at ${printable(event.address)}` }
    }
    case "PeerDisconnected": {
      state.peers.delete(event.peerId)
      state.names.set(event.peerId, event.name)
      for (const [k, t] of state.transfers) if (t.peerId === event.peerId) state.transfers.delete(k)
      return { tone: "warn", verb: "disconnected", rest: `from ${peerLabel(state, event.peerId)} at ${printable(event.address)}: ${printable(event.reason)}` }
    }
    case "TransferStarted": {
      const t = transferOf(state, event.path, event.peerId, now, event.fetchBytes, event.bytes)
      t.bytes = event.bytes
      t.fetchBytes = event.fetchBytes
      t.lastEventAt = now
      return undefined
    }
    case "TransferProgress": {
      const t = transferOf(state, event.path, event.peerId, now, event.fetchBytes)
      t.fetchBytes = event.fetchBytes
      t.received = event.received
      t.lastEventAt = now
      const last = t.samples[t.samples.length - 1]
      if (last !== undefined && last.t === now) t.samples[t.samples.length - 1] = { t: now, received: event.received }
      else t.samples.push({ t: now, received: event.received })
      trim(t.samples)
      return undefined
    }
    case "FileReceived": {
      forget(event.path, event.peerId)
      const from = `from ${peerLabel(state, event.peerId)}`
      if (event.kind !== "file") {
        return { tone: "good", verb: "received", rest: `${event.kind === "dir" ? "folder" : "symlink"} ${showPath(event.path)} ${from}` }
      }
      const fetched = event.fetchedBytes < event.bytes ? `, ${formatBytes(event.fetchedBytes)} fetched` : ""
      return {
        tone: "good",
        verb: "received",
        rest: `${showPath(event.path)} (${formatBytes(event.bytes)} in ${formatElapsed(event.durationMs)}${fetched}) ${from}`
      }
    }
    case "TransferFailed": {
      forget(event.path, event.peerId)
      return { tone: "bad", verb: "failed", rest: `${showPath(event.path)} from ${peerLabel(state, event.peerId)}: ${printable(event.reason)} (tried again later)` }
    }
    case "FileSent":
      return {
        tone: "info",
        verb: "sent",
        rest: `${showPath(event.path)} (${formatBytes(event.bytes)} in ${formatElapsed(event.durationMs)}) to ${peerLabel(state, event.peerId)}`
      }
    case "FileDeleted":
      forget(event.path, event.peerId)
      return { tone: "info", verb: "deleted", rest: `${showPath(event.path)} (deleted on ${peerLabel(state, event.peerId)}; kept in the trash)` }
    case "ConflictKept":
      return { tone: "warn", verb: "conflict", rest: `on ${showPath(event.path)}: ours kept as ${showPath(event.keptAs)}` }
    case "Refused":
      return { tone: "bad", verb: "refused", rest: `${showPath(event.path)} from ${peerLabel(state, event.peerId)}: ${printable(event.reason)}` }
    case "Backlog":
      state.backlog = { files: event.files, bytes: event.bytes }
      return undefined
  }
}

const SGR: Record<Exclude<Tone, "banner">, string> = { good: "32", info: "36", warn: "33", bad: "31" }

/** `HH:MM:SS verb rest`; coloured verb and dim time when `color`. A banner is just `verb rest`. */
export const formatLine = (line: ProgressLine, now: number, color: boolean): string =>
  line.tone === "banner"
    ? `${line.verb} ${line.rest}`
    : color
    ? `\x1b[2m${clockTime(now)}\x1b[0m \x1b[${SGR[line.tone]}m${line.verb}\x1b[0m ${line.rest}`
    : `${clockTime(now)} ${line.verb} ${line.rest}`

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** The live block for `width` columns: a line per transfer (at most MAX_TRANSFER_LINES), then the overall line. */
export const statusLines = (state: ProgressState, now: number, width: number): Array<string> => {
  const lines: Array<string> = []
  const transfers = Array.from(state.transfers.values()).sort((a, b) => a.startedAt - b.startedAt)
  let total = 0
  let measured = false
  for (const t of transfers) {
    const rate = transferRate(t, now)
    if (rate !== undefined) measured = true
    total += rate ?? 0
  }
  for (const t of transfers.slice(0, MAX_TRANSFER_LINES)) {
    const rate = transferRate(t, now)
    const left = Math.max(0, t.fetchBytes - t.received)
    const pct = t.fetchBytes > 0 ? `${Math.min(100, Math.floor((t.received * 100) / t.fetchBytes))}%` : ""
    const speed = rate === undefined ? "--" : rate === 0 ? "stalled" : formatRate(rate)
    const eta = rate === undefined || rate === 0 ? "--" : formatEta(left / rate)
    const stats = t.fetchBytes === 0
      ? `  local copy, ${formatBytes(t.bytes)}`
      : `  ${formatBytes(t.received)}/${formatBytes(t.fetchBytes)} ${pct.padStart(4)}  ${speed.padStart(11)}  ETA ${eta}`
    const room = width - 2 - displayWidth(stats)
    const path = showPath(t.path)
    lines.push(truncateEnd(room >= 8 ? `  ${truncateStart(path, room)}${stats}` : `  ${path}${stats}`, width))
  }
  if (transfers.length > MAX_TRANSFER_LINES) lines.push(truncateEnd(`  ... and ${transfers.length - MAX_TRANSFER_LINES} more`, width))

  const parts = [state.peers.size === 0 ? "no peers connected" : plural(state.peers.size, "peer")]
  if (transfers.length > 0) parts.push(`${transfers.length} downloading${measured ? ` at ${formatRate(total)}` : ""}`)
  const backlog = state.backlog
  if (backlog !== undefined && (backlog.files > 0 || backlog.bytes > 0)) {
    const eta = total > 0 && backlog.bytes > 0 ? `, ETA ${formatEta(backlog.bytes / total)}` : ""
    parts.push(`${plural(backlog.files, "file")}, ${formatBytes(backlog.bytes)} left${eta}`)
  } else if (backlog !== undefined && transfers.length === 0) parts.push("up to date")
  lines.push(truncateEnd(parts.join(" | "), width))
  return lines
}

// ---------------------------------------------------------------------------------------
// Terminal sequences

/** Cursor up `n` lines (CUU). */
export const cursorUp = (n: number) => `\x1b[${n}A`
/** Erase the whole line (EL 2). */
export const CLEAR_LINE = "\x1b[2K"
/** Erase from the cursor to the end of the screen (ED 0). */
export const CLEAR_DOWN = "\x1b[J"

const widthOf = (out: ProgressOutput) => {
  const columns = out.columns
  // One column short: writing into the last column leaves some terminals in a pending-wrap state.
  return typeof columns === "number" && columns > 1 ? columns - 1 : 79
}

type Input =
  | { readonly _tag: "Event"; readonly event: NodeEvent }
  | { readonly _tag: "Message"; readonly text: string }

const inputs = (events: Stream.Stream<NodeEvent>, messages: Stream.Stream<string> | undefined): Stream.Stream<Input> => {
  const ev = Stream.map(events, (event): Input => ({ _tag: "Event", event }))
  if (messages === undefined) return ev
  // The view ends with the event stream; messages alone do not keep it up.
  return Stream.merge(ev, Stream.map(messages, (text): Input => ({ _tag: "Message", text })), { haltStrategy: "left" })
}

/** The live view: state, lines waiting to go above the block, and how many lines the block has on screen. */
const makeLiveView = (out: ProgressOutput, color: boolean) => {
  const state = makeState()
  const pending: Array<string> = []
  let drawn = 0
  let frame = ""
  const erase = () => (drawn > 0 ? `${cursorUp(drawn)}\r${CLEAR_DOWN}` : "")
  return {
    apply: (input: Input, now: number) => {
      if (input._tag === "Message") pending.push(input.text.replace(/\n+$/, ""))
      else {
        const line = applyEvent(state, input.event, now)
        if (line !== undefined) pending.push(formatLine(line, now, color))
      }
    },
    /** One redraw: permanent lines first (above), then the block; nothing when nothing changed. */
    tick: (now: number) => {
      for (const [k, t] of state.transfers) if (now - t.lastEventAt > FORGET_MS) state.transfers.delete(k)
      const lines = statusLines(state, now, widthOf(out))
      const next = lines.join("\n")
      if (pending.length === 0 && next === frame && drawn === lines.length) return
      let s: string
      if (pending.length > 0) {
        s = erase() + pending.join("\n") + "\n" + lines.map((l) => l + "\n").join("")
        pending.length = 0
      } else {
        s = (drawn > 0 ? cursorUp(drawn) : "") + lines.map((l) => `\r${CLEAR_LINE}${l}\n`).join("")
        if (lines.length < drawn) s += CLEAR_DOWN
      }
      drawn = lines.length
      frame = next
      out.write(s)
    },
    /** Erase the block, then print what is still pending. */
    close: () => {
      let s = erase()
      drawn = 0
      frame = ""
      if (pending.length > 0) s += pending.join("\n") + "\n"
      pending.length = 0
      if (s !== "") out.write(s)
    }
  }
}

/**
 * Render the node's events on `out` until `events` ends or the fiber is interrupted.
 *
 * - `live` (a terminal): a status line per download in progress (escaped path cut to the
 *   width, bytes done/total, percent, rate over the last 5 s, ETA) and an overall line
 *   (peers connected, downloads and total rate, files and bytes left from the latest
 *   Backlog, ETA), redrawn in place at most every `refreshMs` (100 ms); completed
 *   files, peer joins/leaves, conflicts, refusals and failures are printed above the
 *   block; on exit the block is erased.
 * - `plain`: one `HH:MM:SS verb ...` line per completed file, peer event, conflict,
 *   refusal and failure; progress and backlog print nothing; no ANSI codes.
 * - Both: `Started` prints the start-up banner `dsync <name> · id <short> · folder <dir>
 *   · listening on <addr>` (untimed), which the CLI printed before.
 */
export const renderProgress = (
  events: Stream.Stream<NodeEvent>,
  out: ProgressOutput,
  options: ProgressOptions
): Effect.Effect<void> => {
  const now = options.now !== undefined ? Effect.sync(options.now) : Clock.currentTimeMillis
  const mode = options.mode ?? (out.isTTY ? "live" : "plain")
  const all = inputs(events, options.messages)

  if (mode === "plain") {
    const state = makeState()
    return Stream.runForEach(all, (input) =>
      Effect.map(now, (t) => {
        if (input._tag === "Message") return out.write(input.text.replace(/\n+$/, "") + "\n")
        const line = applyEvent(state, input.event, t)
        if (line !== undefined) out.write(formatLine(line, t, false) + "\n")
      }))
  }

  return Effect.scoped(
    Effect.gen(function*() {
      const view = makeLiveView(out, options.color)
      yield* Effect.addFinalizer(() => Effect.sync(() => view.close()))
      // Added after the view's finalizer, so it is interrupted before the block is erased.
      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.flatMap(now, (t) => Effect.sync(() => view.tick(t))),
          Schedule.spaced(Duration.millis(options.refreshMs ?? 100))
        )
      )
      yield* Stream.runForEach(all, (input) => Effect.flatMap(now, (t) => Effect.sync(() => view.apply(input, t))))
    })
  )
}
