// A read-only connection to a WAL-mode database needs its `-wal` file to exist: it cannot create one
// on a replica (EACCES, which SQLite reports as SQLITE_READONLY_DIRECTORY, "attempt to write a
// readonly database") and then fails even to read. A replica keeps an empty `-wal` for that
// (src/mountfs/replica-access.ts), created when it applies a transaction. A node that was primary has
// none once its last local connection closed (SQLite checkpoints and removes it): turned replica — by
// a handoff, or restarted after another node took the lease — its readers failed until the next
// replicated transaction came, which on an idle cluster is never (found by bench/chaos.ts's planned
// handoffs: two failed reads on the old primary ~400 ms into a handoff). Real etcd, real nodes.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, test } from "node:test";

import Database from "better-sqlite3";

import { httpRequest } from "../../src/net/http-request.js";
import { EtcdCluster } from "../support/etcd.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { nodeStatus, startEtcdNode, waitConverged, waitFollowing, waitForPrimary } from "./lease-kit.js";

const DB = "walread.db";
const ROWS = 25;

/** Reads `DB` on `node` with a read-only connection, as an application on a replica would. */
function readRows(node: LitefsNode): number {
  const reader = new Database(node.dbPath(DB), { readonly: true, fileMustExist: true });
  try {
    return (reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n;
  } finally {
    reader.close();
  }
}

/** `DB` in WAL mode on `primary` with ROWS rows, every connection closed (so its `-wal` is gone). */
function writeAndClose(primary: LitefsNode): void {
  const writer = new Database(primary.dbPath(DB));
  try {
    writer.pragma("journal_mode = wal");
    writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    const insert = writer.prepare("INSERT INTO t (v) VALUES (?)");
    for (let i = 0; i < ROWS; i++) insert.run(`row ${i}`);
  } finally {
    writer.close();
  }
  assert.equal(fs.existsSync(`${primary.dbPath(DB)}-wal`), false, "the last close left the -wal");
}

/**
 * Two etcd nodes; `old`, the primary, has `DB` in WAL mode with no connection left (so no `-wal`),
 * and `target` has all of it.
 */
async function idleWalCluster(label: string): Promise<{ old: LitefsNode; target: LitefsNode }> {
  const etcd = await EtcdCluster.start({ label });
  const nodes: LitefsNode[] = [];
  after(async () => {
    for (const node of nodes) await node.cleanup().catch(() => undefined);
    await etcd.stop();
  });
  const old = await startEtcdNode("old", etcd.endpoints, `/litefs/${label}`);
  nodes.push(old);
  const target = await startEtcdNode("target", etcd.endpoints, `/litefs/${label}`);
  nodes.push(target);
  assert.equal((await nodeStatus(old)).role, "primary", old.logs());
  writeAndClose(old);
  await waitConverged(old, [target], DB);
  return { old, target };
}

test(
  "an old primary's readers read a WAL database right after it handed its lease off",
  { timeout: 90_000 },
  async () => {
    const { old, target } = await idleWalCluster("replica-wal-handoff");
    const to = (await nodeStatus(target)).nodeId;
    const answer = await httpRequest(`${old.httpUrl}/handoff?to=${to}`, { method: "POST" });
    assert.equal(answer.status, 200, answer.text);
    await waitFollowing(old, target, "the old primary follows the target");
    // No write since: nothing replicated to the old primary that would have created its -wal.
    assert.equal(readRows(old), ROWS, old.lastRunLogs().slice(-3000));
    assert.equal(fs.statSync(`${old.dbPath(DB)}-wal`).size, 0);
    // The new primary's writes still reach it, and its readers see them.
    const writer = new Database(target.dbPath(DB));
    try {
      writer.pragma("busy_timeout = 5000");
      writer.exec("INSERT INTO t (v) VALUES ('after')");
    } finally {
      writer.close();
    }
    await waitConverged(target, [old], DB);
    assert.equal(readRows(old), ROWS + 1);
  },
);

test(
  "a node that was primary reads a WAL database as soon as it is back as a replica",
  { timeout: 90_000 },
  async () => {
    const { old, target } = await idleWalCluster("replica-wal-restart");
    await old.crash();
    assert.equal(await waitForPrimary([target], 20_000), target);
    await old.restart();
    await waitFollowing(old, target, "the restarted node follows the target");
    assert.equal(readRows(old), ROWS, old.lastRunLogs().slice(-3000));
    assert.equal(fs.statSync(`${old.dbPath(DB)}-wal`).size, 0);
  },
);
