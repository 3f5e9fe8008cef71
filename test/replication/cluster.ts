// A replication cluster for tests: one primary and any number of replicas, each a real `litefs mount`
// process on loopback with its own data and mount directories (test/support/litefs-node.ts), configured
// with the static lease: the primary is the candidate, replicas reach it through its advertise URL.
// Plus the waits and comparisons every replication test needs.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { LitefsNode } from "../support/litefs-node.js";

export const PRIMARY_HOSTNAME = "test-primary";

export type ConfigSections = Record<string, Record<string, unknown>>;

/** The config sections that make a node a replica of `primary`. */
export function replicaConfig(primary: LitefsNode, extra: ConfigSections = {}): ConfigSections {
  return {
    ...extra,
    lease: {
      type: "static",
      candidate: false,
      hostname: PRIMARY_HOSTNAME,
      "advertise-url": primary.httpUrl,
      ...(extra.lease ?? {}),
    },
  };
}

export class Cluster {
  readonly primary: LitefsNode;
  readonly replicas: LitefsNode[] = [];

  private constructor(primary: LitefsNode) {
    this.primary = primary;
  }

  static async start(
    opts: { replicas?: number; primaryConfig?: ConfigSections; replicaConfig?: ConfigSections } = {},
  ): Promise<Cluster> {
    const primary = await LitefsNode.start({ config: opts.primaryConfig });
    const cluster = new Cluster(primary);
    try {
      for (let i = 0; i < (opts.replicas ?? 2); i++) await cluster.addReplica(opts.replicaConfig);
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  async addReplica(extra: ConfigSections = {}): Promise<LitefsNode> {
    const replica = await LitefsNode.start({ config: replicaConfig(this.primary, extra) });
    this.replicas.push(replica);
    return replica;
  }

  /** Every node's logs, for assertion messages. */
  logs(): string {
    return [this.primary, ...this.replicas]
      .map((n, i) => `==== ${i === 0 ? "primary" : `replica ${i}`} ====\n${n.logs().slice(-6000)}`)
      .join("\n");
  }

  async cleanup(): Promise<void> {
    for (const node of [...this.replicas, this.primary]) await node.cleanup().catch(() => undefined);
  }
}

/** `<db>-pos` through the mount, or null when the database is not there (yet). */
export function readPosText(node: LitefsNode, db: string): string | null {
  try {
    return fs.readFileSync(node.posPath(db), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Waits until every replica shows the primary's position for every database in `dbs`. */
export async function waitForSync(
  primary: LitefsNode,
  replicas: readonly LitefsNode[],
  dbs: readonly string[],
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const behind: string[] = [];
    for (const db of dbs) {
      const want = readPosText(primary, db);
      for (const [i, replica] of replicas.entries()) {
        const have = readPosText(replica, db);
        if (want === null || have !== want)
          behind.push(`replica ${i + 1} ${db}: ${have?.trim()} vs ${want?.trim()}`);
      }
    }
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`replicas did not catch up within ${timeoutMs} ms:\n${behind.join("\n")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Asserts that a replica's backing database file, its `-pos` and its LTX chain end equal the
 * primary's (call after a checkpoint on the primary, so that its database file holds every page).
 */
export function assertSameDatabase(
  primary: LitefsNode,
  replica: LitefsNode,
  db: string,
  label: string,
): void {
  const primaryBytes = fs.readFileSync(path.join(primary.storeDir(db), "database"));
  const replicaBytes = fs.readFileSync(path.join(replica.storeDir(db), "database"));
  assert.equal(replicaBytes.length, primaryBytes.length, `${label}: ${db} sizes differ`);
  assert.ok(replicaBytes.equals(primaryBytes), `${label}: ${db} database files differ`);
  assert.equal(readPosText(replica, db), readPosText(primary, db), `${label}: ${db}-pos differs`);
}

/** Waits until `text` appears in the node's logs of its current run. */
export async function waitForLog(node: LitefsNode, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(node.lastRunLogs());
    if (match !== null) return match[0];
    if (Date.now() > deadline) {
      throw new Error(
        `no log line matching ${pattern} within ${timeoutMs} ms:\n${node.lastRunLogs().slice(-4000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Log records (JSON lines) of the node's current run whose `msg` is `msg`. */
export function logRecords(node: LitefsNode, msg: string): Record<string, unknown>[] {
  return node
    .lastRunLogs()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((record) => record.msg === msg);
}

/**
 * Waits until the node's current run has logged at least `count` records with `msg` that `filter`
 * accepts (log lines arrive through a pipe, a little after the position they describe), and returns
 * all of them.
 */
export async function waitForRecords(
  node: LitefsNode,
  msg: string,
  count: number,
  filter: (record: Record<string, unknown>) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = logRecords(node, msg).filter(filter);
    if (records.length >= count) return records;
    if (Date.now() > deadline) {
      throw new Error(
        `${records.length} of ${count} "${msg}" log records within ${timeoutMs} ms:\n${node.lastRunLogs().slice(-4000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
