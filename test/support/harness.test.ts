// Tests of the shared test harness itself, on plain directories and libfuse's C passthrough, so that
// a mount test failing means the mount is wrong, not the harness: the workload model agrees with what
// all three clients read back (and notices a change it did not make), the acknowledging writer's
// invariants hold, mount processes are waited for, stopped, crashed and always unmounted, and stopping
// a process also kills what it left behind.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { litefsCliOk } from "./litefs-cli.js";
import {
  describeDatabaseDifference,
  listLtxFiles,
  ltxChecksumOfDatabase,
  readLtxHeader,
  readLtxPostApplyChecksum,
  replayLtxFiles,
} from "./ltx-chain.js";
import { ACK_WRITER_CONSISTENCY_QUERIES, ACK_WRITER_SCHEMA, AckWriter } from "./ack-writer.js";
import { MountProcess } from "./mount-process.js";
import { isMounted } from "./mounts.js";
import { startCPassthrough } from "./passthrough.js";
import { Prng } from "./prng.js";
import { runSqlJob, SQL_CLIENTS, SqlClientError } from "./sql-clients.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";
import { TrackedProcess } from "./tracked-process.js";
import { generateWorkload } from "./workload.js";
import { checkWorkload, runWorkload } from "./workload-run.js";

test("Prng: the same seed gives the same sequence, ranges are inclusive", () => {
  const a = new Prng(7);
  const b = new Prng(7);
  const sequence = Array.from({ length: 50 }, () => a.int(0, 3));
  assert.deepEqual(
    sequence,
    Array.from({ length: 50 }, () => b.int(0, 3)),
  );
  assert.deepEqual([...new Set(sequence)].sort(), [0, 1, 2, 3]);
  assert.notDeepEqual(
    Array.from({ length: 10 }, () => new Prng(8).nextUint32()),
    Array.from({ length: 10 }, () => new Prng(7).nextUint32()),
  );
});

test("workload: every client's result matches the model; a foreign change is noticed", async (t) => {
  const dir = makeTempDir("harness-workload");
  t.after(() => removeTempDir(dir));
  for (const [i, client] of SQL_CLIENTS.entries()) {
    for (const journalMode of ["PERSIST", "WAL"] as const) {
      const workload = generateWorkload({ seed: 100 + i, journalMode, pageSize: 1024, scripts: 30 });
      const db = path.join(dir, `${client}-${journalMode}.db`);
      await runWorkload(client, db, workload);
      for (const reader of SQL_CLIENTS) {
        assert.deepEqual(await checkWorkload(reader, db, workload), [], `${client} wrote, ${reader} read`);
      }
      const table = workload.checks.find(
        (check) => check.name.startsWith("rows of ") && check.expected.length > 0,
      )!;
      await runSqlJob(client, {
        dbPath: db,
        scripts: [`DELETE FROM ${table.name.slice("rows of ".length)} WHERE id = ${table.expected[0].id}`],
      });
      const mismatches = await checkWorkload(client, db, workload);
      assert.deepEqual(
        mismatches.map((m) => m.check),
        [table.name],
      );
    }
  }
});

test("sql clients: a failing statement rejects with the client's error text", async (t) => {
  const dir = makeTempDir("harness-errors");
  t.after(() => removeTempDir(dir));
  for (const client of SQL_CLIENTS) {
    await assert.rejects(
      runSqlJob(client, { dbPath: path.join(dir, "x.db"), scripts: ["SELECT * FROM no_such_table;"] }),
      (err: unknown) => err instanceof SqlClientError && /no such table/.test(err.message),
      client,
    );
  }
});

test("ltx chain helpers: a snapshot of a database replays to its bytes; checksums agree", async (t) => {
  const dir = makeTempDir("harness-ltx");
  t.after(() => removeTempDir(dir));
  const db = path.join(dir, "src.db");
  const workload = generateWorkload({ seed: 9, journalMode: "DELETE", pageSize: 512, scripts: 12 });
  await runWorkload("sqlite3", db, workload);
  const ltxDir = path.join(dir, "ltx");
  fs.mkdirSync(ltxDir);
  const snapshot = path.join(ltxDir, "0000000000000001-0000000000000001.ltx");
  await litefsCliOk(["ltx", "encode-db", "-o", snapshot, db]);
  const files = listLtxFiles(ltxDir);
  assert.deepEqual(
    files.map((f) => [f.minTxid, f.maxTxid]),
    [[1n, 1n]],
  );
  const header = readLtxHeader(snapshot);
  assert.equal(header.pageSize, 512);
  assert.equal(header.commit * 512, fs.statSync(db).size);
  assert.equal(readLtxPostApplyChecksum(snapshot), await ltxChecksumOfDatabase(db));
  const replayed = path.join(dir, "replayed.db");
  await replayLtxFiles([snapshot], replayed);
  assert.equal(describeDatabaseDifference(db, replayed), undefined);
  fs.appendFileSync(replayed, Buffer.alloc(512));
  assert.match(describeDatabaseDifference(db, replayed) ?? "", /identical for the first/);
});

