// LTX file names: `%016x-%016x.ltx`, the minimum and maximum TXID in lowercase hex, so that a
// directory listing sorted by name is sorted by TXID.

import { LtxError } from "./errors.js";
import { formatHex64 } from "./hex64.js";

export interface TxidRange {
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
}

const FILE_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/;

/** The file name for a TXID range; `minTxid ≤ maxTxid`, both non-zero. */
export function formatFileName(minTxid: bigint, maxTxid: bigint): string {
  if (minTxid <= 0n || maxTxid < minTxid) {
    throw new RangeError(`invalid TXID range ${minTxid}-${maxTxid}: need 0 < min ≤ max`);
  }
  return `${formatHex64(minTxid)}-${formatHex64(maxTxid)}.ltx`;
}

/** The 16 hex digits of `name` from `at` as a TXID (two 32-bit halves: faster than BigInt("0x…")). */
function hexTxid(name: string, at: number): bigint {
  const hi = Number.parseInt(name.slice(at, at + 8), 16);
  const lo = Number.parseInt(name.slice(at + 8, at + 16), 16);
  return hi < 0x200000 ? BigInt(hi * 0x100000000 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * The TXID range of a well-formed LTX file name, or null (a directory listing's hot path: one check
 * of the pattern, no exception).
 */
export function ltxFileNameRange(name: string): TxidRange | null {
  if (name.length !== 37 || !FILE_NAME.test(name)) return null;
  const minTxid = hexTxid(name, 0);
  const maxTxid = hexTxid(name, 17);
  return minTxid === 0n || maxTxid < minTxid ? null : { minTxid, maxTxid };
}

/**
 * Parses a bare file name (no directory). Throws LtxError (ELTXHEADER, rule "file name") when the name
 * is not exactly `%016x-%016x.ltx` or the range is empty or starts at 0.
 */
export function parseFileName(name: string): TxidRange {
  const match = FILE_NAME.exec(name);
  if (match === null) {
    throw new LtxError("ELTXHEADER", `invalid LTX file name ${JSON.stringify(name)}: want %016x-%016x.ltx`, {
      rule: "file name",
    });
  }
  const minTxid = BigInt("0x" + match[1]);
  const maxTxid = BigInt("0x" + match[2]);
  if (minTxid === 0n || maxTxid < minTxid) {
    throw new LtxError(
      "ELTXHEADER",
      `invalid LTX file name ${JSON.stringify(name)}: need 0 < min TXID ≤ max TXID`,
      {
        rule: "file name",
      },
    );
  }
  return { minTxid, maxTxid };
}

/** True when `name` is a well-formed LTX file name. */
export function isLtxFileName(name: string): boolean {
  return ltxFileNameRange(name) !== null;
}
