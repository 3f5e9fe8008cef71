// A handoff whose replication stream breaks after the old primary sent its last transactions and
// HANDOFF, before the target read them: the target holds the lease (the coordinator recorded the
// handoff) but lacks transactions the old primary acknowledged. It must fetch them from the old
// primary, which is alive, before it acts as primary — not become primary without them (they would
// end in the old primary's quarantine: acknowledged writes lost).
//
// The old primary's API sits behind a fault proxy that it advertises, so the target's stream to it
// goes through the proxy: paused, the last commits and HANDOFF are written to a socket the target
// never reads; dropped, that connection is reset with them in it. The handoff itself is asked of the
// old primary directly (POST /handoff), past the proxy.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeasedCluster, type LeasedNode } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";
import { doubleCommits, readLtxHistory } from "./ltx-history.js";

const DB = "handoff.db";
const LAST_COMMITS = 5;

async function rowIds(node: LeasedNode): Promise<number[]> {
  const { results } = await runSqlJob("better-sqlite3", {
    dbPath: node.node.dbPath(DB),
    queries: ["SELECT id FROM t ORDER BY id"],
  });
  return results[0].map((r) => Number(r.id));
}

test(
  "a handoff whose stream breaks before the target read the last commits: the target fetches them from the old primary",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await LeasedCluster.start({ nodes: 2, ttl: "2s", apiFaultProxies: true });
    t.after(() => cluster.cleanup());
    const old = await cluster.primary();
    const [target] = cluster.others(old);
    await runSqlJob("better-sqlite3", {
      dbPath: old.node.dbPath(DB),
      pragmas: ["PRAGMA journal_mode=delete"],
      scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'before')"],
    });
    await cluster.waitForReplicasConnected(old);
    await cluster.waitConverged([DB]);
    const targetId = (await cluster.status(target))?.nodeId;
    assert.match(String(targetId), /^[0-9a-f]{16}$/);

    // The target's stream from the old primary stalls; the old primary commits and acknowledges more.
    old.apiProxy!.pause();
    const lastIds = Array.from({ length: LAST_COMMITS }, (_, i) => 100 + i);
    await runSqlJob("better-sqlite3", {
      dbPath: old.node.dbPath(DB),
      scripts: lastIds.map((id) => `INSERT INTO t VALUES (${id}, 'acknowledged before the handoff')`),
    });

    // The old primary has written everything to the target's socket: the handoff goes through.
    const handedAt = Date.now();
    const res = await fetch(`${old.node.httpUrl}/handoff?to=${String(targetId)}`, {
      method: "POST",
      signal: AbortSignal.timeout(15_000),
    });
    const answer = await res.text();
    assert.equal(res.status, 200, `POST /handoff: ${answer}\n${cluster.logs()}`);
    // The stream breaks with the last commits and HANDOFF still in it; the proxy forwards again after.
    old.apiProxy!.drop();
    old.apiProxy!.heal();

    assert.equal(await cluster.waitForPrimary({ not: old, timeoutMs: 15_000 }), target);
    t.diagnostic(`the target was primary ${Date.now() - handedAt} ms after POST /handoff was sent`);
    const ids = await rowIds(target);
    assert.deepEqual(
      lastIds.filter((id) => !ids.includes(id)),
      [],
      `acknowledged commits missing on the new primary (rows ${ids.join(",")})\n${cluster.logs(12_000)}`,
    );
    assert.match(
      old.node.logs(),
      /sending the handoff target what it missed/,
      "the target did not fetch the missing transactions from the old primary",
    );

    // The old primary follows the new one with nothing set aside, both converge, and no TXID has two
    // writers (the target did not start over from where its stream broke).
    await runSqlJob("better-sqlite3", {
      dbPath: target.node.dbPath(DB),
      scripts: ["INSERT INTO t VALUES (200, 'on the new primary')"],
    });
    await cluster.waitConverged([DB]);
    const history = [old, target].flatMap((n) => readLtxHistory(n.name, n.node, DB));
    assert.deepEqual(
      history.filter((r) => r.quarantined).map((r) => `${r.holder}:${r.file}`),
      [],
      `transactions were quarantined\n${cluster.logs(12_000)}`,
    );
    assert.deepEqual(doubleCommits(history), []);
    assert.deepEqual(await rowIds(old), await rowIds(target));
  },
);
