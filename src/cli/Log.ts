/** The command's log lines (kept apart from Run.ts so --help and --version load none of the node). */
import * as Cause from "effect/Cause"
import * as Logger from "effect/Logger"
import { inspect } from "node:util"

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** `HH:MM:SS.mmm LEVEL message key=value`: one log line. */
export const formatLogLine = ({ annotations, cause, date, logLevel, message }: Logger.Logger.Options<unknown>): string => {
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  const parts = (Array.isArray(message) ? message : [message]).map((m) => (typeof m === "string" ? m : inspect(m)))
  let line = `${time} ${logLevel.label.padEnd(5)} ${parts.join(" ")}`
  for (const [key, value] of annotations) line += ` ${key}=${typeof value === "string" ? value : inspect(value)}`
  if (!Cause.isEmpty(cause)) {
    const err = Cause.squash(cause)
    line += `: ${err instanceof Error ? err.message : inspect(err)}`
  }
  return line
}

/** Lines logged in this turn of the event loop, written together at its end. */
let buffered = ""
let scheduled = false
/** Characters held before they are written anyway. */
const FLUSH_AT = 64 * 1024

/** Write the log lines held; call before writing anything else on stderr, so the order holds. */
export const flushLog = (): void => {
  scheduled = false
  if (buffered === "") return
  const out = buffered
  buffered = ""
  process.stderr.write(out)
}

/**
 * Log lines on stderr (stdout stays free for output). A turn's lines go out in one write
 * at its end: a line per file synced, one write each, cost 70 us a file (stderr is
 * synchronous on pipes and files). Whatever is held is written at exit.
 */
export const stderrLogger = Logger.make((options) => {
  buffered += formatLogLine(options) + "\n"
  if (buffered.length >= FLUSH_AT) return flushLog()
  if (scheduled) return
  scheduled = true
  setImmediate(flushLog)
})
process.on("exit", flushLog)
