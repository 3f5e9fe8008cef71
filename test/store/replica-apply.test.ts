// The replica's side of the store without a mount: LTX files a primary store wrote are staged in
// chunks of random sizes (ltx-stager.ts), checked against the replica's position (replica-apply-plan.ts)
// and applied (replica-apply.ts); refusals change nothing; a crash in the middle of an apply is rolled
// forward by recovery; quarantine keeps a diverged history's files (or its end state).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import { LtxEncoder } from "../../src/ltx/encoder.js";
import { decodeHeader } from "../../src/ltx/header.js";
import { LtxError } from "../../src/ltx/errors.js";
import type { Database } from "../../src/store/database.js";
import { recentHistoryLinks } from "../../src/store/history-links.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { discardStaged, LtxStager, type StagedLtx } from "../../src/store/ltx-stager.js";
import { quarantineHistory } from "../../src/store/quarantine.js";
import {
  planReplicaApply,
  stateAfterPlan,
  type ReplicaApplyPlan,
} from "../../src/store/replica-apply-plan.js";
import { SnapshotPageReader } from "../../src/store/snapshot-page-reader.js";
import type { Store } from "../../src/store/store.js";
import { Prng } from "../support/prng.js";
import { changedPages, openStore, tempDir } from "./store-test-kit.js";

const PAGE = 4096;

/** Commits SQL run on a plain database through a primary store as rollback-journal transactions. */
class PrimaryWriter {
  readonly sqlite: BetterSqlite3.Database;
  image: Buffer = Buffer.alloc(0);

  constructor(file: string) {
    this.sqlite = new BetterSqlite3(file);
    this.sqlite.pragma(`page_size = ${PAGE}`);
  }

  commit(db: Database, sql: string): void {
    this.sqlite.exec(sql);
    const prev = this.image;
    this.image = this.sqlite.serialize();
    db.create("journal");
    db.write("journal", 0, Buffer.alloc(512, 1)); // a journal exists: the writes are a transaction
    for (const [offset, bytes] of changedPages(prev, this.image, PAGE)) db.write("database", offset, bytes);
    if (this.image.length < prev.length) db.truncate("database", this.image.length);
    db.unlink("journal");
  }
}

interface Setup {
  primary: Store;
  replica: Store;
  writer: PrimaryWriter;
  data: string;
}

function setup(t: { after(fn: () => void): void }, label: string): Setup {
  const dir = tempDir(t, label);
  const primary = openStore(path.join(dir, "primary"));
  const data = path.join(dir, "replica");
  const replica = openStore(data);
  const writer = new PrimaryWriter(path.join(dir, "plain.db"));
  t.after(() => {
    writer.sqlite.close();
    primary.close();
    replica.close();
  });
  const db = primary.createDatabase("r.db");
  writer.commit(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (let i = 0; i < 6; i++) writer.commit(db, `INSERT INTO t (v) VALUES (randomblob(${500 + i * 2500}))`);
  writer.commit(db, "DELETE FROM t WHERE id % 2 = 0"); // frees pages
  writer.commit(db, "VACUUM"); // shrinks
  return { primary, replica, writer, data };
}

/** Stages `bytes` (one LTX file) for database `name` on `store`, in chunks of random sizes. */
function stage(store: Store, name: string, bytes: Uint8Array, prng: Prng): StagedLtx {
  const header = decodeHeader(bytes.subarray(0, 100));
  const db = store.replicaDatabase(name);
  const stager = new LtxStager(db.dir, name, { minTxid: header.minTxid, maxTxid: header.maxTxid });
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, prng.int(1, 9000));
    stager.push(bytes.subarray(at, at + n));
    at += n;
  }
  return stager.finish();
}

function primaryFiles(primary: Store): Buffer[] {
  return listLtxFiles(primary.mustDb("r.db").dir.ltxDir).map((f) => fs.readFileSync(f.path));
}

/** A snapshot LTX file of the primary's current database (TXIDs 1..position). */
function snapshotOf(primary: Store): Buffer {
  const view = primary.mustDb("r.db").snapshotView();
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((c) => chunks.push(c));
  encoder.writeHeader({
    flags: 0,
    pageSize: view.pageSize,
    commit: view.pageCount,
    minTxid: 1n,
    maxTxid: view.pos.txid,
    timestamp: 1,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: primary.nodeId,
  });
  const reader = new SnapshotPageReader(view);
  for (let pgno = 1; pgno <= view.pageCount; pgno++) encoder.writePage(pgno, reader.readPage(pgno));
  reader.close();
  encoder.finish(view.pos.checksum);
  return Buffer.concat(chunks);
}

