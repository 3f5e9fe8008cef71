// The read-your-writes token a client carries between a write and its following reads: the `__txid`
// cookie LiteFS sets for browsers, and the `Litefs-Txid` header for API clients. Both hold the same
// text, the database's position after the write: `TXID/CHECKSUM`, 16 + 16 lower-case hex digits (the
// post-apply checksum of that TXID, as `/pos` and `<db>-pos` write positions).
//
// The checksum is what makes the token safe across a failover: a node serves the read only when its
// own history holds that TXID *with that checksum*. A bare TXID (1 to 16 hex digits, what older
// proxies set) is still accepted but weaker: it is satisfied by any history that reached the TXID —
// including a deposed primary's diverged one.

import { ProxyError } from "./proxy-error.js";

export const TXID_COOKIE = "__txid";
export const TXID_HEADER = "litefs-txid";
/** How long browsers keep the cookie: long enough to cover any sane replication lag. */
export const TXID_COOKIE_MAX_AGE_SECONDS = 300;

/** A database position as the proxy sees it (structurally ltx/pos.ts `Pos`; the proxy imports no store). */
export interface TxPosition {
  readonly txid: bigint;
  readonly checksum: bigint;
}

/** What a read must find in the local history: the TXID, and its checksum unless the token is bare. */
export interface ReadToken {
  readonly txid: bigint;
  /** Undefined for a bare-TXID token (older clients): then only the TXID is compared. */
  readonly checksum: bigint | undefined;
}

const BARE_TXID_TEXT = /^[0-9a-fA-F]{1,16}$/;
const POSITION_TEXT = /^([0-9a-fA-F]{16})\/([0-9a-fA-F]{16})$/;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function formatTxid(txid: bigint): string {
  if (txid < 0n || txid > U64_MAX) throw new RangeError(`formatTxid: ${txid} is not a u64`);
  return txid.toString(16).padStart(16, "0");
}

/** The token text of `pos`: `TXID/CHECKSUM`. */
export function formatToken(pos: TxPosition): string {
  if (pos.checksum < 0n || pos.checksum > U64_MAX) {
    throw new RangeError(`formatToken: checksum ${pos.checksum} is not a u64`);
  }
  return `${formatTxid(pos.txid)}/${pos.checksum.toString(16).padStart(16, "0")}`;
}

/** The TXID in `text`, or undefined when it is not 1–16 hex digits. */
export function parseTxid(text: string): bigint | undefined {
  const trimmed = text.trim();
  return BARE_TXID_TEXT.test(trimmed) ? BigInt("0x" + trimmed) : undefined;
}

/** The token in `text` (`TXID/CHECKSUM`, or a bare TXID), or undefined when it is neither. */
export function parseToken(text: string): ReadToken | undefined {
  const trimmed = text.trim();
  const position = POSITION_TEXT.exec(trimmed);
  if (position !== null) return { txid: BigInt("0x" + position[1]), checksum: BigInt("0x" + position[2]) };
  const txid = parseTxid(trimmed);
  return txid === undefined ? undefined : { txid, checksum: undefined };
}

/** The text of `token` as a client sent it (for messages). */
export function describeToken(token: ReadToken): string {
  return token.checksum === undefined
    ? `TXID ${formatTxid(token.txid)} (bare TXID: checksum not checked)`
    : `position ${formatToken({ txid: token.txid, checksum: token.checksum })}`;
}

/** The Set-Cookie value that records `pos` in the browser. */
export function txidSetCookie(pos: TxPosition): string {
  return `${TXID_COOKIE}=${formatToken(pos)}; Path=/; Max-Age=${TXID_COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax`;
}

/** The Set-Cookie value that removes a bad cookie, so that a browser is not stuck with it. */
export function txidClearCookie(): string {
  return `${TXID_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`;
}

/**
 * The token a read must honour: of the `__txid` cookie(s) and the `Litefs-Txid` header, the one with
 * the highest TXID (at equal TXIDs one with a checksum over a bare one; between two checksums the
 * header's, then the first). Undefined when the request carries neither. Throws BadTxidError
 * (EPROXYBADTXID) when either is present but malformed.
 */
export function requestedToken(
  cookieHeader: string | undefined,
  txidHeader: string | string[] | undefined,
): ReadToken | undefined {
  let wanted: ReadToken | undefined;
  const consider = (token: ReadToken): void => {
    if (
      wanted === undefined ||
      token.txid > wanted.txid ||
      (token.txid === wanted.txid && wanted.checksum === undefined)
    ) {
      wanted = token;
    }
  };
  const headerValues = txidHeader === undefined ? [] : Array.isArray(txidHeader) ? txidHeader : [txidHeader];
  for (const value of headerValues) {
    const parsed = parseToken(value);
    if (parsed === undefined) {
      throw new BadTxidError(
        `header Litefs-Txid "${truncate(value)}" is not a position (TXID/CHECKSUM, 16+16 hex digits) or a TXID`,
        false,
      );
    }
    consider(parsed);
  }
  if (cookieHeader !== undefined) {
    for (const part of cookieHeader.split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0 || part.slice(0, eq).trim() !== TXID_COOKIE) continue;
      const value = part.slice(eq + 1);
      const parsed = parseToken(value);
      if (parsed === undefined) {
        throw new BadTxidError(
          `cookie ${TXID_COOKIE} "${truncate(value)}" is not a position (TXID/CHECKSUM, 16+16 hex digits) or a TXID`,
          true,
        );
      }
      consider(parsed);
    }
  }
  return wanted;
}

/** A malformed token; `fromCookie` tells the proxy to clear the cookie in its 400 answer. */
export class BadTxidError extends ProxyError {
  readonly fromCookie: boolean;

  constructor(detail: string, fromCookie: boolean) {
    super("EPROXYBADTXID", detail);
    this.fromCookie = fromCookie;
  }
}

function truncate(text: string): string {
  return text.length > 40 ? text.slice(0, 40) + "…" : text;
}
