// Pieces shared by the proxy tests: a real ProxyNodeView whose positions the test moves, a proxy config
// builder, a "replication" that copies a primary's SQLite file to a replica's with SQLite's backup API
// (held back on demand, to make lag real), and a plain HTTP client that shows every header.

import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

import Database from "better-sqlite3";

import type { ProxyConfig } from "../../src/config/config.js";
import type { ProxyNodeView, TxPosition } from "../../src/proxy/index.js";

/** SQLite's file change counter (header offset 24): +1 per write transaction in rollback-journal mode. */
export function fileChangeCounter(dbPath: string): bigint {
  const fd = fs.openSync(dbPath, "r");
  try {
    const header = Buffer.alloc(4);
    const n = fs.readSync(fd, header, 0, 4, 24);
    return n === 4 ? BigInt(header.readUInt32BE(0)) : 0n;
  } finally {
    fs.closeSync(fd);
  }
}

interface Waiter {
  readonly txid: bigint;
  readonly resolve: () => void;
}

/** A stand-in for the post-apply checksum of `txid` on history branch `branch` (differs per branch). */
export function branchChecksum(branch: string, txid: bigint): bigint {
  const digest = createHash("sha256").update(`${branch}/${txid}`).digest();
  return digest.readBigUInt64BE(0) | (1n << 63n);
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}

/**
 * A node as the proxy sees it. The primary's TXID is read from its database file (the change counter,
 * which every committed write bumps); a replica's TXID is what the replicator last applied. Checksums
 * come from `branch` (branchChecksum): two views on different branches disagree at every TXID.
 */
export class TestNodeView implements ProxyNodeView {
  primary: boolean;
  /** True while this (primary) node hands its lease off. */
  handingOffNow = false;
  /** The history branch this node is on; change it to fake a divergence. */
  branch = "main";
  primaryUrl: string | undefined;
  primaryHost: string | undefined;
  lag = 0;
  /** The lease epoch it is primary under (primaryEpoch). */
  epoch = 1n;
  /** Terms whose writes may not be acknowledged any more (mayAcknowledge says false). */
  readonly unacknowledgeable = new Set<bigint>();
  /** Every epoch mayAcknowledge was asked about, in order. */
  readonly acknowledgeAsked: bigint[] = [];
  readonly #db: string;
  readonly #readTxid: (() => bigint) | undefined;
  #txid = 0n;
  readonly #waiters = new Set<Waiter>();

  constructor(opts: { primary: boolean; db: string; readTxid?: () => bigint; primaryUrl?: string }) {
    this.primary = opts.primary;
    this.#db = opts.db;
    this.#readTxid = opts.readTxid;
    this.primaryUrl = opts.primaryUrl;
  }

  get waiterCount(): number {
    return this.#waiters.size;
  }

  isPrimary(): boolean {
    return this.primary;
  }

  handingOff(): boolean {
    return this.primary && this.handingOffNow;
  }

  primaryEpoch(): bigint | undefined {
    return this.primary ? this.epoch : undefined;
  }

  mayAcknowledge(epoch: bigint): boolean {
    this.acknowledgeAsked.push(epoch);
    return !this.unacknowledgeable.has(epoch);
  }

  primaryProxyURL(): string | undefined {
    return this.primary ? undefined : this.primaryUrl;
  }

  primaryHostname(): string | undefined {
    return this.primary ? undefined : this.primaryHost;
  }

  txid(db: string): bigint {
    if (db !== this.#db) return 0n;
    return this.#readTxid !== undefined ? this.#readTxid() : this.#txid;
  }

  position(db: string): TxPosition {
    const txid = this.txid(db);
    return { txid, checksum: txid === 0n ? 0n : branchChecksum(this.branch, txid) };
  }

  checksumAt(db: string, txid: bigint): bigint | undefined {
    return txid > 0n && txid <= this.txid(db) ? branchChecksum(this.branch, txid) : undefined;
  }

  waitForTxid(db: string, txid: bigint, signal: AbortSignal): Promise<void> {
    if (this.txid(db) >= txid) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        txid,
        resolve: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(abortReason(signal));
      };
      if (db !== this.#db) throw new Error(`TestNodeView: unknown db ${db}`);
      if (signal.aborted) {
        reject(abortReason(signal));
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  lagMs(): number {
    return this.lag;
  }

  /** The replica has applied up to `txid`: wake the reads waiting for it. */
  advance(txid: bigint): void {
    if (txid < this.#txid) throw new Error(`TestNodeView: TXID going back from ${this.#txid} to ${txid}`);
    this.#txid = txid;
    for (const waiter of [...this.#waiters]) {
      if (waiter.txid <= txid) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Resolves once at least `count` reads are waiting (polls: the proxy gives no event for it). */
  async untilWaiting(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#waiters.size < count) {
      if (Date.now() > deadline) throw new Error(`no ${count} waiting reads after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/**
 * Emulated replication: copies the primary's database into the replica's file with SQLite's online
 * backup (which takes the locks a writer takes, so the replica app's connection sees a consistent
 * database), then moves the replica view to the primary's TXID at copy time.
 */
export async function replicate(
  primaryPath: string,
  replicaPath: string,
  replicaView: TestNodeView,
): Promise<bigint> {
  const source = new Database(primaryPath, { readonly: true });
  try {
    const txid = fileChangeCounter(primaryPath);
    await source.backup(replicaPath);
    replicaView.advance(txid);
    return txid;
  } finally {
    source.close();
  }
}

export function proxyConfig(target: string, overrides: Partial<ProxyConfig> = {}): ProxyConfig {
  return {
    addr: "127.0.0.1:0",
    target,
    db: "guestbook.db",
    mode: "forward",
    debug: false,
    maxLagMs: 10_000,
    passthrough: [],
    alwaysForward: [],
    primaryRedirectTimeoutMs: 5_000,
    txidWaitTimeoutMs: 5_000,
    readTimeoutMs: 0,
    readHeaderTimeoutMs: 10_000,
    writeTimeoutMs: 0,
    idleTimeoutMs: 30_000,
    ...overrides,
  };
}

export function hostPort(address: AddressInfo): string {
  return `127.0.0.1:${address.port}`;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface HttpRequestOptions {
  readonly method?: string;
  readonly headers?: http.OutgoingHttpHeaders;
  readonly body?: string | Buffer;
  readonly signal?: AbortSignal;
}

/** One request on a fresh connection; resolves with the whole answer. */
export function httpRequest(url: string, opts: HttpRequestOptions = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: opts.method ?? "GET",
      headers: opts.headers,
      agent: false,
      signal: opts.signal,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.end(opts.body);
  });
}

/** The `name=value` part of the Set-Cookie header for `name` in an answer, or undefined. */
export function cookieFrom(answer: HttpAnswer, name: string): string | undefined {
  for (const line of answer.headers["set-cookie"] ?? []) {
    const pair = line.split(";")[0];
    if (pair.startsWith(name + "=")) return pair;
  }
  return undefined;
}

export async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