/** The chain `db` keeps in memory (after its first use) is the one its files tell. */
function assertRecentHistoryOnDisk(db: Database, note: string): void {
  assert.deepEqual(db.recentHistory(256), recentHistoryLinks(db.dir.ltxDir, db.pos.txid, 256), note);
}

function apply(store: Store, staged: StagedLtx): void {
  const db = store.mustDb(staged.db);
  const plan = planReplicaApply(db.name, db.replicaState, staged);
  db.syncApplied(db.applyStaged(plan, db.persistStaged(plan)));
}

test("files applied one by one, or a snapshot, give the primary's database and position", (t) => {
  const { primary, replica, data } = setup(t, "replica-apply");
  const prng = new Prng(1);
  const files = primaryFiles(primary);
  for (const [i, bytes] of files.entries()) {
    apply(replica, stage(replica, "r.db", bytes, prng));
    assertRecentHistoryOnDisk(replica.mustDb("r.db"), `after file ${i + 1}`);
  }
  const source = primary.mustDb("r.db");
  const target = replica.mustDb("r.db");
  assert.deepEqual(target.pos, source.pos);
  assert.equal(target.recentHistory(3).length, 3, "the newest links only");
  assert.deepEqual(target.recentHistory(3), source.recentHistory(3), "the replica's chain is the primary's");
  assert.ok(
    fs.readFileSync(target.files.path("database")).equals(fs.readFileSync(source.files.path("database"))),
  );
  assert.equal(listLtxFiles(target.dir.ltxDir).length, files.length, "every LTX file is kept");
  assert.deepEqual(
    fs.readdirSync(target.dir.ltxDir).filter((f) => f.endsWith(".tmp")),
    [],
    "no temporary file left",
  );
  replica.close();
  const reopened = openStore(data);
  t.after(() => reopened.close());
  assert.deepEqual(reopened.mustDb("r.db").pos, source.pos, "recovery agrees");

  // A snapshot replaces everything: the database, and the LTX files it supersedes.
  const again = openStore(path.join(path.dirname(data), "again"));
  t.after(() => again.close());
  apply(again, stage(again, "r.db", files[0], prng));
  assertRecentHistoryOnDisk(again.mustDb("r.db"), "before the snapshot");
  apply(again, stage(again, "r.db", snapshotOf(primary), prng));
  assert.deepEqual(again.mustDb("r.db").pos, source.pos);
  assertRecentHistoryOnDisk(again.mustDb("r.db"), "after the snapshot (it superseded file 1)");
  assert.equal(again.mustDb("r.db").recentHistory(256).length, 1);

  // A snapshot that ends one TXID past the replica's position is still a snapshot (TXIDs 1..n).
  const behind = openStore(path.join(path.dirname(data), "behind"));
  t.after(() => behind.close());
  for (const bytes of files.slice(0, -1)) apply(behind, stage(behind, "r.db", bytes, prng));
  assertRecentHistoryOnDisk(behind.mustDb("r.db"), "one behind");
  apply(behind, stage(behind, "r.db", snapshotOf(primary), prng));
  assert.deepEqual(behind.mustDb("r.db").pos, source.pos);
  assertRecentHistoryOnDisk(behind.mustDb("r.db"), "after a snapshot one TXID ahead");
  assert.deepEqual(
    behind
      .mustDb("r.db")
      .recentHistory(256)
      .map((l) => [l.minTxid, l.preApplyChecksum]),
    [[1n, 0n]],
  );
  assert.ok(
    fs
      .readFileSync(again.mustDb("r.db").files.path("database"))
      .equals(fs.readFileSync(source.files.path("database"))),
  );
  assert.equal(listLtxFiles(again.mustDb("r.db").dir.ltxDir).length, 1, "only the snapshot remains");
});

