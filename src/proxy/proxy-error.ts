// Errors the proxy answers itself (as opposed to answers relayed from the app or the primary). Each has a
// stable `code`, sent to the client in the `Litefs-Proxy-Error` response header so that clients and
// tests can tell a proxy refusal from the app's own error, and the HTTP status it maps to.

import type { ExchangeLifetime } from "./exchange-lifetime.js";

export type ProxyErrorCode =
  | "EPROXYAPPDOWN" // the app (proxy.target) did not accept a connection within the retry window
  | "EPROXYPRIMARYDOWN" // the primary's proxy did not accept a connection within the retry window
  | "EPROXYUPSTREAM" // the app or the primary failed after the connection was made (reset, bad reply)
  | "EPROXYNOPRIMARY" // a write reached a replica and no primary became known in time
  | "EPROXYLOOP" // a request already forwarded once would have to be forwarded again
  | "EPROXYTXIDTIMEOUT" // a read waited too long for the local database to reach the client's TXID
  | "EPROXYTXIDBRANCH" // the local history does not hold the client's position and no primary can serve
  | "EPROXYBADTXID" // a `__txid` cookie or `Litefs-Txid` header that is not a TXID
  | "EPROXYWRITETIMEOUT" // the whole exchange took longer than proxy.write-timeout
  | "EPROXYLEASELOST" // the app answered a write after this primary's lease ended: its outcome is unknown
  | "EPROXYMETHOD"; // a method the proxy's own route does not serve (e.g. POST /litefs/health)

const STATUS_BY_CODE: Record<ProxyErrorCode, number> = {
  EPROXYAPPDOWN: 502,
  EPROXYPRIMARYDOWN: 502,
  EPROXYUPSTREAM: 502,
  EPROXYNOPRIMARY: 503,
  EPROXYLOOP: 503,
  EPROXYTXIDTIMEOUT: 504,
  EPROXYTXIDBRANCH: 503,
  EPROXYBADTXID: 400,
  EPROXYWRITETIMEOUT: 504,
  EPROXYLEASELOST: 503,
  EPROXYMETHOD: 405,
};

/** Header naming the code on every response the proxy produces as an error. */
export const PROXY_ERROR_HEADER = "litefs-proxy-error";

export class ProxyError extends Error {
  override readonly name = "ProxyError";
  readonly code: ProxyErrorCode;
  /** The HTTP status the client receives. */
  readonly status: number;
  /** Seconds a client should wait before retrying (sent as Retry-After), when retrying makes sense. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ProxyErrorCode,
    detail: string,
    options: { cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(`${detail} (${code})`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = STATUS_BY_CODE[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isProxyError(err: unknown): err is ProxyError {
  return err instanceof ProxyError;
}

/** A request that already went through one proxy and would have to be forwarded again. */
export function forwardLoopError(): ProxyError {
  return new ProxyError(
    "EPROXYLOOP",
    "this node is not the primary, and the request was already forwarded by another LiteFS proxy that " +
      "took this node for the primary (a primary change in progress?); not forwarding it a second time",
    { retryAfterSeconds: 1 },
  );
}

/** The reason an exchange is aborted when its client disconnects: nobody is left to answer. */
export class ClientGoneError extends Error {
  override readonly name = "ClientGoneError";

  constructor() {
    super("the client closed the connection");
  }
}

/**
 * The error to answer for a failed exchange: the reason it ended when it was ended early (timers and
 * requests then fail with a generic abort error), else `err` itself, wrapped when it is not a
 * ProxyError (then a bug or an unexpected failure: 502 with its message).
 */
export function exchangeFailure(err: unknown, lifetime: ExchangeLifetime): ProxyError | ClientGoneError {
  const reason: unknown = lifetime.ended ? lifetime.reason : err;
  if (reason instanceof ProxyError || reason instanceof ClientGoneError) return reason;
  const message = reason instanceof Error ? reason.message : String(reason);
  return new ProxyError("EPROXYUPSTREAM", `unexpected failure while proxying: ${message}`, { cause: reason });
}
