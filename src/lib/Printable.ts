/**
 * Text from peers (names, paths) made safe to log: control characters (C0, DEL, C1),
 * line and paragraph separators, bidirectional overrides and isolates, other invisible
 * format characters and lone surrogates are shown as `\uXXXX` (and `\` as `\\`, `"` as
 * `\"`), so a peer cannot forge log lines, send terminal escapes, or make
 * `admin\u202egnp.exe` read as `adminexe.png`.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\\"]/gu

const escape = (c: string): string => {
  if (c === "\\" || c === "\"") return `\\${c}`
  const code = c.codePointAt(0)!
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/** `text` with every unsafe character escaped as described above; the rest unchanged. */
export const printable = (text: string): string => text.replace(UNSAFE, escape)

/** A path for a log line: escaped, and quoted when it was escaped or has spaces at its ends, so its ends show. */
export const showPath = (relPath: string): string => {
  const shown = printable(relPath)
  return shown !== relPath || relPath.trim() !== relPath || relPath === "" ? `"${shown}"` : shown
}