test("a snapshot, or a database's first transaction, is the whole chain: known without the files", (t) => {
  const { primary, writer, data } = setup(t, "replica-chain-known");
  const prng = new Prng(5);
  const linkTuples = (db: Database): unknown[] =>
    db.recentHistory(256).map((l) => [l.minTxid, l.maxTxid, l.preApplyChecksum, l.postApplyChecksum]);
  /** What `db` reports with its LTX files moved aside (the files alone would tell no chain). */
  const reportedWithoutFiles = (db: Database): unknown[] => {
    const files = listLtxFiles(db.dir.ltxDir);
    for (const f of files) fs.renameSync(f.path, `${f.path}.aside`);
    try {
      assert.deepEqual(recentHistoryLinks(db.dir.ltxDir, db.pos.txid, 256), [], "the files tell nothing");
      return linkTuples(db);
    } finally {
      for (const f of files) fs.renameSync(`${f.path}.aside`, f.path);
    }
  };

  // A replica that joins by snapshot (a store just opened: no chain known before).
  const joined = openStore(path.join(path.dirname(data), "joined"));
  t.after(() => joined.close());
  apply(joined, stage(joined, "r.db", snapshotOf(primary), prng));
  const db = joined.mustDb("r.db");
  assert.deepEqual(reportedWithoutFiles(db), [[1n, db.pos.txid, 0n, db.pos.checksum]]);
  // The next file extends it, as the files on disk tell.
  writer.commit(primary.mustDb("r.db"), "INSERT INTO t (v) VALUES (randomblob(100))");
  apply(joined, stage(joined, "r.db", primaryFiles(primary).at(-1)!, prng));
  assert.equal(db.recentHistory(256).length, 2);
  assertRecentHistoryOnDisk(db, "snapshot, then one file");

  // A database's first transaction on a primary.
  const fresh = primary.createDatabase("n.db");
  const own = new PrimaryWriter(path.join(path.dirname(data), "plain-n.db"));
  t.after(() => own.sqlite.close());
  own.commit(fresh, "CREATE TABLE u (x)");
  assert.equal(fresh.pos.txid, 1n);
  assert.deepEqual(reportedWithoutFiles(fresh), [[1n, 1n, 0n, fresh.pos.checksum]]);
});

test("a file that does not continue the position, or lies about its checksum, changes nothing", (t) => {
  const { primary, replica } = setup(t, "replica-refuse");
  const prng = new Prng(2);
  const files = primaryFiles(primary);
  apply(replica, stage(replica, "r.db", files[0], prng));
  apply(replica, stage(replica, "r.db", files[1], prng));
  const db = replica.mustDb("r.db");
  const before = {
    pos: db.pos,
    bytes: fs.readFileSync(db.files.path("database")),
    ltx: fs.readdirSync(db.dir.ltxDir),
  };
  const unchanged = (why: string): void => {
    assert.deepEqual(db.pos, before.pos, why);
    assert.ok(fs.readFileSync(db.files.path("database")).equals(before.bytes), why);
  };

  // Skips a TXID.
  const skip = stage(replica, "r.db", files[3], prng);
  assert.throws(() => planReplicaApply(db.name, db.replicaState, skip), { code: "EAPPLY" });
  fs.rmSync(skip.tempPath, { force: true }); // held in memory: not written yet
  unchanged("skipped TXID");

  // The right TXID, but a post-apply checksum its pages do not give (a well-formed file).
  const decoded = decodeHeader(files[2].subarray(0, 100));
  const liar: Uint8Array[] = [];
  const encoder = new LtxEncoder((c) => liar.push(c));
  encoder.writeHeader({ ...decoded, flags: 0 });
  encoder.writePage(1, Buffer.alloc(PAGE, 7));
  encoder.finish(0x8000_0000_dead_beefn);
  const lie = stage(replica, "r.db", Buffer.concat(liar), prng);
  assert.throws(() => planReplicaApply(db.name, db.replicaState, lie), /does not belong to this history/);
  fs.rmSync(lie.tempPath, { force: true });
  unchanged("lying post-apply checksum");

  // A flipped byte: the stager refuses it and removes its temporary file.
  const flipped = Buffer.from(files[2]);
  flipped[flipped.length - 40] ^= 1;
  assert.throws(() => stage(replica, "r.db", flipped, prng), LtxError);
  assert.deepEqual(fs.readdirSync(db.dir.ltxDir), before.ltx, "nothing left in ltx/");

  // A header that is not the file the stream announced. The parser hands out the header once format
  // detection is settled (for a v3 file smaller than resolveBytes, at its end).
  const stager = new LtxStager(db.dir, "r.db", { minTxid: 9n, maxTxid: 9n });
  assert.throws(
    () => {
      stager.push(files[2]);
      stager.finish();
    },
    { code: "EAPPLY" },
  );
  unchanged("announced another file");
  apply(replica, stage(replica, "r.db", files[2], prng));
  assert.equal(db.pos.txid, 3n, "the right file still applies afterwards");
});

