// Fixed-width hexadecimal text for 64-bit values (TXIDs, checksums): the spelling LTX file names and
// positions use. Always 16 lowercase digits, so names sort in TXID order.

import { LtxError } from "./errors.js";

export const UINT64_MAX = (1n << 64n) - 1n;

const HEX16 = /^[0-9a-f]{16}$/;

/** Formats `value` (0 ≤ value < 2^64) as 16 lowercase hex digits. */
export function formatHex64(value: bigint): string {
  if (value < 0n || value > UINT64_MAX) throw new RangeError(`not a 64-bit unsigned value: ${value}`);
  return value.toString(16).padStart(16, "0");
}

/**
 * Parses exactly 16 lowercase hex digits. `what` names the field for the error (e.g. "TXID").
 * Uppercase is refused: names are compared as strings elsewhere, so one spelling must be canonical.
 */
export function parseHex64(text: string, what: string): bigint {
  if (!HEX16.test(text)) {
    throw new LtxError(
      "ELTXHEADER",
      `invalid ${what} ${JSON.stringify(text)}: want 16 lowercase hex digits`,
      {
        rule: `${what} format`,
      },
    );
  }
  return BigInt("0x" + text);
}
