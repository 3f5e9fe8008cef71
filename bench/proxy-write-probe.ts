// The other way an application learns that the primary moved (bench/failover.ts, --proxy-handoff-runs):
// it does not. It sends its writes to a LiteFS proxy (`proxy.addr`), which passes them to the app on the
// primary or forwards them to the primary's proxy; during a handoff a forwarded write waits for the
// new primary (primary-proxy-url.ts) or fails (the old primary's app answers 503 for a refused commit).
//
// This probe sends `POST /write?id=N` (test/chaos/chaos-app.ts: one transaction per request, the
// database opened per request) to the proxy `target()` names, one request at a time, as fast as they
// are answered; after a failure it tries again after `retryMs` (default 1 ms). The gap of a handoff is
// the longest time between two answered writes around it — everything an application would wait.

export interface ProxyAttempt {
  /** performance.now() when the answer arrived. */
  readonly at: number;
  readonly ok: boolean;
  /** HTTP status, or 0 when the request failed outright. */
  readonly status: number;
  /** A failure's error code (the proxy's `Litefs-Proxy-Error`, or "app") and the start of its body. */
  readonly detail?: string;
}

export class ProxyWriteProbe {
  readonly attempts: ProxyAttempt[] = [];
  readonly #target: () => string;
  readonly #retryMs: number;
  #stopped = false;
  #n = 0;
  readonly #loop: Promise<void>;

  /** `firstId`: ids start there (the app refuses nothing, but ids show which run wrote a row). */
  constructor(target: () => string, firstId: number, retryMs = 1) {
    this.#target = target;
    this.#n = firstId;
    this.#retryMs = retryMs;
    this.#loop = this.#run();
  }

  /** The longest time between two answered writes whose interval overlaps [from, to]. */
  longestGap(from: number, to: number): number {
    const ok = this.attempts.filter((a) => a.ok).map((a) => a.at);
    let longest = 0;
    for (let i = 1; i < ok.length; i++) {
      if (ok[i] < from || ok[i - 1] > to) continue;
      longest = Math.max(longest, ok[i] - ok[i - 1]);
    }
    return longest;
  }

  /** Resolves once a write answered after `t`; rejects after `timeoutMs`. */
  async okAfter(t: number, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.attempts.find((a) => a.ok && a.at > t);
      if (hit !== undefined) return hit.at;
      if (performance.now() > deadline)
        throw new Error(`no write answered through the proxy in ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  failuresBetween(from: number, to: number): ProxyAttempt[] {
    return this.attempts.filter((a) => !a.ok && a.at > from && a.at <= to);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let status = 0;
      let detail: string | undefined;
      try {
        const res = await fetch(`${this.#target()}/write?id=${++this.#n}`, {
          method: "POST",
          signal: AbortSignal.timeout(30_000),
        });
        const body = await res.text();
        status = res.status;
        if (status !== 200) {
          detail = `${res.headers.get("litefs-proxy-error") ?? "app"}: ${body.slice(0, 120)}`;
        }
      } catch (err) {
        status = 0;
        detail = (err as Error).message;
      }
      const ok = status === 200;
      this.attempts.push({ at: performance.now(), ok, status, ...(detail === undefined ? {} : { detail }) });
      if (!ok) await sleep(this.#retryMs);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
