// HALT transactions are not echoed back to the replica that wrote them. A replica commits under the
// HALT lock locally, then sends the LTX file to the primary (`POST /tx`); the primary applies it and
// streams it on — to every replica but that one, which already has it (primary-stream.ts). Echoing it
// would not continue that replica's position: its stream would end with ESTREAMTXID and reconnect once
// per HALT transaction. Real nodes: one static primary, two replicas, many HALT commits in a row.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { assertSameDatabase, Cluster, logRecords, waitForSync } from "../replication/cluster.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { runCommand } from "../support/litefs-cli.js";
import { SQLITE3_CLI } from "../support/paths.js";
import { querySql } from "../support/sql-clients.js";
import { assertSameLtxChains, killHelpers, runUnderHaltLock } from "./halt-kit.js";

const DB = "app.db";
/** HALT transactions per run: each a separate autocommit INSERT. */
const COMMITS = 25;

async function sqlite(path: string, sql: string): Promise<{ code: number | null; out: string }> {
  const r = await runCommand(SQLITE3_CLI, ["-cmd", ".timeout 10000", path, sql], { timeoutMs: 60_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** `litefs_stream_reconnects_total` of `node` (its replica stream's reconnects since it started). */
async function reconnects(node: LitefsNode): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const match = /^litefs_stream_reconnects_total (\d+)$/m.exec(text);
  assert.ok(match !== null, `no litefs_stream_reconnects_total in ${node.httpUrl}/metrics`);
  return Number(match[1]);
}

function streamErrors(node: LitefsNode): Record<string, unknown>[] {
  return logRecords(node, "replication stream ended with an error; reconnecting");
}

describe("HALT transactions are not echoed to their writer", { timeout: 180_000 }, () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await Cluster.start({ replicas: 2 }); // the run's lock mode (LITEFS_TEST_KERNEL_LOCKS)
    const made = await sqlite(cluster.primary.dbPath(DB), "CREATE TABLE t(x); INSERT INTO t VALUES (0);");
    assert.equal(made.code, 0, made.out);
    await waitForSync(cluster.primary, cluster.replicas, [DB]);
  });

  after(async () => {
    killHelpers();
    await cluster?.cleanup();
  });

  for (const mode of ["delete", "wal"] as const) {
    test(`${COMMITS} HALT commits from a replica (${mode}): no stream reconnects, every node identical`, async () => {
      if (mode === "wal") {
        const wal = await sqlite(cluster.primary.dbPath(DB), "PRAGMA journal_mode=WAL;");
        assert.equal(wal.code, 0, wal.out);
        await waitForSync(cluster.primary, cluster.replicas, [DB]);
      }
      const [writer, other] = cluster.replicas;
      const reconnectsBefore = await Promise.all(cluster.replicas.map(reconnects));
      const errorsBefore = cluster.replicas.map((node) => streamErrors(node).length);
      const start = Number(
        (await querySql("sqlite3", cluster.primary.dbPath(DB), "SELECT count(*) AS n FROM t"))[0].n,
      );
      const inserts = Array.from({ length: COMMITS }, (_, i) => `INSERT INTO t VALUES (${start + i});`);
      const r = await runUnderHaltLock(writer, DB, [SQLITE3_CLI, writer.dbPath(DB), inserts.join(" ")]);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${cluster.logs()}`);
      // A primary write after the HALT commits must still reach the writer (its stream is live).
      const last = await sqlite(cluster.primary.dbPath(DB), `INSERT INTO t VALUES (-1);`);
      assert.equal(last.code, 0, last.out);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);

      const reconnectsAfter = await Promise.all(cluster.replicas.map(reconnects));
      assert.deepEqual(reconnectsAfter, reconnectsBefore, `stream reconnects:\n${cluster.logs()}`);
      assert.deepEqual(
        cluster.replicas.map((node) => streamErrors(node).length),
        errorsBefore,
        `stream errors logged:\n${cluster.logs()}`,
      );
      for (const node of [cluster.primary, writer, other]) {
        const rows = await querySql("sqlite3", node.dbPath(DB), "SELECT count(*) AS n FROM t");
        assert.equal(Number(rows[0].n), start + COMMITS + 1, cluster.logs());
      }
      assertSameLtxChains([cluster.primary, ...cluster.replicas], DB, `${mode}: after the HALT commits`);
      if (mode === "delete") {
        // In WAL mode the primary's database file lags its WAL; the chains above are the comparison.
        for (const node of cluster.replicas) assertSameDatabase(cluster.primary, node, DB, mode);
      }
      const status = (await (await fetch(`${cluster.primary.httpUrl}/status`)).json()) as {
        replicas?: { nodeId: string; positions: Record<string, string> }[];
      };
      const want = cluster.primary.readPos(DB);
      for (const replica of status.replicas ?? []) {
        assert.equal(
          replica.positions[DB],
          `${want.txid.toString(16).padStart(16, "0")}/${want.checksum}`,
          `the primary's stream knows where replica ${replica.nodeId} is`,
        );
      }
    });
  }
});
