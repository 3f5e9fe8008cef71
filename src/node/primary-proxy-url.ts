// Where writes reaching a replica's proxy go: the primary's proxy URL.
//
// The primary publishes its own in `GET /info` (`proxyURL`, null when it runs no proxy). It is the
// proxy's bound address, except that an unspecified bind (":8080", "0.0.0.0:8080", "[::]:8080") takes
// the host of the node's advertise URL — the name other nodes already use to reach this node's API —
// so that forwarding works on any network, not only on one machine.
//
// A replica learns it from the primary's `/info` (with the node API's bearer token): at start, again
// every `retryMs` while it is unknown or the primary cannot be reached, and every `refreshMs` once
// known (a restarted primary may have moved its proxy). Until the first answer the replica's proxy
// knows no primary and a write waits (proxy.primary-redirect-timeout), then gets 503.
//
// A learned URL belongs to the primary it was learned from: once the node follows another primary
// (the lease moved), `url()` no longer returns it — a write waits rather than going to the old
// primary's proxy, which is now a replica's or a dead one's — and `primaryChanged()` asks the new
// primary at once, then every `changeFastRetryMs` (10 ms) for `changeFastWindowMs` (1 s: a holder
// named by the watch takes over 10–30 ms later, and forwarded writes wait meanwhile), then every
// `changeRetryMs` up to `changeWindowMs` until it answers (a new holder serves `/info` as the primary
// only once it has taken over).

import type { AddressInfo } from "node:net";

import type { StoreLogger } from "../store/store-logger.js";
import { httpRequest } from "../net/http-request.js";

/** The URL other nodes reach this node's proxy at, given its bound address and the advertise URL. */
export function advertisedProxyURL(bound: AddressInfo, advertiseUrl: string): string {
  const unspecified = bound.address === "" || bound.address === "0.0.0.0" || bound.address === "::";
  let host: string;
  if (!unspecified) {
    host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  } else {
    let advertised = "";
    try {
      advertised = new URL(advertiseUrl).hostname; // IPv6 hosts keep their brackets here
    } catch {
      advertised = "";
    }
    host = advertised === "" || advertised === "0.0.0.0" || advertised === "[::]" ? "127.0.0.1" : advertised;
  }
  return `http://${host}:${bound.port}`;
}

export interface PrimaryProxyDiscoveryOptions {
  /** The primary's node API URL (its advertise URL), or null while no primary is known. */
  readonly primaryApiUrl: () => string | null;
  readonly authToken: string | null;
  readonly log: StoreLogger;
  /** Pause before asking again while the URL is unknown (default 1000 ms). */
  readonly retryMs?: number;
  /** Pause before asking again once known (default 10 s). */
  readonly refreshMs?: number;
  /** Limit on one `/info` request (default 5000 ms). */
  readonly requestTimeoutMs?: number;
  /** Pause before asking again in the first `changeFastWindowMs` after a change of primary (default 10 ms). */
  readonly changeFastRetryMs?: number;
  /** How long after a change of primary the shortest pause applies (default 1000 ms). */
  readonly changeFastWindowMs?: number;
  /** Pause before asking again after that, within `changeWindowMs` (default 100 ms). */
  readonly changeRetryMs?: number;
  /** How long after a change of primary the short pause applies (default 10 s). */
  readonly changeWindowMs?: number;
}

export class PrimaryProxyDiscovery {
  readonly #opts: PrimaryProxyDiscoveryOptions;
  readonly #stop = new AbortController();
  /** Aborts the question under way when the primary changes. */
  #current = new AbortController();
  #url: string | undefined;
  /** The primary API URL `#url` was learned from. */
  #learnedFrom: string | null = null;
  #lastProblem: string | null = null;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  /** The primary API URL the question under way goes to. */
  #inFlightFor: string | null = null;
  /** When the primary last changed (performance.now()). */
  #changedAt = -Infinity;
  /** Bumped by every #schedule: an older chain of timers stops. */
  #scheduled = 0;

  constructor(opts: PrimaryProxyDiscoveryOptions) {
    this.#opts = opts;
  }

