// A replica applies the transactions one stream read brings as a run (node/replica-applier.ts `more`):
// queued without touching the database, their LTX files made durable together, then written under one
// lock round. On a real mount with SQLite readers:
// - while queued, nothing moves: not the position, not the LTX directory, not what a reader sees; then
//   the whole run lands at once, and the chain replays to the database byte for byte;
// - a run whose locks cannot be taken (a reader keeps its read transaction open past the abort) leaves
//   nothing behind — no LTX file ahead of the position, no temporary file — and the same transactions
//   apply when sent again.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { formatPos } from "../../src/ltx/pos.js";
import type { BackingFiles } from "../../src/store/backing-files.js";
import type { DatabaseFileKind } from "../../src/store/data-dir.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { parseShmHeader } from "../../src/store/shm-format.js";
import { makeTempDir } from "../support/temp-dir.js";
import {
  cleanupStack,
  removeUnmountedTempDir,
  rows,
  shell,
  SqlSession,
  TestMount,
} from "./role-change-kit.js";

const MODES = ["DELETE", "WAL"] as const;

/**
 * A primary mount `a` and a replica mount `b` (kernel locks) sharing database `db`: created on `a`,
 * applied on `b`, then six more transactions on `a` (the last two grow the file by many pages) that
 * `b` has not applied. `target` is `b`'s database.
 */
async function replicaSixBehind(
  t: Parameters<typeof cleanupStack>[0],
  db: string,
  mode: (typeof MODES)[number],
) {
  const defer = cleanupStack(t);
  const root = makeTempDir(`replica-run-${db.replace(/\W/g, "-")}`);
  defer(() => removeUnmountedTempDir(root));
  const a = await TestMount.start(defer, root, "a", "primary");
  const b = await TestMount.start(defer, root, "b", "replica", { kernelLocks: true, kernelNodeLocks: true });
  await shell(a.path(db), mode, ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]);
  await b.applyFrom(a, db);
  for (let i = 0; i < 6; i++) {
    await shell(a.path(db), mode, [
      `INSERT INTO t (v) SELECT hex(randomblob(${i < 4 ? 10 : 3000})) FROM ${rows(20)}`,
    ]);
  }
  return { defer, root, a, b, target: b.store.mustDb(db) };
}

/** Runs `body` while the `nth` write to `files`' file of `kind` fails with an injected EIO. */
async function failingWrite(
  files: BackingFiles,
  kind: DatabaseFileKind,
  nth: number,
  body: () => Promise<void>,
): Promise<void> {
  const write = files.write.bind(files);
  let writes = 0;
  files.write = (k, offset, data) => {
    if (k === kind && ++writes === nth) throw new Error("EIO (injected)");
    write(k, offset, data);
  };
  try {
    await body();
  } finally {
    files.write = write;
  }
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.endsWith(".tmp"));
}

for (const mode of MODES) {
  test(`${mode}: a queued run moves nothing until it is applied, then lands whole`, async (t) => {
    const db = `run-${mode.toLowerCase()}.db`;
    const { defer, root, a, b, target } = await replicaSixBehind(t, db, mode);
    const before = formatPos(target.pos);
    const filesBefore = listLtxFiles(target.dir.ltxDir).length;
    const reader = new SqlSession(defer, `file:${b.path(db)}?mode=ro`);
    assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[0]]);

    assert.equal(await b.applyFrom(a, db, { queueOnly: true }), 6);
    assert.equal(formatPos(target.pos), before, "queued: the position has not moved");
    assert.equal(b.applier.plannedPos(target).txid, target.pos.txid + 6n, "the queue's end is six ahead");
    assert.equal(listLtxFiles(target.dir.ltxDir).length, filesBefore, "queued: no LTX file in place yet");
    assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[0]]);

    const applied = await b.applier.flush(AbortSignal.timeout(20_000));
    assert.ok(applied !== null);
    assert.equal(formatPos(applied.pos), await a.pos(db));
    assert.equal(formatPos(target.pos), await a.pos(db));
    assert.equal(listLtxFiles(target.dir.ltxDir).length, filesBefore + 6);
    assert.deepEqual(leftovers(target.dir.ltxDir), []);
    assert.deepEqual(await reader.ok("SELECT count(*), sum(length(v)) FROM t"), [
      [120, 4 * 20 * 20 + 2 * 20 * 6000],
    ]);
    assert.deepEqual(await reader.ok("PRAGMA integrity_check"), [["ok"]]);
    await b.verifyChain(db, fs.mkdtempSync(path.join(root, "scratch-")));
  });

  test(`${mode}: a run that cannot take its locks leaves nothing behind and applies when sent again`, async (t) => {
    const db = `abort-${mode.toLowerCase()}.db`;
    const { defer, root, a, b, target } = await replicaSixBehind(t, db, mode);
    const before = formatPos(target.pos);
    const names = fs.readdirSync(target.dir.ltxDir).sort();

    // A read transaction held open: the run's files are made durable, then the locks wait — aborted.
    const reader = new SqlSession(defer, `file:${b.path(db)}?mode=ro`);
    await reader.ok("BEGIN");
    assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[0]]);
    await assert.rejects(b.applyFrom(a, db, { run: true, signal: AbortSignal.timeout(300) }));
    assert.equal(formatPos(target.pos), before, "the position did not move");
    assert.deepEqual(fs.readdirSync(target.dir.ltxDir).sort(), names, "no LTX file ahead, no temporary file");
    assert.equal(b.applier.plannedPos(target).txid, target.pos.txid, "nothing is left queued");
    assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[0]]);
    await reader.ok("COMMIT");

    assert.equal(await b.applyFrom(a, db, { run: true }), 6);
    assert.equal(formatPos(target.pos), await a.pos(db));
    assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[120]]);
    assert.deepEqual(leftovers(target.dir.ltxDir), []);
    await b.verifyChain(db, fs.mkdtempSync(path.join(root, "scratch-")));
  });
}

