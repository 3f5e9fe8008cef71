// One primary and two replicas, real `litefs mount` processes on loopback. In every journal mode: a
// seeded random workload (schema changes, VACUUM, checkpoints, rollbacks, big transactions) goes
// through the primary's mount by the sqlite3 shell and better-sqlite3 in turn, while a bank writer
// moves money between accounts and a reader on each replica checks the bank's invariants in every read
// transaction — a torn (half-applied) or stale transaction would break them. Afterwards every
// replica's database file and `-pos` equal the primary's byte for byte (after a checkpoint), and its
// rows equal the workload's model. Then writes through a replica's mount are refused as
// SQLITE_READONLY in every mode, by every client, and nothing on the replica's disk changes.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, before, describe, test } from "node:test";

import type { NodeStatus } from "../../src/cli/status-command.js";
import { changedPaths, hashTree } from "../support/file-hashes.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import { runSqlJob, SQL_CLIENTS, SqlClientError } from "../support/sql-clients.js";
import { checkWorkload, describeMismatches } from "../support/workload-run.js";
import { generateWorkload, JOURNAL_MODES } from "../support/workload.js";
import { runBankReader, runBankWriter } from "./children.js";
import { assertSameDatabase, Cluster, readPosText, waitForSync } from "./cluster.js";

const ACCOUNTS = 40;
const LOAD_MS = 2500;
const SCRIPTS = 24;
const SCRIPTS_PER_JOB = 4;

