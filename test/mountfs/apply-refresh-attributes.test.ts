// A replica apply that changes the database file's size has the kernel fetch the new attributes while
// the apply's locks are still held (replica-applier.ts step 4, kernel-node-locks.ts
// `refreshAttributes`). Without it the kernel fetched them at the first stat after the unlock — the
// lock helper's own, racing the readers' — and a reader could take the old size for valid next to the
// new page 1: SQLite's "database disk image is malformed" (README "Reliability"). That race needs many
// runs to show; what these tests check is the order that closes it: a GETATTR of the database, answered
// with the new size, while the applier's kernel locks are held — and none needed after it.
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import { test } from "node:test";

import type { RequestContext } from "../../src/fuse/file-system.js";
import { HaltDatabaseWriter } from "../../src/node/halt-database-writer.js";
import { makeTempDir } from "../support/temp-dir.js";
import {
  cleanupStack,
  removeUnmountedTempDir,
  rows,
  shell,
  SqlSession,
  TestMount,
} from "./role-change-kit.js";

/**
 * Records every GETATTR `mount` answers for `db`'s database file — or LOOKUP of its name, which carries
 * the attributes too (the kernel looks the name up again once its entry timeout, 1 s, has passed: a
 * loaded machine) — with the size answered and whether the node's kernel locks on `db` were held then.
 */
function attributeAnswers(mount: TestMount, db: string, nodeId: number): { size: number; locked: boolean }[] {
  const answered: { size: number; locked: boolean }[] = [];
  const held = () => mount.kernelNodeLocks!.heldSnapshot().some((h) => h.db === db && h.spans.length > 0);
  const getattr = mount.fileSystem.getattr.bind(mount.fileSystem);
  mount.fileSystem.getattr = (ctx: RequestContext, id: number) => {
    const reply = getattr(ctx, id);
    if (id === nodeId) answered.push({ size: reply.attr.size, locked: held() });
    return reply;
  };
  const lookup = mount.fileSystem.lookup.bind(mount.fileSystem);
  mount.fileSystem.lookup = (ctx: RequestContext, parent: number, name: string) => {
    const entry = lookup(ctx, parent, name);
    if (entry?.nodeId === nodeId) answered.push({ size: entry.attr.size, locked: held() });
    return entry;
  };
  return answered;
}

for (const mode of ["DELETE", "WAL"] as const) {
  test(`${mode}: an apply that grows the database refreshes the kernel's size before it lets go`, async (t) => {
    const defer = cleanupStack(t);
    const root = makeTempDir("apply-attributes");
    defer(() => removeUnmountedTempDir(root));
    const a = await TestMount.start(defer, root, "a", "primary");
    const b = await TestMount.start(defer, root, "b", "replica", {
      kernelLocks: true,
      kernelNodeLocks: true,
    });
    const db = `grow-${mode.toLowerCase()}.db`;
    await shell(a.path(db), mode, ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]);
    assert.ok((await b.applyFrom(a, db)) >= 1);
    const sizeBefore = (await fsp.stat(b.path(db))).size; // the kernel holds b's attributes now
    const nodeId = b.fileSystem.inodeOf(db, "database");
    assert.ok(nodeId !== undefined);

    const answered = attributeAnswers(b, db, nodeId);

    await shell(a.path(db), mode, [`INSERT INTO t (v) SELECT hex(randomblob(3000)) FROM ${rows(40)}`]);
    assert.equal(await b.applyFrom(a, db), 1);
    const sizeAfter = b.store.mustDb(db).files.size("database");
    assert.ok(sizeAfter > sizeBefore, `the transaction grew the file (${sizeBefore} → ${sizeAfter})`);
    assert.ok(
      answered.some((g) => g.locked && g.size === sizeAfter),
      `no GETATTR or LOOKUP answered with the new size under the apply's locks: ${JSON.stringify(answered)}`,
    );

    // The kernel holds the new size as valid: a stat through the mount needs no GETATTR (nor LOOKUP).
    const count = answered.length;
    assert.equal((await fsp.stat(b.path(db))).size, sizeAfter);
    assert.equal(answered.length, count, "a stat after the apply still asked the node");
  });
}

