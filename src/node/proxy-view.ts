// The proxy's view of a running node (src/proxy/proxy-node-view.ts), over the store: the TXID of a
// database is its position's, and a read waiting for the client's last write is woken by the store's
// commit subscription — every local commit and every transaction applied from the primary emits one
// after the position moved — never by polling. The same subscription records recent TXIDs' checksums
// (proxy-history.ts), so that a read carrying a position token is checked against this node's history.
//
// The role, the primary's proxy URL and hostname, and the lag are asked of the node through functions
// each time (they may change while the proxy runs).

import type { Pos } from "../ltx/pos.js";
import type { ProxyNodeView } from "../proxy/proxy-node-view.js";
import type { CommitEvent } from "../store/commit-event.js";
import type { Store } from "../store/store.js";
import { RecentPositions } from "./proxy-history.js";

export interface StoreProxyViewOptions {
  readonly store: Store;
  readonly isPrimary: () => boolean;
  /** True while this primary hands its lease off (ProxyNodeView.handingOff); default never. */
  readonly handingOff?: () => boolean;
  /** Base URL of the primary's proxy; undefined while unknown (or on the primary). */
  readonly primaryProxyURL: () => string | undefined;
  /** The primary's hostname, for fly-replay; undefined while unknown. */
  readonly primaryHostname: () => string | undefined;
  /** Milliseconds behind the primary (0 on the primary). */
  readonly lagMs: () => number;
  /** ProxyNodeView.primaryEpoch / mayAcknowledge (LeaseRole); absent: every answer is relayed. */
  readonly primaryEpoch?: () => bigint | undefined;
  readonly mayAcknowledge?: (epoch: bigint) => boolean;
}

interface Waiter {
  readonly txid: bigint;
  readonly wake: () => void;
}

/** Thrown to a waiting read when the view is closed (the node is stopping). */
export class ProxyViewClosedError extends Error {
  override readonly name = "ProxyViewClosedError";
  readonly code = "EPROXYVIEWCLOSED";
  constructor() {
    super("the node is stopping: no longer waiting for a TXID");
  }
}

export class StoreProxyView implements ProxyNodeView {
  readonly #opts: StoreProxyViewOptions;
  /** Reads waiting, per database. A database's set is removed once empty. */
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #unsubscribe: () => void;
  /** Recent TXIDs' checksums, for the read-your-writes check of a position token. */
  readonly #recent: RecentPositions;
  #closed = false;

  constructor(opts: StoreProxyViewOptions) {
    this.#opts = opts;
    this.#recent = new RecentPositions(opts.store);
    this.#unsubscribe = opts.store.subscribe((event) => this.#onCommit(event));
  }

  isPrimary(): boolean {
    return this.#opts.isPrimary();
  }

  primaryEpoch(): bigint | undefined {
    return this.#opts.isPrimary() ? this.#opts.primaryEpoch?.() : undefined;
  }

  mayAcknowledge(epoch: bigint): boolean {
    return this.#opts.mayAcknowledge?.(epoch) ?? true;
  }

  handingOff(): boolean {
    return this.#opts.isPrimary() && this.#opts.handingOff?.() === true;
  }

  primaryProxyURL(): string | undefined {
    return this.#opts.isPrimary() ? undefined : this.#opts.primaryProxyURL();
  }

  primaryHostname(): string | undefined {
    return this.#opts.isPrimary() ? undefined : this.#opts.primaryHostname();
  }

  txid(db: string): bigint {
    return this.#opts.store.db(db)?.pos.txid ?? 0n;
  }

  position(db: string): Pos {
    return this.#opts.store.db(db)?.pos ?? { txid: 0n, checksum: 0n };
  }

  checksumAt(db: string, txid: bigint): bigint | undefined {
    return this.#recent.checksumAt(db, txid);
  }

  lagMs(): number {
    return this.#opts.lagMs();
  }

  /** How many reads are waiting now, over every database (for tests and status). */
  get waiting(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  waitForTxid(db: string, txid: bigint, signal: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new ProxyViewClosedError());
    if (signal.aborted) return Promise.reject(abortReason(signal));
    // Checked after the aborted test and synchronously with the registration below: a commit cannot
    // fall between reading the position and joining the waiters (both happen in this one turn).
    if (this.txid(db) >= txid) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let set = this.#waiters.get(db);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(db, set);
      }
      const waiters = set;
      const leave = (): void => {
        waiters.delete(waiter);
        if (waiters.size === 0 && this.#waiters.get(db) === waiters) this.#waiters.delete(db);
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = (): void => {
        leave();
        reject(abortReason(signal));
      };
      const waiter: Waiter = {
        txid,
        wake: () => {
          leave();
          if (this.#closed) reject(new ProxyViewClosedError());
          else resolve();
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiters.add(waiter);
    });
  }

  /** Stops following commits and ends every waiting read with ProxyViewClosedError; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const set of [...this.#waiters.values()]) for (const waiter of [...set]) waiter.wake();
    this.#waiters.clear();
  }

  #onCommit(event: CommitEvent): void {
    this.#recent.record(event);
    const set = this.#waiters.get(event.db);
    if (set === undefined) return;
    const txid = event.pos.txid;
    for (const waiter of [...set]) if (waiter.txid <= txid) waiter.wake();
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}
