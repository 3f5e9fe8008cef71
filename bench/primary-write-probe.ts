// A write probe that behaves like an application writing to "the primary" of a LiteFS cluster, for
// bench/failover.ts: one row per transaction, as fast as the cluster accepts, and nothing of its own
// added to a write gap.
//
// It writes on the node it last succeeded on, through one better-sqlite3 connection per node that it
// keeps while that connection works. When a write fails (the node handed off, lost its lease or died),
// it reads that node's `.primary` (the mount names the primary it follows) and moves to the named node
// once that node's `GET /info` says it is the primary, asking the named node again every `retryMs`
// (default 1 ms; the brief allows ≤ 5 ms) for up to NAMED_WAIT_MS; while nobody is named it retries
// the node it failed on at that pace. (A primary handing off names its target in `.primary` while it
// drains: its new transactions are refused at their start.) A node that
// cannot be read at all (killed) makes it look at every running node instead.
//
// Connections: one is opened on a node when the probe first writes there, or on every node at once
// when the bench calls `openEverywhere` (a rollback-journal database opens read-write on a replica and
// writes once its node is promoted; in WAL mode SQLite opens it read-only there and it stays so:
// src/mountfs/replica-access.ts) — and it is reopened only when it must be: a write failing with
// SQLITE_READONLY on a node that says it is primary. The busy timeout is `busyTimeoutMs` (default
// 2 ms): a lock held by the node itself is short.
//
// Every attempt's end is stamped with `performance.now()` and the wall clock (`wallMs`, for lining up
// with the nodes' log times): commits and failures are both kept, so a gap is "last success before →
// first success after", measured, not inferred.

import * as fs from "node:fs";
import * as path from "node:path";

import Database from "better-sqlite3";

import { httpRequest } from "../src/net/http-request.js";

/** How long the probe waits for the node `.primary` names to say it is primary (ms). */
const NAMED_WAIT_MS = 1000;

/** A node as the probe needs it. */
export interface ProbeNode {
  readonly name: string;
  /** The FUSE mount directory (holds the database and `.primary`). */
  readonly mountDir: string;
  /** The node API base URL (`GET /info`). */
  readonly httpUrl: string;
  running(): boolean;
}

export interface ProbeAttempt {
  readonly node: string;
  /** performance.now() when the attempt ended. */
  readonly at: number;
  /** Wall clock (ms since the epoch, fractional) when the attempt ended. */
  readonly wallMs: number;
  /** How long the attempt took (ms). */
  readonly tookMs: number;
  /** Absent on success; the SQLite code (or "EOPEN") on failure. */
  readonly error?: string;
}

/** One look for the primary after a failure: where it led and what it cost. */
export interface ProbeLookup {
  readonly from: string;
  /** The node named by `from`'s `.primary` (null: none). */
  readonly named: string | null;
  /** Where the next attempt goes (undefined: nowhere known). */
  readonly next: string | undefined;
  readonly at: number;
  readonly wallMs: number;
  readonly tookMs: number;
  /** Of tookMs, reading `.primary` (the rest: asking the named node's `/info`). */
  readonly primaryFileMs: number;
}

export interface PrimaryWriteProbeOptions {
  readonly nodes: () => readonly ProbeNode[];
  readonly db: string;
  /** Pause between attempts after a failure (ms). Default 1. */
  readonly retryMs?: number;
  readonly busyTimeoutMs?: number;
  /** `PRAGMA synchronous` of every connection. Default FULL (better-sqlite3's). */
  readonly synchronous?: "NORMAL" | "FULL";
}

interface Connection {
  readonly db: Database.Database;
  readonly insert: Database.Statement;
}

/** The wall clock as the nodes' log times read it (whole ms; not performance.timeOrigin + now(),
 *  which drifts from the system clock over a long run). */
export function wallNow(): number {
  return Date.now();
}

