// `hexdump -C`-style rows for `litefs ltx dump`: 16 bytes a row, offset, hex, printable ASCII; runs of
// rows identical to the one before are folded into a single "*" line (pages are mostly zeros).

const ROW = 16;

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".";
}

function sameRow(data: Uint8Array, a: number, b: number): boolean {
  if (b + ROW > data.length) return false;
  for (let i = 0; i < ROW; i++) if (data[a + i] !== data[b + i]) return false;
  return true;
}

/** The rows for `data`, each prefixed by `indent`. The last row is always shown. */
export function hexdumpLines(data: Uint8Array, indent = "  "): string[] {
  const lines: string[] = [];
  let folding = false;
  for (let at = 0; at < data.length; at += ROW) {
    const isLast = at + ROW >= data.length;
    if (at > 0 && !isLast && sameRow(data, at - ROW, at)) {
      if (!folding) lines.push(`${indent}*`);
      folding = true;
      continue;
    }
    folding = false;
    const row = data.subarray(at, Math.min(at + ROW, data.length));
    const hex = Array.from(row, (b, i) => b.toString(16).padStart(2, "0") + (i === 7 ? " " : "")).join(" ");
    lines.push(
      `${indent}${at.toString(16).padStart(8, "0")}  ${hex.padEnd(ROW * 3)}  |${Array.from(row, printable).join("")}|`,
    );
  }
  return lines;
}
