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

/** Log lines on stderr (stdout stays free for output). */
export const stderrLogger = Logger.make((options) => void process.stderr.write(formatLogLine(options) + "\n"))