export class PrimaryWriteProbe {
  readonly commits: ProbeAttempt[] = [];
  readonly failures: ProbeAttempt[] = [];
  readonly lookups: ProbeLookup[] = [];
  /** Connections opened, in all (the first one per node, and every reopen). */
  opened = 0;
  readonly #opts: PrimaryWriteProbeOptions;
  readonly #connections = new Map<string, Connection>();
  #current: ProbeNode | undefined;
  #lastNamed: string | null = null;
  #lastNamedMs = 0;
  #stopped = false;
  #n = 0;
  readonly #loop: Promise<void>;

  constructor(opts: PrimaryWriteProbeOptions) {
    this.#opts = opts;
    this.#loop = this.#run();
  }

  /** The first commit at or after `t` (performance.now()) on a node other than `not`. */
  async firstCommitAfter(t: number, timeoutMs: number, not?: string): Promise<ProbeAttempt> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const commit = this.commits.find((c) => c.at >= t && c.node !== not);
      if (commit !== undefined) return commit;
      if (performance.now() > deadline) throw new Error(`no commit within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  /** The last commit on `node` at or before `t`. */
  lastCommitOn(node: string, t: number): ProbeAttempt | undefined {
    for (let i = this.commits.length - 1; i >= 0; i--) {
      const c = this.commits[i];
      if (c.node === node && c.at <= t) return c;
    }
    return undefined;
  }

  /**
   * The longest time from one commit (on any node) to the next for the commits that ended in
   * (from, to], counting from the last commit at or before `from`: what the writer waited at most.
   */
  longestStall(from: number, to: number): number {
    let longest = 0;
    let previous: number | undefined;
    for (const c of this.commits) {
      if (c.at <= from) previous = c.at;
      else if (c.at <= to) {
        if (previous !== undefined) longest = Math.max(longest, c.at - previous);
        previous = c.at;
      }
    }
    return longest;
  }

  /** Failed attempts in (from, to]. */
  failuresBetween(from: number, to: number): ProbeAttempt[] {
    return this.failures.filter((f) => f.at > from && f.at <= to);
  }

  /**
   * Opens a connection on every running node that has none, as an application on every node keeps
   * one. For rollback-journal databases only (see the top). Call between measurements: an open on a
   * mount that is still starting could block the probe.
   */
  openEverywhere(): void {
    for (const node of this.#opts.nodes()) {
      if (!node.running()) continue;
      const kept = this.#connections.get(node.name);
      if (kept !== undefined) {
        try {
          kept.db.pragma("schema_version"); // reads the file: fails on the mount of a node since killed
          continue;
        } catch {
          this.#drop(node.name);
        }
      }
      try {
        this.#connect(node);
      } catch {
        // left closed: opened when the probe first writes there
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    for (const name of [...this.#connections.keys()]) this.#drop(name);
  }

  async #run(): Promise<void> {
    const retryMs = this.#opts.retryMs ?? 1;
    while (!this.#stopped) {
      const node = this.#current ?? (await this.#findPrimary());
      if (node === undefined) {
        await sleep(retryMs);
        continue;
      }
      if (!node.running()) {
        this.#drop(node.name);
        this.#current = undefined;
        continue;
      }
      this.#current = node;
      const began = performance.now();
      const error = this.#write(node);
      const at = performance.now();
      const tookMs = at - began;
      if (error === undefined) {
        this.commits.push({ node: node.name, at, wallMs: wallNow(), tookMs });
        // Let the event loop run (status requests, process exits) without adding a timer's delay.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      this.failures.push({ node: node.name, at, wallMs: wallNow(), tookMs, error });
      this.#current = await this.#next(node, error);
      const looked = performance.now();
      this.lookups.push({
        from: node.name,
        named: this.#lastNamed,
        next: this.#current?.name,
        at: looked,
        wallMs: wallNow(),
        tookMs: looked - at,
        primaryFileMs: this.#lastNamedMs,
      });
      if (this.#current === node || this.#current === undefined) await sleep(retryMs);
    }
  }

  /** Where to write after a failure on `node`. */
  async #next(node: ProbeNode, error: string): Promise<ProbeNode | undefined> {
    this.#lastNamed = null;
    this.#lastNamedMs = 0;
    if (!node.running()) {
      this.#drop(node.name);
      return undefined;
    }
    const reading = performance.now();
    const named = this.#namedPrimary(node);
    this.#lastNamedMs = performance.now() - reading;
    this.#lastNamed = named;
    if (named === null) {
      // The node says nothing about another primary: it is primary (e.g. its commits are paused for a
      // handoff) or it does not know one yet. Stay with it; a connection it refused as read-only while
      // it says it is primary was opened in a replica moment and must be replaced.
      if (error === "SQLITE_READONLY" && (await isPrimary(node))) this.#drop(node.name);
      return node;
    }
    const target = this.#opts.nodes().find((n) => n.name === named && n.running());
    if (target === undefined || target === node) return node;
    // Asked first even with a connection there from an earlier term: a write on a node that is named
    // but still switching was measured to block for 60–270 ms rather than fail fast. Asked again until
    // it says primary (a handoff names its target before the target holds the lease), within a bound.
    const retryMs = this.#opts.retryMs ?? 1;
    const until = performance.now() + NAMED_WAIT_MS;
    for (;;) {
      if (await isPrimary(target)) return target;
      if (performance.now() >= until || !target.running() || this.#stopped) return node;
      await sleep(retryMs);
    }
  }

  /** A running node that says it is primary (start, or after the current node died). */
  async #findPrimary(): Promise<ProbeNode | undefined> {
    for (const node of this.#opts.nodes()) {
      if (node.running() && (await isPrimary(node))) return node;
    }
    return undefined;
  }

  /** The hostname in `node`'s `.primary`, or null when it has none (primary, or none known). */
  #namedPrimary(node: ProbeNode): string | null {
    try {
      const text = fs.readFileSync(path.join(node.mountDir, ".primary"), "utf8").trim();
      return text === "" ? null : text;
    } catch {
      return null;
    }
  }

  /** One INSERT on `node`; undefined on success, else the error code. */
  #write(node: ProbeNode): string | undefined {
    let conn = this.#connections.get(node.name);
    try {
      conn ??= this.#connect(node);
      conn.insert.run(++this.#n);
      return undefined;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (conn === undefined) return "EOPEN";
      return typeof code === "string" ? code : "EUNKNOWN";
    }
  }

  #connect(node: ProbeNode): Connection {
    const db = new Database(path.join(node.mountDir, this.#opts.db), {
      timeout: this.#opts.busyTimeoutMs ?? 2,
      fileMustExist: true,
    });
    try {
      db.pragma(`synchronous=${this.#opts.synchronous ?? "FULL"}`);
      const conn = { db, insert: db.prepare("INSERT INTO probe (n) VALUES (?)") };
      this.#connections.set(node.name, conn);
      this.opened++;
      return conn;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  #drop(name: string): void {
    const conn = this.#connections.get(name);
    this.#connections.delete(name);
    try {
      conn?.db.close();
    } catch {
      // a connection on a dead mount may not close cleanly; it is dropped either way
    }
  }
}

/**
 * True when `node`'s `GET /info` says it is the primary; never throws. With node:http on a kept-alive
 * connection, as the nodes ask each other (src/net/http-request.ts, which says what fetch costs): it is
 * asked every millisecond while a handoff settles, on the cores the nodes hand off on.
 */
async function isPrimary(node: ProbeNode): Promise<boolean> {
  try {
    const { status, text } = await httpRequest(new URL("/info", node.httpUrl), { timeoutMs: 1000 });
    return status === 200 && (JSON.parse(text) as { isPrimary?: unknown }).isPrimary === true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
