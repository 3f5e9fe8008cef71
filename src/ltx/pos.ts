// A replication position: the last applied TXID and the database's rolling checksum after it.
// Its text form is `%016x/%016x` (TXID/checksum), as LiteFS writes it.

import { LtxError } from "./errors.js";
import { formatHex64, parseHex64 } from "./hex64.js";

export interface Pos {
  readonly txid: bigint;
  readonly checksum: bigint;
}

/** The position of a database that has never had a transaction: TXID 0, no checksum. */
export const ZERO_POS: Pos = Object.freeze({ txid: 0n, checksum: 0n });

export function formatPos(pos: Pos): string {
  return `${formatHex64(pos.txid)}/${formatHex64(pos.checksum)}`;
}

/** Parses `%016x/%016x`; throws LtxError (ELTXHEADER, rule "position format") on anything else. */
export function parsePos(text: string): Pos {
  if (text.length !== 33 || text[16] !== "/") {
    throw new LtxError(
      "ELTXHEADER",
      `invalid position ${JSON.stringify(text)}: want TXID/CHECKSUM as 16+16 hex digits`,
      {
        rule: "position format",
      },
    );
  }
  return { txid: parseHex64(text.slice(0, 16), "TXID"), checksum: parseHex64(text.slice(17), "checksum") };
}

export function posEqual(a: Pos, b: Pos): boolean {
  return a.txid === b.txid && a.checksum === b.checksum;
}

export function isZeroPos(pos: Pos): boolean {
  return pos.txid === 0n && pos.checksum === 0n;
}