describe("replication to two replicas", { timeout: 240_000 }, () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await Cluster.start({ replicas: 2 });
  });
  after(async () => {
    await cluster?.cleanup();
  });

  JOURNAL_MODES.forEach((mode, index) => {
    test(`${mode}: a random workload and a bank arrive whole, byte-identical`, async () => {
      const { primary, replicas } = cluster;
      const workloadDb = `w-${mode.toLowerCase()}.db`;
      const bankDb = `bank-${mode.toLowerCase()}.db`;
      const workload = generateWorkload({
        seed: 5000 + index,
        journalMode: mode,
        pageSize: 4096,
        scripts: SCRIPTS,
      });

      await runBankWriter({
        dbPath: primary.dbPath(bankDb),
        journalMode: mode,
        accounts: ACCOUNTS,
        durationMs: 0,
        seed: index,
        init: true,
      });
      await waitForSync(primary, replicas, [bankDb]);

      const readers = replicas.map((replica) =>
        runBankReader({ dbPath: replica.dbPath(bankDb), accounts: ACCOUNTS, durationMs: LOAD_MS + 1500 }),
      );
      const writer = runBankWriter({
        dbPath: primary.dbPath(bankDb),
        journalMode: mode,
        accounts: ACCOUNTS,
        durationMs: LOAD_MS,
        seed: 100 + index,
        init: false,
      });
      for (let i = 0; i < workload.scripts.length; i += SCRIPTS_PER_JOB) {
        await runSqlJob(i % (2 * SCRIPTS_PER_JOB) === 0 ? "sqlite3" : "better-sqlite3", {
          dbPath: primary.dbPath(workloadDb),
          pragmas: workload.pragmas,
          scripts: workload.scripts.slice(i, i + SCRIPTS_PER_JOB),
        });
      }
      const { transfers } = await writer;
      const results = await Promise.all(readers);

      if (mode === "WAL") {
        for (const db of [workloadDb, bankDb]) {
          await runSqlJob("sqlite3", {
            dbPath: primary.dbPath(db),
            queries: ["PRAGMA wal_checkpoint(TRUNCATE)"],
          });
        }
      }
      await waitForSync(primary, replicas, [workloadDb, bankDb]);
      for (const [i, replica] of replicas.entries()) {
        const label = `${mode} replica ${i + 1}`;
        assertSameDatabase(primary, replica, workloadDb, label);
        assertSameDatabase(primary, replica, bankDb, label);
        const mismatches = await checkWorkload("better-sqlite3", replica.dbPath(workloadDb), workload);
        assert.deepEqual(
          mismatches,
          [],
          `${label}: rows differ from the model\n${describeMismatches(mismatches)}`,
        );
        const read = results[i];
        assert.deepEqual(read.violations, [], `${label}: the reader saw a torn or stale state`);
        assert.ok(read.reads > 0, `${label}: the reader read nothing (${JSON.stringify(read)})`);
        assert.ok(read.maxSeen > 0, `${label}: the reader never saw a transfer`);
        console.log(
          `# ${label}: ${read.reads} reads (${read.busy} busy), saw ${read.maxSeen} of ${transfers} transfers`,
        );
      }
      assert.ok(transfers > 10, `only ${transfers} transfers`);
    });
  });

  test("litefs status shows roles, positions, lag and the primary's replicas", async () => {
    const { primary, replicas } = cluster;
    const db = "bank-wal.db";
    await waitForSync(primary, replicas, [db]);
    const primaryStatus = await runLitefsCli(["status", "--json", "--url", primary.httpUrl]);
    assert.equal(primaryStatus.code, 0, primaryStatus.stderr);
    const p = JSON.parse(primaryStatus.stdout) as NodeStatus;
    assert.equal(p.role, "primary");
    assert.equal(p.replicas?.length, 2);
    const pos = readPosText(primary, db)!.trim();
    assert.equal(p.dbs[db].pos, pos);
    for (const r of p.replicas ?? []) {
      assert.equal(r.ready, true);
      assert.equal(r.positions[db], pos, "the primary knows where each replica stands");
    }
    const replicaStatus = await runLitefsCli(["status", "--json", "--url", replicas[0].httpUrl]);
    const r = JSON.parse(replicaStatus.stdout) as NodeStatus;
    assert.equal(r.role, "replica");
    assert.equal(r.clusterId, p.clusterId, "the replica adopted the primary's cluster id");
    assert.equal(r.primary.hostname, "test-primary");
    assert.equal(r.dbs[db].pos, pos);
    assert.equal(r.replication?.connected, true);
    assert.equal(typeof r.lagMs, "number");
    const text = await runLitefsCli(["status", "--url", primary.httpUrl]);
    assert.match(text.stdout, /\(primary\)/);
    assert.ok(text.stdout.includes(pos), text.stdout);
  });

  test("writes through a replica's mount fail with SQLITE_READONLY in every mode; nothing changes", async () => {
    const replica = cluster.replicas[0];
    const unchanged = (file: string): boolean => !/(^|\/)(shm|checksums)$/.test(file);
    const before = hashTree(replica.dataDir, unchanged);
    const positions = JOURNAL_MODES.map((mode) => readPosText(replica, `bank-${mode.toLowerCase()}.db`));
    const statements = [
      "INSERT INTO accounts VALUES (1000, 5)",
      "UPDATE accounts SET balance = 0",
      "CREATE TABLE intruder (x)",
      "DELETE FROM ledger",
    ];
    for (const mode of JOURNAL_MODES) {
      const dbPath = replica.dbPath(`bank-${mode.toLowerCase()}.db`);
      for (const client of SQL_CLIENTS) {
        for (const sql of statements) {
          await assert.rejects(
            runSqlJob(client, { dbPath, scripts: [sql] }),
            (err: unknown) => {
              assert.ok(err instanceof SqlClientError, String(err));
              assert.match(err.stderr, /attempt to write a readonly database/, `${mode} ${client} ${sql}`);
              return true;
            },
            `${mode} ${client}: ${sql} must be refused`,
          );
        }
      }
      // The file system itself: no write, no new database, no removal, no truncation.
      if (mode === "WAL") {
        assert.throws(() => fs.openSync(dbPath, "r+"), { code: "EACCES" });
        assert.throws(() => fs.truncateSync(dbPath, 0), { code: "EACCES" }); // Node opens it for writing
      } else {
        // A rollback-journal database opens read-write (so a connection can write after a promotion:
        // src/mountfs/replica-access.ts), and nothing can be written through it.
        const fd = fs.openSync(dbPath, "r+");
        try {
          assert.throws(() => fs.writeSync(fd, Buffer.from("x"), 0, 1, 0), { code: "EROFS" });
          assert.throws(() => fs.ftruncateSync(fd, 0), { code: "EROFS" });
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        assert.throws(() => fs.truncateSync(dbPath, 0), { code: "EROFS" });
      }
      assert.throws(() => fs.writeFileSync(replica.dbPath(`new-${mode}.db`), "x"), { code: "EACCES" });
      assert.throws(() => fs.unlinkSync(dbPath), { code: "EROFS" });
      assert.equal(fs.statSync(dbPath).mode & 0o777, 0o444);
    }
    const after = hashTree(replica.dataDir, unchanged);
    assert.deepEqual(changedPaths(before, after), [], "files on the replica changed");
    assert.deepEqual(
      JOURNAL_MODES.map((mode) => readPosText(replica, `bank-${mode.toLowerCase()}.db`)),
      positions,
    );
    assert.equal(fs.readFileSync(`${replica.fuseDir}/.primary`, "utf8"), "test-primary\n");
    assert.match(fs.readFileSync(`${replica.fuseDir}/.lag`, "utf8"), /^[+-]\d{9}\n$/);
    assert.equal(fs.existsSync(`${cluster.primary.fuseDir}/.primary`), false, "no .primary on the primary");
  });
});
