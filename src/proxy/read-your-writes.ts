// Read-your-writes across nodes. A write's answer carries the database's TXID after the write (cookie
// and header); a later read on a replica that carries it waits until the local copy has caught up to
// it, so a client never reads a state older than its own last write — wherever the load balancer sends
// it. Bounded by `proxy.txid-wait-timeout` (then 504: better a clear failure than a stale page).

import type { IncomingHttpHeaders } from "node:http";

import type { ExchangeLifetime } from "./exchange-lifetime.js";
import type { ProxyMetrics } from "./proxy-metrics.js";
import { ProxyError } from "./proxy-error.js";
import type { ProxyNodeView } from "./proxy-node-view.js";
import { TXID_HEADER, formatTxid, requestedTxid, txidSetCookie } from "./txid-token.js";
import { waitForLocalTxid } from "./txid-wait.js";

export interface ReadYourWritesOptions {
  readonly view: ProxyNodeView;
  readonly db: string;
  readonly timeoutMs: number;
  readonly metrics: ProxyMetrics;
}

export class ReadYourWrites {
  readonly #opts: ReadYourWritesOptions;

  constructor(opts: ReadYourWritesOptions) {
    this.#opts = opts;
  }

  /**
   * Resolves once the local database has reached the TXID the request carries (at once when it carries
   * none). Rejects with EPROXYBADTXID (malformed), EPROXYTXIDTIMEOUT, or the reason the exchange ended.
   */
  async admit(headers: IncomingHttpHeaders, lifetime: ExchangeLifetime): Promise<void> {
    const { view, db, timeoutMs, metrics } = this.#opts;
    const wanted = requestedTxid(headers.cookie, headers[TXID_HEADER]);
    if (wanted === undefined || view.txid(db) >= wanted) return;
    const result = await waitForLocalTxid(view, db, wanted, timeoutMs, lifetime.signal);
    metrics.countTxidWait(result.outcome, result.waitedMs);
    if (result.outcome === "reached") return;
    if (result.outcome === "aborted") throw lifetime.reason;
    throw new ProxyError(
      "EPROXYTXIDTIMEOUT",
      `timed out after ${timeoutMs} ms waiting for database "${db}" to reach TXID ${formatTxid(wanted)} ` +
        `(this replica is at ${formatTxid(view.txid(db))}, ${Math.round(view.lagMs())} ms behind the primary); ` +
        `retry shortly`,
      { retryAfterSeconds: 1 },
    );
  }

  /** Headers for a write's answer: the TXID now, as `Litefs-Txid` and the `__txid` cookie. */
  stampHeaders(): string[] {
    const txid = this.#opts.view.txid(this.#opts.db);
    return ["Litefs-Txid", formatTxid(txid), "Set-Cookie", txidSetCookie(txid)];
  }
}