test("a replica crashing in the middle of an apply is rolled forward at restart", (t) => {
  const { primary, replica, data } = setup(t, "replica-crash");
  const prng = new Prng(3);
  const files = primaryFiles(primary);
  for (const bytes of files.slice(0, 4)) apply(replica, stage(replica, "r.db", bytes, prng));
  const staged = stage(replica, "r.db", files[4], prng);
  const db = replica.mustDb("r.db");
  // The LTX in place (persistStaged), half of its pages written (applyStaged, cut short), then the crash.
  const plan = planReplicaApply(db.name, db.replicaState, staged);
  db.persistStaged(plan);
  assert.ok(staged.pages !== null && staged.pages.length >= 2);
  const half = Math.ceil(staged.pages.length / 2);
  for (let i = 0; i < half; i++) {
    db.files.write("database", (staged.pgnos[i] - 1) * PAGE, staged.pages[i]);
  }
  const reopened = openStore(data); // the crashed store is simply abandoned
  t.after(() => reopened.close());
  const expected = new Map(listLtxFiles(primary.mustDb("r.db").dir.ltxDir).map((f) => [f.maxTxid, f]));
  assert.equal(reopened.mustDb("r.db").pos.txid, 5n);
  assert.equal(reopened.recoveryReport("r.db")?.rolledForward, true);
  assert.ok(expected.has(5n));
});

/** Plans `staged` (in order) as one run: each against the state the ones before it will leave. */
function planRun(db: Database, staged: readonly StagedLtx[]): ReplicaApplyPlan[] {
  let state = db.replicaState;
  return staged.map((file) => {
    const plan = planReplicaApply(db.name, state, file);
    state = stateAfterPlan(state, plan);
    return plan;
  });
}

test("a run planned ahead, its LTX files persisted together, gives the primary's database", async (t) => {
  const { primary, replica, data } = setup(t, "replica-run");
  const prng = new Prng(5);
  const files = primaryFiles(primary);
  apply(replica, stage(replica, "r.db", files[0], prng));
  const db = replica.mustDb("r.db");
  // TXIDs 2..9: inserts that grow the database, a delete, a VACUUM that shrinks it.
  const plans = planRun(
    db,
    files.slice(1).map((bytes) => stage(replica, "r.db", bytes, prng)),
  );
  assert.equal(db.pos.txid, 1n, "planning moves nothing");
  await db.persistStagedBatch(plans);
  assert.deepEqual(
    listLtxFiles(db.dir.ltxDir).map((f) => f.maxTxid),
    files.map((_, i) => BigInt(i + 1)),
    "every file of the run in place before any page is written",
  );
  assert.equal(db.pos.txid, 1n);
  const applied = plans.map((plan) => db.applyStaged(plan, { supersededFiles: 0 }));
  db.syncApplied(applied[applied.length - 1]);
  const source = primary.mustDb("r.db");
  assert.deepEqual(db.pos, source.pos);
  assert.ok(
    fs.readFileSync(db.files.path("database")).equals(fs.readFileSync(source.files.path("database"))),
  );
  replica.close();
  const reopened = openStore(data);
  t.after(() => reopened.close());
  assert.deepEqual(reopened.mustDb("r.db").pos, source.pos, "recovery agrees");
  assert.equal(reopened.recoveryReport("r.db")?.rolledForward, false);
});

