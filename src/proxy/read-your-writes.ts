// Read-your-writes across nodes. A write's answer carries the database's position after the write
// (txid-token.ts: cookie and header); a later read that carries it is served only by a node whose
// history holds that position — so a client never reads a state without its own last write, wherever
// the load balancer sends it, and also not across a failover, where a deposed primary's own history
// may have reached the same TXID on another branch.
//
//   local TXID below the token's:  a replica waits until it gets there (bounded by
//                                  `proxy.txid-wait-timeout`, then 504); the primary cannot get there
//                                  by waiting — the write was made on another primary (this node may
//                                  have lost its lease without knowing yet) — so 503 at once
//   local history at the token's TXID has that checksum (or the token is a bare TXID, or this node no
//                                  longer knows that TXID's checksum — see below): served here
//   ... has another checksum:      this node is on another branch: a replica forwards the read to the
//                                  primary (whose proxy checks again), unless it was forwarded already;
//                                  otherwise 503 EPROXYTXIDBRANCH
//
// "No longer knows": the node's history reached the TXID but has no record of its checksum (a snapshot
// replaced its LTX files, or retention removed them, and the TXID is older than what the node keeps
// in memory). Such a history came from the primary as a whole, so the read is served — the same
// guarantee as a bare TXID. Nodes that diverged keep their own files until they rejoin, so they do know.

import type { IncomingHttpHeaders } from "node:http";

import type { ExchangeLifetime } from "./exchange-lifetime.js";
import type { ProxyMetrics } from "./proxy-metrics.js";
import { ProxyError } from "./proxy-error.js";
import type { ProxyNodeView } from "./proxy-node-view.js";
import {
  TXID_HEADER,
  describeToken,
  formatToken,
  formatTxid,
  requestedToken,
  txidSetCookie,
  type ReadToken,
} from "./txid-token.js";
import { waitForLocalTxid } from "./txid-wait.js";

export interface ReadYourWritesOptions {
  readonly view: ProxyNodeView;
  readonly db: string;
  readonly timeoutMs: number;
  readonly metrics: ProxyMetrics;
}

/** How a read that passed admission goes on: to the local app, or to the primary. */
export type ReadAdmission = "local" | "primary";

export interface AdmitOptions {
  /** This node is a replica and may wait for replication (false on the primary). */
  readonly mayWait: boolean;
  /** The request was forwarded here by another proxy: it must not be forwarded again. */
  readonly forwarded: boolean;
}

export class ReadYourWrites {
  readonly #opts: ReadYourWritesOptions;

  constructor(opts: ReadYourWritesOptions) {
    this.#opts = opts;
  }

  /**
   * Resolves "local" once the local history holds the position the request carries (at once when it
   * carries none), or "primary" when this replica is on another branch and the read should go to the
   * primary. Rejects with EPROXYBADTXID (malformed), EPROXYTXIDTIMEOUT, EPROXYTXIDBRANCH, or the reason
   * the exchange ended.
   */
  async admit(
    headers: IncomingHttpHeaders,
    lifetime: ExchangeLifetime,
    opts: AdmitOptions,
  ): Promise<ReadAdmission> {
    const { view, db, timeoutMs, metrics } = this.#opts;
    const token = requestedToken(headers.cookie, headers[TXID_HEADER]);
    if (token === undefined) return "local";
    if (view.txid(db) < token.txid) {
      if (!opts.mayWait) throw this.#branchError(token, "behind");
      const result = await waitForLocalTxid(view, db, token.txid, timeoutMs, lifetime.signal);
      metrics.countTxidWait(result.outcome, result.waitedMs);
      if (result.outcome === "aborted") throw lifetime.reason;
      if (result.outcome === "timed-out") {
        throw new ProxyError(
          "EPROXYTXIDTIMEOUT",
          `timed out after ${timeoutMs} ms waiting for database "${db}" to reach ${describeToken(token)} ` +
            `(this replica is at ${formatTxid(view.txid(db))}, ${Math.round(view.lagMs())} ms behind the primary); ` +
            `retry shortly`,
          { retryAfterSeconds: 1 },
        );
      }
    }
    if (token.checksum === undefined) return "local";
    const mine = view.checksumAt(db, token.txid);
    if (mine === undefined || mine === token.checksum) return "local";
    if (opts.mayWait && !opts.forwarded) return "primary";
    throw this.#branchError(token, "other-branch", mine);
  }

  /** Headers for a write's answer: the position now, as `Litefs-Txid` and the `__txid` cookie. */
  stampHeaders(): string[] {
    const pos = this.#opts.view.position(this.#opts.db);
    return ["Litefs-Txid", formatToken(pos), "Set-Cookie", txidSetCookie(pos)];
  }

  #branchError(token: ReadToken, why: "behind" | "other-branch", mine?: bigint): ProxyError {
    const { view, db } = this.#opts;
    const role = view.isPrimary() ? "this node (the primary as far as it knows)" : "this replica";
    const detail =
      why === "behind"
        ? `${role} is at TXID ${formatTxid(view.txid(db))} of database "${db}", behind your last write ` +
          `(${describeToken(token)}): it was written on another primary, and this node may have lost its ` +
          `lease without knowing yet`
        : `the history of database "${db}" on ${role} holds TXID ${formatTxid(token.txid)} with checksum ` +
          `${formatTxid(mine ?? 0n)}, not your last write (${describeToken(token)}): this node is on ` +
          `another branch of the history (a failover in progress?)` +
          (view.isPrimary() ? "" : ", and the request was already forwarded once");
    return new ProxyError(
      "EPROXYTXIDBRANCH",
      `${detail}; not serving a read that would miss it; retry shortly`,
      {
        retryAfterSeconds: 1,
      },
    );
  }
}
