// Candidate ranking with real nodes on a real etcd: a candidate that is behind (frozen with SIGSTOP
// while the primary commits) does not win the election when the primary dies while an up-to-date
// candidate is alive. Without ranking (LEASE_ELECTION_WAIT=0s) the two race and the lagging one wins
// about half the time, which this test then reports as a failure.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeasedCluster, readPosOrNull } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";

const DB = "election.db";

test(
  "a lagging candidate lets the up-to-date one take the lease after the primary dies",
  { timeout: 120_000 },
  async (t) => {
    const wait = process.env.LEASE_ELECTION_WAIT;
    const cluster = await LeasedCluster.start({
      nodes: 3,
      ttl: "2s",
      config: wait === undefined ? {} : { lease: { "election-wait": wait } },
    });
    t.after(() => cluster.cleanup());
    const primary = await cluster.primary();
    const [fresh, lagging] = cluster.others(primary);
    const write = (scripts: string[]): Promise<unknown> =>
      runSqlJob("better-sqlite3", {
        dbPath: primary.node.dbPath(DB),
        pragmas: ["PRAGMA journal_mode=delete"],
        scripts,
      });
    await write(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]);
    await cluster.waitConverged([DB]);

    process.kill(lagging.node.pid, "SIGSTOP");
    let frozen = true;
    t.after(() => {
      if (frozen && lagging.node.running) process.kill(lagging.node.pid, "SIGCONT");
    });
    await write(Array.from({ length: 20 }, (_, i) => `INSERT INTO t (v) VALUES ('row ${i}')`));
    const target = readPosOrNull(primary.node, DB);
    const deadline = Date.now() + 15_000;
    while (readPosOrNull(fresh.node, DB) !== target) {
      assert.ok(Date.now() < deadline, `${fresh.name} did not catch up\n${cluster.logs()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // Let the up-to-date node publish its position before the vacancy.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cluster.kill9(primary);
    process.kill(lagging.node.pid, "SIGCONT");
    frozen = false;
    const killedAt = Date.now();
    const next = await cluster.waitForPrimary({ not: primary, timeoutMs: 20_000 });
    t.diagnostic(`new primary ${next.name} after ${Date.now() - killedAt} ms (up to date: ${fresh.name})`);
    assert.equal(next.name, fresh.name, `the lagging ${lagging.name} won the election\n${cluster.logs()}`);
    // The lagging node follows the new primary and gets every row; nothing acknowledged was lost.
    await cluster.waitConverged([DB]);
    const rows = await runSqlJob("better-sqlite3", {
      dbPath: lagging.node.dbPath(DB),
      queries: ["SELECT count(*) AS n FROM t"],
    });
    assert.equal(Number(rows.results[0][0].n), 20);
  },
);