  /**
   * The primary's proxy URL as learned from the primary the node follows now; undefined while unknown
   * (then a question to the primary is under way).
   */
  url(): string | undefined {
    return this.#learnedFrom === this.#opts.primaryApiUrl() ? this.#url : undefined;
  }

  /** The node follows another primary now: ask it at once (a question under way for the old one ends). */
  primaryChanged(): void {
    this.#changedAt = performance.now();
    this.#schedule(0);
  }

  /** Starts asking the primary (at once, then on the schedule above). */
  start(): void {
    this.#schedule(0);
  }

  /** Asks the primary now; resolves when the answer (or failure) has been taken in. Never rejects. */
  refresh(): Promise<void> {
    if (this.#inFlight !== undefined) {
      if (this.#inFlightFor === this.#opts.primaryApiUrl()) return this.#inFlight;
      this.#current.abort(); // a question to a primary the node no longer follows
    }
    const asking = this.#ask().finally(() => {
      if (this.#inFlight === asking) this.#inFlight = undefined;
    });
    this.#inFlight = asking;
    return asking;
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#current.abort();
    clearTimeout(this.#timer);
    await this.#inFlight;
  }

  #schedule(ms: number): void {
    if (this.#stop.signal.aborted) return;
    clearTimeout(this.#timer);
    const generation = ++this.#scheduled;
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => {
        if (generation === this.#scheduled) this.#schedule(this.#nextDelayMs());
      });
    }, ms);
    this.#timer.unref();
  }

  #nextDelayMs(): number {
    if (this.url() !== undefined) return this.#opts.refreshMs ?? 10_000;
    const sinceChange = performance.now() - this.#changedAt;
    if (sinceChange < (this.#opts.changeFastWindowMs ?? 1000)) return this.#opts.changeFastRetryMs ?? 10;
    if (sinceChange < (this.#opts.changeWindowMs ?? 10_000)) return this.#opts.changeRetryMs ?? 100;
    return this.#opts.retryMs ?? 1000;
  }

  async #ask(): Promise<void> {
    const base = this.#opts.primaryApiUrl();
    this.#inFlightFor = base;
    if (base === null) {
      this.#problem("no primary is known");
      return;
    }
    if (this.#current.signal.aborted) this.#current = new AbortController();
    const changed = this.#current.signal;
    const signal = AbortSignal.any([this.#stop.signal, changed]);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.#opts.authToken !== null) headers.Authorization = `Bearer ${this.#opts.authToken}`;
    try {
      const res = await httpRequest(new URL("/info", base), {
        headers,
        signal,
        timeoutMs: this.#opts.requestTimeoutMs ?? 5000,
      });
      const text = res.text;
      if (res.status !== 200)
        throw new Error(`GET /info answered ${res.status}: ${text.trim().slice(0, 200)}`);
      const info = JSON.parse(text) as { isPrimary?: unknown; proxyURL?: unknown };
      if (info.isPrimary !== true) throw new Error(`${base} says it is not the primary`);
      if (info.proxyURL === null || info.proxyURL === undefined) {
        this.#url = undefined;
        this.#learnedFrom = null;
        this.#problem("the primary runs no proxy (no proxy.addr): writes cannot be forwarded");
        return;
      }
      if (typeof info.proxyURL !== "string" || !/^https?:\/\/[^/]+$/.test(info.proxyURL)) {
        throw new Error(`the primary's proxyURL ${JSON.stringify(info.proxyURL)} is not a base URL`);
      }
      if (info.proxyURL !== this.#url) {
        this.#opts.log.info("primary's proxy found", { primary: base, proxy: info.proxyURL });
      }
      this.#url = info.proxyURL;
      this.#learnedFrom = base;
      this.#lastProblem = null;
    } catch (err) {
      if (this.#stop.signal.aborted || changed.aborted) return;
      // Keep a URL already known: the primary being briefly unreachable does not move its proxy.
      this.#problem(`cannot ask the primary ${base} for its proxy: ${(err as Error).message}`);
    }
  }

  /** Logs a problem once (not at every retry). */
  #problem(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    this.#opts.log.warn(message, this.#url === undefined ? {} : { stillUsing: this.#url });
  }
}
