// How replicas catch up, with real nodes on loopback: a replica joining late gets a snapshot; a
// restarted replica gets only the files it missed; a replica whose missing files retention removed
// gets a snapshot (and keeps nothing in quarantine: its history was the primary's own); a replica
// whose history diverged (it was briefly a primary and wrote on its own) has its own transactions
// moved to quarantine before the snapshot replaces them; and a primary crashing and restarting under
// load leaves every replica byte-identical, with readers never seeing a torn state meanwhile.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { parse, stringify } from "yaml";

import { runLitefsCli } from "../support/litefs-cli.js";
import { runSqlJob } from "../support/sql-clients.js";
import { runBankReader, runBankWriter } from "./children.js";
import {
  assertSameDatabase,
  Cluster,
  logRecords,
  waitForLog,
  waitForRecords,
  waitForSync,
} from "./cluster.js";

async function sql(dbPath: string, ...scripts: string[]): Promise<void> {
  await runSqlJob("sqlite3", { dbPath, scripts });
}

async function checkpoint(dbPath: string): Promise<void> {
  await runSqlJob("sqlite3", { dbPath, queries: ["PRAGMA wal_checkpoint(TRUNCATE)"] });
}

function inserts(table: string, from: number, count: number): string {
  const rows = Array.from(
    { length: count },
    (_, i) => `(${from + i}, randomblob(${200 + ((from + i) % 7) * 300}))`,
  );
  return `INSERT INTO ${table} VALUES ${rows.join(", ")};`;
}

