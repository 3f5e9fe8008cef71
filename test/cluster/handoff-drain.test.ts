// A handoff drains the old primary before it stops commits (lease-role.ts `#drainWrites`): a write
// transaction in flight when the handoff is asked may still commit — its client is spared a refused
// commit and its rollback — and a transaction that would start meanwhile is refused at its start with
// SQLITE_READONLY, before it wrote anything. One still in flight after `handoffDrainMs` (1 s) meets the
// commit gate as before: refused, nothing of it anywhere.
//
// Real etcd, two `litefs mount` processes, better-sqlite3 in this process on the old primary's mount.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";

import Database from "better-sqlite3";

import { LeasedCluster, type LeasedNode } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";

const DB = "drain.db";
const OTHER = "other.db";

async function rowIds(node: LeasedNode, db: string): Promise<number[]> {
  const { results } = await runSqlJob("better-sqlite3", {
    dbPath: node.node.dbPath(db),
    queries: ["SELECT id FROM t ORDER BY id"],
  });
  return results[0].map((r) => Number(r.id));
}

async function isPrimary(node: LeasedNode): Promise<boolean> {
  const res = await fetch(`${node.node.httpUrl}/info`, { signal: AbortSignal.timeout(2_000) });
  return ((await res.json()) as { isPrimary: boolean }).isPrimary;
}

/** Sets up two databases on the primary, both replicated; returns the primary, the target and its id. */
async function setUp(
  cluster: LeasedCluster,
): Promise<{ old: LeasedNode; target: LeasedNode; targetId: string }> {
  const old = await cluster.primary();
  const [target] = cluster.others(old);
  for (const db of [DB, OTHER]) {
    await runSqlJob("better-sqlite3", {
      dbPath: old.node.dbPath(db),
      pragmas: ["PRAGMA journal_mode=delete"],
      scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'before')"],
    });
  }
  await cluster.waitForReplicasConnected(old);
  await cluster.waitConverged([DB, OTHER]);
  const targetId = String((await cluster.status(target))?.nodeId);
  assert.match(targetId, /^[0-9a-f]{16}$/);
  return { old, target, targetId };
}

/** POST /handoff on `old`, naming the target the way `litefs promote` does (its hostname and URL). */
/**
 * A two-node cluster (cleaned up after `t`) whose primary has a write transaction open on DB: row 2
 * inserted, not committed (`inFlight`, closed after `t`).
 */
async function withOpenTransaction(
  t: { after: (fn: () => unknown) => void },
  row: string,
): Promise<{
  cluster: LeasedCluster;
  old: LeasedNode;
  target: LeasedNode;
  targetId: string;
  inFlight: Database.Database;
}> {
  const cluster = await LeasedCluster.start({ nodes: 2, ttl: "2s" });
  t.after(() => cluster.cleanup());
  const { old, target, targetId } = await setUp(cluster);
  const inFlight = new Database(old.node.dbPath(DB));
  t.after(() => inFlight.close());
  inFlight.exec("BEGIN IMMEDIATE");
  inFlight.prepare("INSERT INTO t VALUES (2, ?)").run(row);
  return { cluster, old, target, targetId, inFlight };
}

function askHandoff(
  old: LeasedNode,
  target: LeasedNode,
  targetId: string,
): Promise<{ status: number; text: string }> {
  const named = `hostname=${target.name}&url=${encodeURIComponent(target.node.httpUrl)}`;
  return fetch(`${old.node.httpUrl}/handoff?to=${targetId}&${named}`, {
    method: "POST",
    signal: AbortSignal.timeout(15_000),
  }).then(async (res) => ({ status: res.status, text: await res.text() }));
}

test(
  "a handoff lets the write transaction in flight commit and refuses new ones at their start",
  { timeout: 120_000 },
  async (t) => {
    const { cluster, old, target, targetId, inFlight } = await withOpenTransaction(
      t,
      "in flight when the handoff was asked",
    );

    const handoff = askHandoff(old, target, targetId);
    // The drain holds the handoff while the transaction is open (up to 1 s): meanwhile a transaction
    // on another database is refused at its start, and the old primary is still the primary.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const other = new Database(old.node.dbPath(OTHER));
    t.after(() => other.close());
    assert.throws(
      () => other.prepare("INSERT INTO t VALUES (2, 'started during the drain')").run(),
      (err: { code?: string }) => String(err.code).startsWith("SQLITE_READONLY"),
      "a transaction started during the drain was not refused as read-only",
    );
    assert.equal(
      fs.existsSync(old.node.dbPath(`${OTHER}-journal`)),
      false,
      "the refused transaction left a journal",
    );
    assert.equal(await isPrimary(old), true, "the handoff did not wait for the transaction in flight");
    assert.equal(
      fs.readFileSync(old.node.dbPath(".primary"), "utf8"),
      `${target.name}\n`,
      "while it drains, the old primary's .primary does not name the target",
    );

    inFlight.exec("COMMIT"); // must not throw: the drain lets it commit
    const answer = await handoff;
    assert.equal(answer.status, 200, `POST /handoff: ${answer.text}\n${cluster.logs()}`);
    assert.equal(await cluster.waitForPrimary({ not: old, timeoutMs: 15_000 }), target);
    assert.deepEqual(await rowIds(target, DB), [1, 2], "the drained commit is missing on the new primary");
    assert.deepEqual(await rowIds(target, OTHER), [1]);
    assert.match(old.node.logs(), /handing the lease off.*"drainMs":\s*[1-9]\d{2,}/);
    await cluster.waitConverged([DB, OTHER]);
  },
);

test(
  "a handoff that fails after the drain leaves the old primary writable and .primary gone",
  { timeout: 120_000 },
  async (t) => {
    const { old, target, targetId, inFlight } = await withOpenTransaction(t, "in flight");
    // The target stops (below): its stream ends, so the handoff cannot reach it after the drain.
    const handoff = askHandoff(old, target, targetId);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(fs.readFileSync(old.node.dbPath(".primary"), "utf8"), `${target.name}\n`);
    await target.node.stop();
    inFlight.exec("COMMIT");
    const answer = await handoff;
    assert.notEqual(answer.status, 200, `POST /handoff to a stopped target succeeded: ${answer.text}`);
    assert.equal(await isPrimary(old), true);
    assert.equal(fs.existsSync(old.node.dbPath(".primary")), false, ".primary still names the target");
    await runSqlJob("better-sqlite3", {
      dbPath: old.node.dbPath(DB),
      scripts: ["INSERT INTO t VALUES (3, 'after the failed handoff')"],
    });
    assert.deepEqual(await rowIds(old, DB), [1, 2, 3]);
  },
);

test(
  "a write transaction still in flight when the drain ends is refused at its commit",
  { timeout: 120_000 },
  async (t) => {
    const { cluster, old, target, targetId, inFlight } = await withOpenTransaction(t, "open past the drain");

    const answer = await askHandoff(old, target, targetId); // the drain gives up after 1 s
    assert.equal(answer.status, 200, `POST /handoff: ${answer.text}\n${cluster.logs()}`);
    assert.match(old.node.logs(), /a write transaction is still in flight; its commit will be refused/);
    assert.throws(
      () => inFlight.exec("COMMIT"),
      (err: { code?: string }) => String(err.code).startsWith("SQLITE_IOERR"),
      "the commit after the handoff was not refused",
    );
    assert.equal(await cluster.waitForPrimary({ not: old, timeoutMs: 15_000 }), target);
    await cluster.waitConverged([DB, OTHER]);
    assert.deepEqual(await rowIds(target, DB), [1]);
    assert.deepEqual(await rowIds(old, DB), [1]);
  },
);
