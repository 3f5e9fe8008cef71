// Connects a replica to a new primary as soon as that primary serves streams.
//
// The coordinator names a new holder a little before that node serves streams: it still stops its own
// replica client, settles the cluster id and records its epoch, and answers `POST /stream` with 503
// ENOTPRIMARY meanwhile. A replica that connects in that window fails, and its client backs off
// exponentially (100 ms, 200 ms, … up to 5 s: stream-backoff.ts) with no further holder change to wake
// it — so it followed the new primary seconds late, and a handoff to it was refused (ENOREPLICA).
//
// After each change of primary the node calls `follow(url)`: while the replica is not connected (for at
// most `windowMs`), the new primary's `GET /info` is polled every `intervalMs` (10 ms: the watch names
// a new holder when its acquire commits, and it serves streams 10–30 ms later); once it says it is the
// primary, the replica client is told to reconnect at once (again after `settleMs` if that attempt did
// not connect either). The poll, not the client's attempts, sets the pace, so a slow but successful
// attempt is not cut short over and over; nor is an attempt the client began less than `settleMs` ago
// (it most likely reaches the new primary by itself: cutting it off cost a second connection).

import type { StoreLogger } from "../store/store-logger.js";
import { httpRequest } from "../net/http-request.js";

export interface NudgedReplica {
  /** True while a stream is open (the primary answered 200). */
  connected(): boolean;
  /** Drops the current attempt or wait and connects again at once. */
  reconnect(): void;
  /** Milliseconds since the connection attempt under way began; null while none is. */
  attemptAgeMs?(): number | null;
}

export interface ReplicaReconnectNudgeOptions {
  /** The replica client now (null while the node is primary or stopping). */
  readonly replica: () => NudgedReplica | null;
  /** The node API's bearer token (the primary's `/info` is guarded by it). */
  readonly authToken: string | null;
  readonly log: StoreLogger;
  /** Pause between polls of the new primary (ms). Default 10. */
  readonly intervalMs?: number;
  /** After a nudge, how long the attempt may take before the next poll (ms). Default 1000. */
  readonly settleMs?: number;
  /** How long following goes on after a change of primary (ms). Default 10 000. */
  readonly windowMs?: number;
}

export class ReplicaReconnectNudge {
  readonly #opts: ReplicaReconnectNudgeOptions;
  /** Aborts the current follow (a newer primary, or stop). */
  #current: AbortController | null = null;

  constructor(opts: ReplicaReconnectNudgeOptions) {
    this.#opts = opts;
  }

  /** The replica now follows the primary at `url`: connect it as soon as that node serves streams. */
  follow(url: string): void {
    this.stop();
    const controller = new AbortController();
    this.#current = controller;
    void this.#run(url, controller.signal).finally(() => {
      if (this.#current === controller) this.#current = null;
    });
  }

  /** Stops following (the node became primary, or is stopping). */
  stop(): void {
    this.#current?.abort();
    this.#current = null;
  }

  async #run(url: string, signal: AbortSignal): Promise<void> {
    const intervalMs = this.#opts.intervalMs ?? 10;
    const until = performance.now() + (this.#opts.windowMs ?? 10_000);
    while (!signal.aborted && performance.now() < until) {
      const replica = this.#opts.replica();
      if (replica === null || replica.connected()) return;
      if (await this.#servesStreams(url, signal)) {
        if (signal.aborted || replica.connected()) return;
        const age = replica.attemptAgeMs?.() ?? null;
        if (age !== null && age < (this.#opts.settleMs ?? 1000)) {
          await sleep(intervalMs, signal); // a young attempt under way: let it answer
          continue;
        }
        this.#opts.log.debug("the new primary serves streams: reconnecting now", { primary: url });
        replica.reconnect();
        await sleep(this.#opts.settleMs ?? 1000, signal);
      } else {
        await sleep(intervalMs, signal);
      }
    }
  }

  /** True when `url`'s `/info` says it is the primary. Never throws. */
  async #servesStreams(url: string, signal: AbortSignal): Promise<boolean> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.#opts.authToken !== null) headers.Authorization = `Bearer ${this.#opts.authToken}`;
    try {
      const res = await httpRequest(new URL("/info", url), { headers, signal, timeoutMs: 1000 });
      if (res.status !== 200) return false;
      return (JSON.parse(res.text) as { isPrimary?: unknown }).isPrimary === true;
    } catch {
      return false;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener("abort", done, { once: true });
  });
}