describe("catching up", { timeout: 240_000 }, () => {
  const clusters: Cluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.cleanup();
  });

  test("late join by snapshot, restart by incremental files, diverged history quarantined", async () => {
    const cluster = await Cluster.start({ replicas: 1 });
    clusters.push(cluster);
    const { primary } = cluster;
    const [first] = cluster.replicas;
    await sql(
      primary.dbPath("a.db"),
      "PRAGMA journal_mode=WAL",
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
    );
    await sql(primary.dbPath("b.db"), "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    for (let i = 0; i < 10; i++) {
      await sql(primary.dbPath("a.db"), inserts("t", i * 20, 20));
      await sql(primary.dbPath("b.db"), inserts("t", i * 20, 20));
    }

    // Late join: a new replica has nothing and gets one snapshot per database.
    const late = await cluster.addReplica();
    await waitForSync(primary, [first, late], ["a.db", "b.db"]);
    const snapshots = await waitForRecords(late, "snapshot applied", 2);
    assert.deepEqual(snapshots.map((r) => [r.db, r.reason]).sort(), [
      ["a.db", "new"],
      ["b.db", "new"],
    ]);
    await checkpoint(primary.dbPath("a.db"));
    for (const db of ["a.db", "b.db"]) assertSameDatabase(primary, late, db, "late replica");

    // Restart: the replica reconnects with its positions and gets only the files it missed.
    await late.stop();
    for (let i = 10; i < 15; i++) await sql(primary.dbPath("a.db"), inserts("t", i * 20, 20));
    await late.restart();
    await waitForSync(primary, [late], ["a.db", "b.db"]);
    const isA = (r: Record<string, unknown>): boolean => r.db === "a.db" && r.source === "replication";
    await waitForRecords(late, "replica in sync with the primary", 1);
    await waitForRecords(late, "commit", 5, isA);
    assert.equal(logRecords(late, "snapshot applied").length, 0, "a restarted replica needs no snapshot");
    assert.equal(
      logRecords(late, "commit").filter(isA).length,
      5,
      "exactly the five missed transactions arrive",
    );
    await checkpoint(primary.dbPath("a.db"));
    assertSameDatabase(primary, late, "a.db", "restarted replica");

    // Divergence: the replica runs as a primary of its own for a moment and commits two transactions
    // the real primary never sees; meanwhile the primary commits two of its own (same TXIDs, other
    // checksums).
    await late.stop();
    const config = parse(fs.readFileSync(late.configPath, "utf8")) as Record<string, Record<string, unknown>>;
    const asReplica = structuredClone(config);
    config.lease = { ...config.lease, candidate: true, "advertise-url": late.httpUrl, hostname: "rogue" };
    fs.writeFileSync(late.configPath, stringify(config));
    await late.restart();
    await sql(late.dbPath("b.db"), "INSERT INTO t VALUES (100000, 'rogue one')");
    await sql(late.dbPath("b.db"), "INSERT INTO t VALUES (100001, 'rogue two')");
    const roguePos = fs.readFileSync(late.posPath("b.db"), "utf8");
    await late.stop();
    await sql(primary.dbPath("b.db"), "INSERT INTO t VALUES (200000, 'primary')");
    await sql(primary.dbPath("b.db"), "INSERT INTO t VALUES (200001, 'primary')");
    fs.writeFileSync(late.configPath, stringify(asReplica));
    await late.restart();
    await waitForSync(primary, [late], ["a.db", "b.db"]);
    const quarantined = await waitForRecords(
      late,
      "quarantined transactions the primary's history does not have",
      1,
    );
    assert.equal(quarantined.length, 1, cluster.logs());
    assert.equal(quarantined[0].db, "b.db");
    assert.equal(quarantined[0].verdict, "diverged");
    const dir = String(quarantined[0].dir);
    const record = JSON.parse(fs.readFileSync(path.join(dir, "quarantine.json"), "utf8")) as {
      files: string[];
      position: string;
    };
    assert.equal(record.position + "\n", roguePos, "the quarantine records the diverged position");
    assert.deepEqual(
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".ltx"))
        .sort(),
      record.files.slice().sort(),
      "the rogue transactions' LTX files are kept",
    );
    assert.ok(record.files.length >= 2, `two rogue transactions at least: ${record.files.join(", ")}`);
    const [snapshot] = await waitForRecords(late, "snapshot applied", 1, (r) => r.db === "b.db");
    assert.equal(snapshot.reason, "checksum-mismatch");
    assertSameDatabase(primary, late, "b.db", "resynced replica");
    const rows = await runSqlJob("better-sqlite3", {
      dbPath: late.dbPath("b.db"),
      queries: ["SELECT count(*) AS n FROM t WHERE id >= 100000 AND id < 200000"],
    });
    assert.deepEqual(rows.results[0], [{ n: 0 }], "the rogue rows are gone from the database itself");
  });

  test("a replica whose missing files retention removed gets a snapshot; exec waits for sync", async () => {
    const cluster = await Cluster.start({
      replicas: 1,
      primaryConfig: { data: { retention: "1s", "retention-monitor-interval": "200ms" } },
    });
    clusters.push(cluster);
    const { primary } = cluster;
    const [replica] = cluster.replicas;
    await sql(primary.dbPath("r.db"), "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", inserts("t", 0, 10));
    await waitForSync(primary, [replica], ["r.db"]);
    await replica.stop();
    for (let i = 1; i <= 6; i++) await sql(primary.dbPath("r.db"), inserts("t", i * 10, 10));
    await new Promise((resolve) => setTimeout(resolve, 1600)); // retention removes all but the newest
    await sql(primary.dbPath("r.db"), inserts("t", 1000, 3));
    await replica.restart();
    await waitForSync(primary, [replica], ["r.db"]);
    const [snapshot] = await waitForRecords(replica, "snapshot applied", 1, (r) => r.db === "r.db");
    assert.equal(snapshot.reason, "files-unavailable", replica.lastRunLogs());
    await waitForRecords(
      replica,
      "history not verifiable by the primary, but written by it: nothing to quarantine",
      1,
    );
    assert.equal(fs.existsSync(path.join(replica.dataDir, "quarantine")), false, "nothing quarantined");
    assertSameDatabase(primary, replica, "r.db", "replica after a retention gap");

    // `exec` runs only once the replica has caught up: the command sees the primary's position.
    await replica.stop();
    await sql(primary.dbPath("r.db"), inserts("t", 2000, 5));
    const out = path.join(replica.baseDir, "exec-saw.txt");
    const config = parse(fs.readFileSync(replica.configPath, "utf8")) as Record<string, unknown>;
    config.exec = [{ cmd: `sh -c "cat ${replica.posPath("r.db")} > ${out}"` }];
    fs.writeFileSync(replica.configPath, stringify(config));
    await replica.restart();
    for (const deadline = Date.now() + 20_000; replica.running && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 50)); // litefs exits once the command has
    }
    const status = await replica.stop();
    assert.equal(status.code, 0, replica.lastRunLogs());
    assert.equal(fs.readFileSync(out, "utf8"), fs.readFileSync(primary.posPath("r.db"), "utf8"));
  });

  test("imports with another page size and journal-mode switches follow on a replica", async () => {
    const cluster = await Cluster.start({ replicas: 1 });
    clusters.push(cluster);
    const { primary } = cluster;
    const [replica] = cluster.replicas;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-import-"));
    try {
      for (const [i, pageSize] of [4096, 1024, 8192].entries()) {
        const file = path.join(work, `source-${i}.db`);
        const db = new Database(file);
        db.pragma(`page_size = ${pageSize}`);
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
        const insert = db.prepare("INSERT INTO t (v) VALUES (randomblob(300))");
        db.transaction(() => {
          for (let n = 0; n < 200 * (i + 1); n++) insert.run();
        })();
        db.close();
        const result = await runLitefsCli(["import", "--name", "imp.db", "--url", primary.httpUrl, file]);
        assert.equal(result.code, 0, result.stderr);
        await waitForSync(primary, [replica], ["imp.db"]);
        assertSameDatabase(primary, replica, "imp.db", `import ${i + 1} (page size ${pageSize})`);
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }

    const w = primary.dbPath("switch.db");
    await sql(w, "PRAGMA journal_mode=WAL", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)");
    await waitForSync(primary, [replica], ["switch.db"]);
    assert.equal(fs.existsSync(replica.dbPath("switch.db-wal")), true, "a WAL database has its -wal");
    await sql(w, "PRAGMA journal_mode=DELETE", "INSERT INTO t VALUES (2)");
    await waitForSync(primary, [replica], ["switch.db"]);
    assert.equal(fs.existsSync(replica.dbPath("switch.db-wal")), false, "back in rollback mode: no -wal");
    await sql(w, "PRAGMA journal_mode=WAL", "INSERT INTO t VALUES (3)");
    await waitForSync(primary, [replica], ["switch.db"]);
    const rows = await runSqlJob("sqlite3", {
      dbPath: replica.dbPath("switch.db"),
      queries: ["SELECT sum(x) AS s FROM t"],
    });
    assert.deepEqual(rows.results[0], [{ s: 6 }]);
    await checkpoint(w);
    assertSameDatabase(primary, replica, "switch.db", "after journal mode switches");
  });

  test("a primary crashing and restarting under load: replicas stay whole and catch up", async () => {
    const cluster = await Cluster.start({ replicas: 2 });
    clusters.push(cluster);
    const { primary, replicas } = cluster;
    const accounts = 30;
    const job = {
      dbPath: primary.dbPath("bank.db"),
      journalMode: "WAL",
      accounts,
      init: true,
      durationMs: 0,
      seed: 1,
    };
    await runBankWriter(job);
    await waitForSync(primary, replicas, ["bank.db"]);
    const readers = replicas.map((r) =>
      runBankReader({ dbPath: r.dbPath("bank.db"), accounts, durationMs: 7000 }),
    );
    const writer = runBankWriter({ ...job, init: false, durationMs: 5000, seed: 2 }).catch(() => null);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await primary.crash();
    await writer; // it fails with the mount gone, or ends
    await primary.restart();
    await waitForLog(replicas[0], /connected to the primary[^\n]*\n[\s\S]*connected to the primary/);
    await runBankWriter({ ...job, init: false, durationMs: 1500, seed: 3 });
    const results = await Promise.all(readers);
    await checkpoint(primary.dbPath("bank.db"));
    await waitForSync(primary, replicas, ["bank.db"]);
    for (const [i, replica] of replicas.entries()) {
      assert.deepEqual(results[i].violations, [], `replica ${i + 1} saw a torn state`);
      assert.ok(results[i].reads > 0);
      assertSameDatabase(primary, replica, "bank.db", `replica ${i + 1}`);
    }
  });
});
