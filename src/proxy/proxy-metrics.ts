// The proxy's metrics seam: three calls, made once per request, per TXID wait and per error the proxy
// answers itself. The node adapts them to its registry (Prometheus names: litefs_proxy_requests_total
// {kind}, litefs_proxy_txid_waits_total{outcome}, litefs_proxy_txid_wait_seconds_total,
// litefs_proxy_errors_total{code}); ProxyCounters keeps them as plain numbers.

import type { ProxyErrorCode } from "./proxy-error.js";
import type { TxidWaitOutcome } from "./txid-wait.js";

/** What a request turned out to be. A WebSocket upgrade counts as "websocket" wherever it went. */
export type ProxyRequestKind =
  "read" | "write" | "forwarded" | "replayed" | "passthrough" | "health" | "websocket";

export interface ProxyMetrics {
  /** A request was routed (counted before it is carried out, whatever its outcome). */
  countRequest(kind: ProxyRequestKind): void;
  /** A read found the local TXID behind the client's and waited; `waitedMs` how long. */
  countTxidWait(outcome: TxidWaitOutcome, waitedMs: number): void;
  /** The proxy answered with one of its own errors (or dropped an exchange already under way). */
  countError(code: ProxyErrorCode): void;
}

export const PROXY_REQUEST_KINDS: readonly ProxyRequestKind[] = [
  "read",
  "write",
  "forwarded",
  "replayed",
  "passthrough",
  "health",
  "websocket",
];

export interface ProxyCountersSnapshot {
  readonly requests: Readonly<Record<ProxyRequestKind, number>>;
  readonly txidWaits: Readonly<Record<TxidWaitOutcome, number>>;
  readonly txidWaitMsTotal: number;
  readonly errors: Readonly<Partial<Record<ProxyErrorCode, number>>>;
}

/** Metrics as plain counters in memory. */
export class ProxyCounters implements ProxyMetrics {
  readonly #requests = Object.fromEntries(PROXY_REQUEST_KINDS.map((k) => [k, 0])) as Record<
    ProxyRequestKind,
    number
  >;
  readonly #txidWaits: Record<TxidWaitOutcome, number> = { reached: 0, "timed-out": 0, aborted: 0 };
  #txidWaitMsTotal = 0;
  readonly #errors: Partial<Record<ProxyErrorCode, number>> = {};

  countRequest(kind: ProxyRequestKind): void {
    this.#requests[kind]++;
  }

  countTxidWait(outcome: TxidWaitOutcome, waitedMs: number): void {
    this.#txidWaits[outcome]++;
    this.#txidWaitMsTotal += waitedMs;
  }

  countError(code: ProxyErrorCode): void {
    this.#errors[code] = (this.#errors[code] ?? 0) + 1;
  }

  /** A copy of the counters at this moment. */
  snapshot(): ProxyCountersSnapshot {
    return {
      requests: { ...this.#requests },
      txidWaits: { ...this.#txidWaits },
      txidWaitMsTotal: this.#txidWaitMsTotal,
      errors: { ...this.#errors },
    };
  }
}