test("a small file waits in memory until it is persisted, a big one is staged on disk: both land whole", async (t) => {
  const { primary, replica, writer } = setup(t, "replica-held");
  const prng = new Prng(6);
  const source = primary.mustDb("r.db");
  // Two more transactions: a blob of 5 MB of random bytes (an LTX file over the 4 MiB held in
  // memory) and a small update after it.
  writer.commit(source, "INSERT INTO t (v) VALUES (randomblob(5000000))");
  writer.commit(source, "UPDATE t SET v = randomblob(100) WHERE id = 1");
  const files = primaryFiles(primary);
  const [big, small] = files.slice(-2);
  assert.ok(big.length > 4 << 20 && small.length < 1 << 20, `sizes ${big.length} and ${small.length}`);
  for (const bytes of files.slice(0, -2)) apply(replica, stage(replica, "r.db", bytes, prng));
  const db = replica.mustDb("r.db");
  const stagedBig = stage(replica, "r.db", big, prng);
  const stagedSmall = stage(replica, "r.db", small, prng);
  assert.equal(stagedBig.bytes, null, "the big file is on disk");
  assert.ok(fs.readFileSync(stagedBig.tempPath).equals(big), "its temporary file holds it whole");
  assert.ok(
    stagedSmall.bytes !== null && Buffer.from(stagedSmall.bytes).equals(small),
    "the small one in memory",
  );
  assert.equal(fs.existsSync(stagedSmall.tempPath), false, "and not written yet");
  const plans = planRun(db, [stagedBig, stagedSmall]);
  await db.persistStagedBatch(plans);
  for (const [staged, bytes] of [
    [stagedBig, big],
    [stagedSmall, small],
  ] as const) {
    assert.ok(fs.readFileSync(staged.finalPath).equals(bytes), `${path.basename(staged.finalPath)} whole`);
    assert.equal(fs.existsSync(staged.tempPath), false);
  }
  const applied = plans.map((plan) => db.applyStaged(plan, { supersededFiles: 0 }));
  db.syncApplied(applied[applied.length - 1]);
  assert.deepEqual(db.pos, source.pos);
  assert.ok(
    fs.readFileSync(db.files.path("database")).equals(fs.readFileSync(source.files.path("database"))),
  );
  // Written behind (the replica stream's way): the write starts at staging; the persist awaits it.
  writer.commit(source, "UPDATE t SET v = randomblob(200) WHERE id = 1");
  writer.commit(source, "UPDATE t SET v = randomblob(300) WHERE id = 1");
  const [behind, dropped] = primaryFiles(primary).slice(-2);
  const stageBehind = (bytes: Buffer): StagedLtx => {
    const { minTxid, maxTxid } = decodeHeader(bytes.subarray(0, 100));
    const stager = new LtxStager(db.dir, "r.db", { minTxid, maxTxid });
    stager.push(bytes);
    return stager.finish({ writeBehind: true });
  };
  const stagedBehind = stageBehind(behind);
  assert.ok(stagedBehind.written !== null, "the write started");
  await stagedBehind.written;
  assert.ok(fs.readFileSync(stagedBehind.tempPath).equals(behind), "the temporary file is whole");
  const [planBehind] = planRun(db, [stagedBehind]);
  await db.persistStagedBatch([planBehind]);
  db.syncApplied(db.applyStaged(planBehind, { supersededFiles: 0 }));
  assert.ok(fs.readFileSync(stagedBehind.finalPath).equals(behind));
  // A file discarded while its write is in flight leaves no temporary file once the write is done,
  // and its temporary name is not the next stager's for the same transaction.
  const stagedDropped = stageBehind(dropped);
  discardStaged(stagedDropped);
  await stagedDropped.written!.catch(() => undefined);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fs.existsSync(stagedDropped.tempPath), false, "removed after the write settled");
  const again = stageBehind(dropped);
  assert.notEqual(again.tempPath, stagedDropped.tempPath);
  await db.persistStagedBatch(planRun(db, [again]));
  assert.ok(fs.readFileSync(again.finalPath).equals(dropped));
  db.syncApplied(db.applyStaged(planRun(db, [again])[0], { supersededFiles: 0 }));
  assert.deepEqual(db.pos, source.pos);

  // One file alone goes the synchronous way (a snapshot's, a HALT transaction's): held, then written.
  writer.commit(source, "DELETE FROM t WHERE id = 1");
  const last = primaryFiles(primary).at(-1)!;
  const stagedLast = stage(replica, "r.db", last, prng);
  assert.ok(stagedLast.bytes !== null);
  apply(replica, stagedLast);
  assert.ok(fs.readFileSync(stagedLast.finalPath).equals(last));
  assert.deepEqual(db.pos, source.pos);
});