test("ack writer: acknowledged batches are present and the tables agree", async (t) => {
  const dir = makeTempDir("harness-ack");
  t.after(() => removeTempDir(dir));
  for (const client of ["python", "better-sqlite3"] as const) {
    const dbPath = path.join(dir, `${client}.db`);
    await runSqlJob("sqlite3", {
      dbPath,
      pragmas: ["PRAGMA journal_mode=WAL"],
      scripts: [ACK_WRITER_SCHEMA],
    });
    const writer = await AckWriter.start({
      client,
      dbPath,
      journalMode: "WAL",
      firstBatchId: 1,
      seed: 5,
      payloadBytesMax: 3000,
    });
    await writer.waitForAcks(25, 20_000);
    writer.process.killGroup();
    await writer.finish();
    const { results } = await runSqlJob("python", {
      dbPath,
      queries: ["SELECT id FROM batches ORDER BY id", ...ACK_WRITER_CONSISTENCY_QUERIES.map((q) => q.sql)],
    });
    const present = new Set(results[0].map((row) => row.id));
    assert.ok(writer.acked.length >= 25);
    assert.deepEqual(
      writer.acked.filter((id) => !present.has(id)),
      [],
    );
    assert.deepEqual(
      results.slice(1),
      ACK_WRITER_CONSISTENCY_QUERIES.map(() => [{ bad: 0 }]),
    );
  }
});

test("mount process: C passthrough mounts, serves a workload, stops and crashes cleanly", async (t) => {
  const base = makeTempDir("harness-mount");
  t.after(() => removeTempDir(base));
  const source = path.join(base, "src");
  const mountDir = path.join(base, "mnt");
  fs.mkdirSync(source);
  fs.mkdirSync(mountDir);

  const first = await startCPassthrough(source, mountDir);
  t.after(() => first.cleanup());
  assert.ok(isMounted(mountDir));
  const workload = generateWorkload({ seed: 3, journalMode: "DELETE", pageSize: 4096, scripts: 10 });
  await runWorkload("better-sqlite3", path.join(mountDir, "x.db"), workload);
  assert.deepEqual(await checkWorkload("sqlite3", path.join(source, "x.db"), workload), []);
  await first.stop();
  assert.ok(!isMounted(mountDir), "still mounted after stop()");

  const second = await startCPassthrough(source, mountDir);
  t.after(() => second.cleanup());
  const reader = fs.openSync(path.join(mountDir, "x.db"), "r"); // keeps the dead mount busy
  await second.crash();
  assert.throws(() => fs.closeSync(reader), { code: "ENOTCONN" }, "the server was not dead");
  assert.ok(!isMounted(mountDir), "a crashed server's mount was left behind");
});

test("mount process: a server that never becomes ready fails with its stderr, and is killed", async () => {
  const base = makeTempDir("harness-notready");
  try {
    await assert.rejects(
      MountProcess.start({
        label: "broken server",
        command: "sh",
        args: ["-c", "echo 'cannot open /dev/fuse: boom' >&2; exit 3"],
        mountDir: base,
        ready: /mount ready/,
        readyTimeoutMs: 5_000,
      }),
      /boom/,
    );
    await assert.rejects(
      MountProcess.start({
        label: "silent server",
        command: "sleep",
        args: ["60"],
        mountDir: base,
        ready: "mounted",
        readyTimeoutMs: 300,
      }),
      /not mounted within 300 ms/,
    );
  } finally {
    removeTempDir(base);
  }
});

test("tracked process: stop() also kills the children it left behind", async () => {
  const parent = await TrackedProcess.spawn({
    label: "parent",
    command: "sh",
    // The trap comes before the echo: the test stops the parent as soon as it reads the line.
    args: ["-c", "trap '' TERM; sleep 60 & echo child $!; wait"],
  });
  const line = await parent.waitForLine(/^child \d+$/, 5_000);
  const childPid = Number(line.split(" ")[1]);
  const status = await parent.stop(300);
  assert.equal(status.signal, "SIGKILL", "the parent ignored SIGTERM, so it must have been killed");
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(!isRunning(childPid), "the grandchild survived");
});

/** True while `pid` exists and is not a zombie (PID 1 here may be slow to reap orphans, or never). */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
