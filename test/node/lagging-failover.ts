// The failover both ranking tests stage (lease-election-failover, epoch-attribution): in a 3-node
// cluster one replica is frozen while the primary commits ~24 MB — more than the kernel's socket
// buffers hold between them, so it cannot catch up from the dead primary's socket later — the other
// replica catches up, the primary is killed (-9), the frozen one continues, and a new primary is chosen.
import assert from "node:assert/strict";

import { readPosOrNull, type LeasedCluster, type LeasedNode } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";

/** Rows the dead primary committed while the lagging replica was frozen. */
export const LAGGING_ROWS = 20;

export interface LaggingFailover {
  readonly primary: LeasedNode;
  /** The replica that had every row when the primary died. */
  readonly fresh: LeasedNode;
  /** The replica frozen while the rows were committed. */
  readonly lagging: LeasedNode;
  /** The dead primary's last TXID of `db`. */
  readonly lastOldTxid: bigint;
  /** The primary after the failover. */
  readonly next: LeasedNode;
  /** ms from the kill to `next` being primary. */
  readonly failoverMs: number;
}

/** Writes `scripts` as one job on `node`'s `db` (DELETE journal mode). */
export function writeOn(node: LeasedNode, db: string, scripts: string[]): Promise<unknown> {
  return runSqlJob("better-sqlite3", {
    dbPath: node.node.dbPath(db),
    pragmas: ["PRAGMA journal_mode=delete"],
    scripts,
  });
}

export async function failOverWithLaggingReplica(
  cluster: LeasedCluster,
  t: { after: (fn: () => unknown) => void },
  db: string,
): Promise<LaggingFailover> {
  const primary = await cluster.primary();
  const [fresh, lagging] = cluster.others(primary);
  await writeOn(primary, db, ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]);
  await cluster.waitConverged([db]);

  const thaw = cluster.freeze(lagging, t);
  await writeOn(
    primary,
    db,
    Array.from(
      { length: LAGGING_ROWS },
      (_, i) => `INSERT INTO t (v) VALUES ('row ${i}' || hex(randomblob(600000)))`,
    ),
  );
  const target = readPosOrNull(primary.node, db);
  assert.ok(target !== null);
  const deadline = Date.now() + 15_000;
  while (readPosOrNull(fresh.node, db) !== target) {
    assert.ok(Date.now() < deadline, `${fresh.name} did not catch up\n${cluster.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // Let the up-to-date node publish its position before the vacancy.
  await new Promise((resolve) => setTimeout(resolve, 500));
  await cluster.kill9(primary);
  thaw();
  const killedAt = Date.now();
  const next = await cluster.waitForPrimary({ not: primary, timeoutMs: 20_000 });
  return {
    primary,
    fresh,
    lagging,
    lastOldTxid: BigInt(`0x${target.slice(0, 16)}`),
    next,
    failoverMs: Date.now() - killedAt,
  };
}