test("a replica crashing while it writes a run is rolled forward over the run at restart", async (t) => {
  // The run's LTX files are durable; the database file holds, page by page, any value the run wrote
  // there or the one before (what a power failure can leave of writes not yet fsynced), or nothing
  // of the run at all.
  for (const [seed, torn] of [
    [6, false],
    [7, true],
    [8, true],
    [9, true],
  ] as const) {
    const { primary, replica, data } = setup(t, `replica-run-crash-${seed}`);
    const prng = new Prng(seed);
    const files = primaryFiles(primary);
    for (const bytes of files.slice(0, 3)) apply(replica, stage(replica, "r.db", bytes, prng));
    const db = replica.mustDb("r.db");
    const staged = files.slice(3).map((bytes) => stage(replica, "r.db", bytes, prng));
    const plans = planRun(db, staged);
    await db.persistStagedBatch(plans);
    const written = new Map<number, Uint8Array[]>();
    for (const file of staged) {
      file.pgnos.forEach((pgno, i) => written.set(pgno, [...(written.get(pgno) ?? []), file.pages![i]]));
    }
    if (torn) {
      for (const [pgno, values] of written) {
        const pick = prng.int(0, values.length); // values.length: the page keeps its old value
        if (pick < values.length) db.files.write("database", (pgno - 1) * PAGE, values[pick]);
      }
    }
    const source = primary.mustDb("r.db");
    const reopened = openStore(data); // the crashed store is simply abandoned
    t.after(() => reopened.close());
    const again = reopened.mustDb("r.db");
    assert.deepEqual(again.pos, source.pos, `seed ${seed}`);
    assert.equal(reopened.recoveryReport("r.db")?.rolledForward, true, `seed ${seed}`);
    assert.ok(
      fs.readFileSync(again.files.path("database")).equals(fs.readFileSync(source.files.path("database"))),
      `seed ${seed}: the primary's database`,
    );
  }
});

test("quarantine moves the diverged files, or keeps the diverged state when files are missing", (t) => {
  const { primary, replica, data } = setup(t, "quarantine");
  const prng = new Prng(4);
  const files = primaryFiles(primary);
  for (const bytes of files) apply(replica, stage(replica, "r.db", bytes, prng));
  const db = replica.mustDb("r.db");
  assertRecentHistoryOnDisk(db, "before quarantine");
  // Listeners (the LTX metrics) hear of the move once the files are gone, and count what is left.
  const leftWhenTold: number[] = [];
  replica.onLtxFilesRewritten(() => leftWhenTold.push(listLtxFiles(db.dir.ltxDir).length));
  const root = path.join(data, "quarantine");
  const moved = quarantineHistory(db, root, {
    fromTxid: 6n,
    toTxid: db.pos.txid,
    verdict: "diverged",
    reason: "test",
    primary: "p",
    nowMs: Date.UTC(2025, 0, 2, 3, 4, 5),
    noSync: true,
  });
  assert.equal(moved.snapshotFile, null);
  assert.deepEqual(moved.files.length, files.length - 5);
  assert.ok(path.basename(moved.dir).startsWith("20250102T030405Z-0000000000000006-"));
  assert.deepEqual(fs.readdirSync(moved.dir).sort(), [...moved.files, "quarantine.json"].sort());
  assert.equal(listLtxFiles(db.dir.ltxDir).at(-1)?.maxTxid, 5n);
  assert.deepEqual(leftWhenTold, [5]);
  // The position did not move, the files did: the chain reported is the files' (1..5), not the one
  // the database remembered before.
  assert.equal(db.recentHistory(256).at(-1)?.maxTxid, 5n);
  assertRecentHistoryOnDisk(db, "after quarantine");

  // Files 1..5 remain; ask for 3..: file 3 is there but a gap (files 4, 5 removed) breaks coverage.
  for (const f of listLtxFiles(db.dir.ltxDir).filter((f) => f.minTxid >= 4n)) fs.rmSync(f.path);
  const kept = quarantineHistory(db, root, {
    fromTxid: 3n,
    toTxid: db.pos.txid,
    verdict: "unverifiable",
    reason: "test",
    primary: "p",
    nowMs: Date.UTC(2025, 0, 2, 3, 4, 6),
    noSync: true,
  });
  assert.ok(kept.snapshotFile !== null, "the diverged end state is kept as a snapshot");
  assert.ok(fs.existsSync(path.join(kept.dir, kept.snapshotFile)));
});
