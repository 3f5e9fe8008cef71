// Finding where a write goes when it reaches a node that is not the primary: the primary's proxy URL
// (forward mode) or hostname (fly-replay mode), waiting up to `proxy.primary-redirect-timeout` while
// none is known (an election in progress). The node view has no change notification, so the wait
// polls it — cheaply, and bounded by that timeout. The node may itself become primary meanwhile.

import type { ProxyMode } from "../config/config.js";
import { setTimeout as sleep } from "node:timers/promises";

import type { ExchangeLifetime } from "./exchange-lifetime.js";
import { ProxyError } from "./proxy-error.js";
import type { ProxyNodeView } from "./proxy-node-view.js";

export type PrimaryLocation =
  | { readonly kind: "self" }
  | { readonly kind: "proxy"; readonly url: string }
  | { readonly kind: "replay"; readonly hostname: string };

export interface PrimaryLocatorOptions {
  readonly view: ProxyNodeView;
  readonly mode: ProxyMode;
  readonly timeoutMs: number;
  readonly pollMs: number;
}

export class PrimaryLocator {
  readonly #opts: PrimaryLocatorOptions;

  constructor(opts: PrimaryLocatorOptions) {
    if (!(opts.pollMs > 0)) throw new RangeError(`PrimaryLocator: pollMs must be > 0, got ${opts.pollMs}`);
    this.#opts = opts;
  }

  /** Rejects with ProxyError EPROXYNOPRIMARY after the timeout, or with the reason the exchange ended. */
  async locate(lifetime: ExchangeLifetime): Promise<PrimaryLocation> {
    const { view, mode, timeoutMs, pollMs } = this.#opts;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (view.isPrimary()) return { kind: "self" };
      if (mode === "fly-replay") {
        const hostname = view.primaryHostname();
        if (hostname !== undefined && hostname !== "") return { kind: "replay", hostname };
      } else {
        const url = view.primaryProxyURL();
        if (url !== undefined && url !== "") return { kind: "proxy", url };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ProxyError(
          "EPROXYNOPRIMARY",
          `this node is a replica and no primary is known after waiting ${timeoutMs} ms ` +
            `(proxy.primary-redirect-timeout); writes fail until a primary is elected`,
          { retryAfterSeconds: 1 },
        );
      }
      await sleep(Math.min(pollMs, remaining), undefined, { signal: lifetime.signal });
    }
  }
}
