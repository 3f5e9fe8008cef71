// The TXID a client carries between a write and its following reads (read-your-writes): the `__txid`
// cookie LiteFS sets for browsers, and the `Litefs-Txid` header for API clients. Both hold the TXID as
// LTX writes it, 16 lower-case hex digits; 1 to 16 hex digits of either case are accepted on input.

import { ProxyError } from "./proxy-error.js";

export const TXID_COOKIE = "__txid";
export const TXID_HEADER = "litefs-txid";
/** How long browsers keep the cookie: long enough to cover any sane replication lag. */
export const TXID_COOKIE_MAX_AGE_SECONDS = 300;

const TXID_TEXT = /^[0-9a-fA-F]{1,16}$/;

export function formatTxid(txid: bigint): string {
  if (txid < 0n || txid > 0xffff_ffff_ffff_ffffn) throw new RangeError(`formatTxid: ${txid} is not a u64`);
  return txid.toString(16).padStart(16, "0");
}

/** The TXID in `text`, or undefined when it is not 1–16 hex digits. */
export function parseTxid(text: string): bigint | undefined {
  const trimmed = text.trim();
  return TXID_TEXT.test(trimmed) ? BigInt("0x" + trimmed) : undefined;
}

/** The Set-Cookie value that records `txid` in the browser. */
export function txidSetCookie(txid: bigint): string {
  return `${TXID_COOKIE}=${formatTxid(txid)}; Path=/; Max-Age=${TXID_COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax`;
}

/** The Set-Cookie value that removes a bad cookie, so that a browser is not stuck with it. */
export function txidClearCookie(): string {
  return `${TXID_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`;
}

/**
 * The TXID a read must wait for: the larger of the `__txid` cookie(s) and the `Litefs-Txid` header.
 * Undefined when the request carries neither. Throws BadTxidError (EPROXYBADTXID) when either is present
 * but malformed.
 */
export function requestedTxid(
  cookieHeader: string | undefined,
  txidHeader: string | string[] | undefined,
): bigint | undefined {
  let wanted: bigint | undefined;
  const consider = (value: bigint): void => {
    if (wanted === undefined || value > wanted) wanted = value;
  };
  const headerValues = txidHeader === undefined ? [] : Array.isArray(txidHeader) ? txidHeader : [txidHeader];
  for (const value of headerValues) {
    const parsed = parseTxid(value);
    if (parsed === undefined) {
      throw new BadTxidError(
        `header Litefs-Txid "${truncate(value)}" is not a TXID (1 to 16 hex digits)`,
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
      const parsed = parseTxid(value);
      if (parsed === undefined) {
        throw new BadTxidError(
          `cookie ${TXID_COOKIE} "${truncate(value)}" is not a TXID (1 to 16 hex digits)`,
          true,
        );
      }
      consider(parsed);
    }
  }
  return wanted;
}

/** A malformed TXID; `fromCookie` tells the proxy to clear the cookie in its 400 answer. */
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
