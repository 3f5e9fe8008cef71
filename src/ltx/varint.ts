// Unsigned LEB128 varints (Go's encoding/binary uvarint), as the v3 page index stores them. Values are
// limited to 2^53 − 1 (page numbers, offsets and sizes all fit) and only the canonical, shortest
// encoding is accepted, so an index has exactly one valid spelling.

export const MAX_UVARINT_BYTES = 8; // ceil(53 / 7)

export function uvarintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Writes `value` at `buf[pos]`; returns the position after it. The caller sized `buf`. */
export function writeUvarint(buf: Uint8Array, pos: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`uvarint value ${value} out of range`);
  while (value >= 0x80) {
    buf[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[pos++] = value;
  return pos;
}

export type UvarintProblem = "overflow" | "overlong";

export interface UvarintRead {
  value: number;
  /** Bytes consumed. */
  length: number;
}

/**
 * Reads one uvarint at `buf[pos]`. Returns undefined when `buf` ends inside it (more input may
 * complete it), or a problem string when it is not a canonical value below 2^53.
 */
export function readUvarint(buf: Uint8Array, pos: number): UvarintRead | UvarintProblem | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < MAX_UVARINT_BYTES; i++) {
    if (pos + i >= buf.length) return undefined;
    const byte = buf[pos + i];
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) return "overlong";
      if (!Number.isSafeInteger(value)) return "overflow";
      return { value, length: i + 1 };
    }
    scale *= 128;
  }
  return "overflow";
}
