// SQLite's read-only hot-journal race under kernel locks (issue #4): a DELETE-mode writer rolls back
// transactions it holds only RESERVED for while read-only connections of three clients (better-sqlite3
// `readonly`, Python `?mode=ro`, `sqlite3 -readonly`) query in a loop. Without the mount's journal-unlink
// fence (journal-unlink-fence.ts) every client fails with SQLITE_READONLY_ROLLBACK many times in such a
// run (~150 failed reads in 10 s over ~800 rollbacks, measured with the fence unwired); with it, none may.
// The node's debug log tells which unlinks were fenced: every rollback's, never a commit's. And the
// fence's wait is bounded: a reader that keeps its read transaction open does not hang a rollback.
import assert from "node:assert/strict";
import { test } from "node:test";

import Database from "better-sqlite3";

import { LitefsNode } from "../support/litefs-node.js";
import { TrackedProcess } from "../support/tracked-process.js";
import { createRaceDatabase, runRollbackRace } from "./rollback-race-kit.js";

const DURATION_MS = 10_000;

test(
  "kernel locks: a rolling-back DELETE writer never fails a read-only connection",
  { timeout: 120_000 },
  async (t) => {
    const node = await LitefsNode.start({ config: { fuse: { "kernel-locks": true }, log: { debug: true } } });
    t.after(() => node.cleanup());
    const dbPath = node.dbPath("race.db");
    createRaceDatabase(dbPath);

    const result = await runRollbackRace(dbPath, { durationMs: DURATION_MS, commitEvery: 20 });

    t.diagnostic(`writer: ${result.rollbacks} rollbacks, ${result.commits} commits`);
    for (const r of result.readers) {
      t.diagnostic(
        `${r.client}: ${r.ok} reads, ${r.readonlyRollback} SQLITE_READONLY_ROLLBACK, other ${JSON.stringify(r.otherErrors)}`,
      );
    }
    const fenced = node
      .logs()
      .split("\n")
      .filter((l) => l.includes('"journal unlink fenced"'))
      .map((l) => JSON.parse(l.slice(l.indexOf("{"))) as { outcome: string; waitedMs: number });
    const waits = fenced.map((f) => f.waitedMs).sort((a, b) => a - b);
    t.diagnostic(
      `fenced unlinks: ${fenced.length}; outcomes ${JSON.stringify(countBy(fenced.map((f) => f.outcome)))}; ` +
        `wait p50 ${waits[Math.floor(waits.length / 2)]} ms, max ${waits.at(-1)} ms`,
    );

    assert.ok(result.rollbacks > 0 && result.commits > 0, "the writer made no progress");
    assert.deepEqual(result.writerErrors, {}, "the writer failed");
    for (const r of result.readers) {
      assert.ok(r.ok > 0, `${r.client}: no successful read`);
      assert.equal(r.readonlyRollback, 0, `${r.client}: read-only rollback errors: ${r.samples.join("; ")}`);
      assert.deepEqual(r.otherErrors, {}, `${r.client}: other errors: ${r.samples.join("; ")}`);
    }
    // Every rollback's journal unlink was fenced, no commit's (the writer held PENDING for those).
    assert.equal(fenced.length, result.rollbacks, "fenced journal unlinks ≠ rollbacks");
    // Nothing of a rolled-back transaction is in the database; every commit is.
    const db = new Database(dbPath, { readonly: true });
    try {
      const row = db.prepare("SELECT count(*) AS n FROM t").get() as { n: number };
      assert.equal(row.n, 1 + result.commits);
    } finally {
      db.close();
    }
  },
);

test(
  "kernel locks: a reader holding its read transaction past the bound delays a rollback by the bound only",
  { timeout: 120_000 },
  async (t) => {
    const node = await LitefsNode.start({ config: { fuse: { "kernel-locks": true } } });
    t.after(() => node.cleanup());
    const dbPath = node.dbPath("held.db");
    createRaceDatabase(dbPath);
    // A read-only connection inside a read transaction (it holds SHARED) for far longer than the bound.
    const reader = await TrackedProcess.spawn({
      label: "python long reader",
      command: "python3",
      args: [
        "-c",
        "import sqlite3, sys, time\n" +
          "c = sqlite3.connect('file:%s?mode=ro' % sys.argv[1], uri=True, isolation_level=None)\n" +
          "c.execute('BEGIN'); c.execute('SELECT count(*) FROM t').fetchall()\n" +
          "print('holding', flush=True); time.sleep(60)\n",
        dbPath,
      ],
    });
    t.after(async () => {
      reader.killGroup();
      await reader.exit;
    });
    await reader.waitForLine(/^holding$/, 20_000);
    const writer = new Database(dbPath, { timeout: 10_000 });
    try {
      writer.pragma("cache_size = -65536");
      writer.exec("BEGIN");
      writer.prepare("INSERT INTO t (v) VALUES (randomblob(64))").run();
      writer.exec("ROLLBACK"); // its journal unlink waits for the reader until the bound, then goes on
      assert.equal(reader.status, undefined, "the reader still holds its transaction");
      // The fence's PENDING is gone again: a new read transaction gets SHARED (a commit would wait for
      // the long reader, as on any disk).
      assert.deepEqual(writer.prepare("SELECT count(*) AS n FROM t").get(), { n: 1 });
    } finally {
      writer.close();
    }
    // The node logged it before answering; its output reaches this process once the loop turns.
    let warning: string | undefined;
    for (const deadline = Date.now() + 10_000; warning === undefined && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      warning = node
        .logs()
        .split("\n")
        .find((l) => l.includes("readers still hold SHARED past the bound"));
    }
    assert.ok(warning !== undefined, `no warning about the long reader\n${node.logs()}`);
    assert.deepEqual((JSON.parse(warning.slice(warning.indexOf("{"))) as { pids: number[] }).pids, [
      reader.pid,
    ]);
  },
);

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