test("a transaction whose page writes failed keeps its LTX file until the database moves past it", async (t) => {
  const db = "torn.db";
  const { defer, root, a, b, target } = await replicaSixBehind(t, db, "DELETE");

  // An I/O error on the database file's second write of the run: the transaction being written is
  // torn (some of its pages may be on disk), those before it applied, those after it discarded.
  await failingWrite(target.files, "database", 2, () =>
    assert.rejects(b.applyFrom(a, db, { run: true }), /EIO \(injected\)/),
  );
  const tornTxid = target.pos.txid + 1n;
  const tornName = (txid: bigint) =>
    `${txid.toString(16).padStart(16, "0")}-${txid.toString(16).padStart(16, "0")}.ltx`;
  const ahead = () =>
    listLtxFiles(target.dir.ltxDir)
      .filter((f) => f.maxTxid > target.pos.txid)
      .map((f) => f.name);
  assert.deepEqual(
    ahead(),
    [tornName(tornTxid)],
    "only the torn transaction's file is ahead of the position",
  );

  // The run comes again, and its locks cannot be taken: everything of it goes but the torn file.
  const reader = new SqlSession(defer, `file:${b.path(db)}?mode=ro`);
  await reader.ok("BEGIN");
  await reader.ok("SELECT count(*) FROM t");
  await assert.rejects(b.applyFrom(a, db, { run: true, signal: AbortSignal.timeout(300) }));
  assert.deepEqual(ahead(), [tornName(tornTxid)], "the torn transaction's file is kept");
  await reader.ok("COMMIT");

  assert.ok((await b.applyFrom(a, db, { run: true })) >= 1);
  assert.equal(formatPos(target.pos), await a.pos(db));
  assert.deepEqual(ahead(), []);
  assert.deepEqual(await reader.ok("PRAGMA integrity_check"), [["ok"]]);
  await b.verifyChain(db, fs.mkdtempSync(path.join(root, "scratch-")));
});

// A replica killed between a run's page writes and the wal-index header it publishes after them
// (caught in CI: test/node/kill-wal-replica) left a `-shm` whose header counted fewer pages than the
// database file. At the next start, a reader that opened it while the node held its apply locks (DMS
// among them) was not the first connection, so SQLite kept that header: its first read failed with
// "database disk image is malformed". The kill is stood in for by an I/O error on the `-shm` write.
test("WAL: a -shm left stale by a run that stopped before publishing its header is gone at the next start", async (t) => {
  const db = "stale-shm.db";
  const { defer, root, a, b, target } = await replicaSixBehind(t, db, "WAL");
  const reader = new SqlSession(defer, `file:${b.path(db)}?mode=ro`);
  assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[0]]);
  await reader.stop();

  // One by one: the four small transactions publish their headers; the fifth grows the file by many
  // pages, and its header's write fails.
  await failingWrite(target.files, "shm", 5, () => assert.rejects(b.applyFrom(a, db), /EIO \(injected\)/));
  const fifth = formatPos(target.pos);
  const shm = parseShmHeader(fs.readFileSync(target.dir.file("shm")));
  const dbPages = fs.statSync(target.dir.file("database")).size / 4096;
  assert.ok(
    shm.usable && shm.header.nPage > 0 && shm.header.nPage < dbPages,
    `the -shm's header (published, ${shm.header.nPage} pages) counts fewer pages than the file (${dbPages})`,
  );
  await b.stop();

  const restarted = await TestMount.start(defer, root, "b", "replica", {
    kernelLocks: true,
    kernelNodeLocks: true,
  });
  assert.equal(await restarted.pos(db), fifth);
  // A reader opening while the node holds its WAL apply locks (as at the start of an apply).
  const release = await restarted.locks.replicaApply(db, true, AbortSignal.timeout(10_000));
  const fresh = new SqlSession(defer, `file:${restarted.path(db)}?mode=ro`);
  const answer = fresh.run("SELECT count(*), sum(length(v)) FROM t");
  await sleep(300);
  await release();
  assert.deepEqual(await answer, { ok: true, rows: [[100, 4 * 20 * 20 + 20 * 6000]] });
  assert.deepEqual(await fresh.ok("PRAGMA integrity_check"), [["ok"]]);
});
