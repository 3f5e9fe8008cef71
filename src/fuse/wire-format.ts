// Little-endian primitives of the FUSE wire format. The kernel's 64-bit integers are read as JS
// numbers where the value is an id or offset this side chose or that fits 2^53 (node ids, file
// handles, offsets, sizes, request ids), and as bigint where every bit matters (lock owners, lock
// ranges). Names are NUL-terminated byte strings, decoded as UTF-8; a name that is not valid UTF-8 is
// refused (EILSEQ) rather than decoded with replacement characters, which would give two different
// names ("a\xff", "a\xfe") one string and so one file.

import { isUtf8 } from "node:buffer";
import { FuseError } from "./errors.js";

const TWO_32 = 4294967296;

/** Reads an unsigned 64-bit value as a number (exact below 2^53, which ids and offsets are). */
export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset + 4) * TWO_32 + buf.readUInt32LE(offset);
}

/** Writes a non-negative integer below 2^64 as an unsigned 64-bit value. */
export function writeU64(buf: Buffer, offset: number, value: number): void {
  const hi = Math.floor(value / TWO_32);
  buf.writeUInt32LE(value - hi * TWO_32, offset);
  buf.writeUInt32LE(hi, offset + 4);
}

/** Writes a signed 64-bit integer (times before 1970 are negative seconds). */
export function writeI64(buf: Buffer, offset: number, value: number): void {
  if (value >= 0) writeU64(buf, offset, value);
  else buf.writeBigInt64LE(BigInt(value), offset);
}

/** Splits a duration in milliseconds into the kernel's (seconds, nanoseconds) pair. */
export function splitTimeoutMs(ms: number): [seconds: number, nanoseconds: number] {
  if (!(ms > 0)) return [0, 0];
  const seconds = Math.floor(ms / 1000);
  const nanoseconds = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  return [seconds, nanoseconds];
}

/** Splits a time in milliseconds since the epoch into (seconds, nanoseconds), seconds possibly negative. */
export function splitTimeMs(ms: number): [seconds: number, nanoseconds: number] {
  const seconds = Math.floor(ms / 1000);
  const nanoseconds = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1e6)));
  return [seconds, nanoseconds];
}

/** Joins (seconds, nanoseconds) read from the kernel into milliseconds since the epoch. */
export function joinTimeMs(seconds: number, nanoseconds: number): number {
  return seconds * 1000 + nanoseconds / 1e6;
}

/**
 * Reads the NUL-terminated name at `offset`, not looking past `end`. Returns the name and the offset
 * just after its NUL; null when there is no NUL before `end` (a malformed request). Throws FuseError
 * EILSEQ when the bytes are not UTF-8 (a name JS strings cannot carry exactly).
 */
export function readName(buf: Buffer, offset: number, end: number): { name: string; next: number } | null {
  const nul = buf.subarray(0, end).indexOf(0, offset);
  if (nul < 0) return null;
  const bytes = buf.subarray(offset, nul);
  if (!isUtf8(bytes)) throw new FuseError("EILSEQ", `name ${bytes.toString("hex")} is not UTF-8`);
  return { name: bytes.toString("utf8"), next: nul + 1 };
}