test("an apply that leaves the size as it was asks the kernel for nothing more", async (t) => {
  const defer = cleanupStack(t);
  const root = makeTempDir("apply-attributes-same");
  defer(() => removeUnmountedTempDir(root));
  const a = await TestMount.start(defer, root, "a", "primary");
  const b = await TestMount.start(defer, root, "b", "replica", { kernelLocks: true, kernelNodeLocks: true });
  const db = "same.db";
  await shell(a.path(db), "DELETE", [
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
    "INSERT INTO t (v) VALUES ('a')",
  ]);
  await b.applyFrom(a, db);
  const nodeId = b.fileSystem.inodeOf(db, "database");
  let locked = 0;
  const getattr = b.fileSystem.getattr.bind(b.fileSystem);
  b.fileSystem.getattr = (ctx: RequestContext, id: number) => {
    if (id === nodeId && b.kernelNodeLocks!.heldSnapshot().some((h) => h.db === db && h.spans.length > 0))
      locked++;
    return getattr(ctx, id);
  };
  const sizeBefore = b.store.mustDb(db).files.size("database");
  await shell(a.path(db), "DELETE", ["UPDATE t SET v = 'b'"]);
  assert.equal(await b.applyFrom(a, db), 1);
  assert.equal(b.store.mustDb(db).files.size("database"), sizeBefore);
  assert.equal(locked, 0, "a GETATTR under the apply's locks although the size did not change");
});

// The HALT lock's WAL fold (halt-database-writer.ts, used by both HALT sides) changes the database file
// behind SQLite's back under the same kind of locks: folding WAL frames into the file grows it.
test("a HALT fold that grows the database refreshes the kernel's size before the locks go", async (t) => {
  const defer = cleanupStack(t);
  const root = makeTempDir("halt-fold-attributes");
  defer(() => removeUnmountedTempDir(root));
  const a = await TestMount.start(defer, root, "a", "primary", { kernelLocks: true, kernelNodeLocks: true });
  const db = "fold.db";
  // Kept open: its commits stay in the WAL (no checkpoint at close).
  const writerSession = new SqlSession(defer, a.path(db));
  await writerSession.ok("PRAGMA journal_mode=WAL");
  await writerSession.ok("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  await writerSession.ok(`INSERT INTO t (v) SELECT hex(randomblob(3000)) FROM ${rows(40)}`);
  const database = a.store.mustDb(db);
  const sizeBefore = (await fsp.stat(a.path(db))).size; // the kernel holds a's attributes now
  assert.equal(sizeBefore, database.files.size("database"));
  const nodeId = a.fileSystem.inodeOf(db, "database");
  assert.ok(nodeId !== undefined);

  const answered = attributeAnswers(a, db, nodeId);

  const writer = new HaltDatabaseWriter({
    fileSystem: a.fileSystem,
    session: a.session,
    refreshAttributes: (name) => a.locks.refreshAttributes(name),
  });
  const release = await a.locks.replicaApply(db, true, AbortSignal.timeout(10_000));
  try {
    assert.ok(writer.foldWal(database), "the WAL held frames to fold");
    await writer.publish(database, sizeBefore);
  } finally {
    await release();
  }
  const sizeAfter = database.files.size("database");
  assert.ok(sizeAfter > sizeBefore, `the fold grew the file (${sizeBefore} → ${sizeAfter})`);
  assert.ok(
    answered.some((g) => g.locked && g.size === sizeAfter),
    `no GETATTR or LOOKUP answered with the new size under the fold's locks: ${JSON.stringify(answered)}`,
  );
  assert.deepEqual(await writerSession.ok("SELECT count(*) FROM t"), [[40]]);
  assert.deepEqual(await writerSession.ok("PRAGMA integrity_check"), [["ok"]]);
});
