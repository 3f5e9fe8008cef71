// The proxy's metrics on a registry. The method shapes are those of the proxy's metrics seam
// (src/proxy/proxy-metrics.ts, `ProxyMetrics`), so the node passes this object to the proxy as it is;
// the label values are the proxy's own enumerations (request kinds, TXID wait outcomes, error codes),
// typed here as strings so that this folder imports nothing from the proxy.
//
// Forwarded writes are the requests of kind "forwarded"; TXID wait timeouts those of outcome
// "timed-out".

import type { Counter, CounterVec } from "./counter.js";
import type { Registry } from "./registry.js";

export class ProxyMetricSet {
  readonly #requests: CounterVec<"kind">;
  readonly #txidWaits: CounterVec<"outcome">;
  readonly #txidWaitSeconds: Counter;
  readonly #errors: CounterVec<"code">;
  readonly #requestsByKind = new Map<string, Counter>();

  constructor(registry: Registry) {
    this.#requests = registry.counterVec({
      name: "litefs_proxy_requests_total",
      help: "Requests the proxy routed, by kind (read, write, forwarded, replayed, passthrough, health, websocket).",
      labelNames: ["kind"],
    });
    this.#txidWaits = registry.counterVec({
      name: "litefs_proxy_txid_waits_total",
      help: "Reads that waited for this node to reach the client's TXID, by outcome.",
      labelNames: ["outcome"],
    });
    this.#txidWaitSeconds = registry.counter({
      name: "litefs_proxy_txid_wait_seconds_total",
      help: "Seconds reads spent waiting for this node to reach the client's TXID.",
    });
    this.#errors = registry.counterVec({
      name: "litefs_proxy_errors_total",
      help: "Errors the proxy answered itself, by error code.",
      labelNames: ["code"],
    });
  }

  countRequest(kind: string): void {
    let counter = this.#requestsByKind.get(kind);
    if (counter === undefined) {
      counter = this.#requests.labels({ kind });
      this.#requestsByKind.set(kind, counter);
    }
    counter.inc();
  }

  countTxidWait(outcome: string, waitedMs: number): void {
    this.#txidWaits.inc({ outcome });
    this.#txidWaitSeconds.inc(waitedMs / 1000);
  }

  countError(code: string): void {
    this.#errors.inc({ code });
  }
}
