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
  const match = FILE_NAME.exec(name);
  if (match === null) return false;
  const minTxid = BigInt("0x" + match[1]);
  return minTxid !== 0n && BigInt("0x" + match[2]) >= minTxid;
}
