// The node's locks in table mode (src/mountfs/node-locks.ts): entries in the mount's lock tables, with
// the WAL reader gate held while a take wants the read marks exclusively, and the router that keeps
// `-lock` spans in the table when the rest goes elsewhere.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LockTable } from "../../src/fuse/lock-table.js";
import type { MountFileKind } from "../../src/mountfs/node-table.js";
import {
  NodeLockError,
  type NodeLocks,
  type NodeLockSpan,
  routeLockFileToTable,
  tableNodeLocks,
} from "../../src/mountfs/node-locks.js";

const span = (kind: MountFileKind, start: number, end: number, type: "read" | "write"): NodeLockSpan => ({
  kind,
  start: BigInt(start),
  end: BigInt(end),
  type,
});

function tables(): {
  tableOf: (db: string, kind: MountFileKind) => LockTable;
  gates: Map<string, number>;
  hold: (db: string) => () => void;
} {
  const all = new Map<string, LockTable>();
  const gates = new Map<string, number>();
  return {
    tableOf: (db, kind) => {
      const key = `${db}/${kind}`;
      let t = all.get(key);
      if (t === undefined) all.set(key, (t = new LockTable()));
      return t;
    },
    gates,
    hold: (db) => {
      gates.set(db, (gates.get(db) ?? 0) + 1);
      return () => gates.set(db, gates.get(db)! - 1);
    },
  };
}

const never = new AbortController().signal;
const WAIT = { wait: true, signal: never } as const;
const NOWAIT = { wait: false, signal: never } as const;

test("take holds every span under the owner, drop and releaseOwner let go", async () => {
  const t = tables();
  const locks = tableNodeLocks(t.tableOf);
  assert.equal(locks.mode, "table");
  assert.equal(locks.helperPid, null);
  await locks.take("a.db", -10n, [span("database", 100, 100, "write"), span("shm", 120, 121, "write")], WAIT);
  assert.deepEqual(
    t
      .tableOf("a.db", "database")
      .locksOf(-10n)
      .map((l) => [l.start, l.end, l.type]),
    [[100n, 100n, "write"]],
  );
  assert.equal(t.tableOf("a.db", "shm").locksOf(-10n).length, 1);
  await locks.drop("a.db", -10n, [span("shm", 121, 121, "write")]);
  assert.deepEqual(
    t
      .tableOf("a.db", "shm")
      .locksOf(-10n)
      .map((l) => [l.start, l.end]),
    [[120n, 120n]],
  );
  await locks.releaseOwner("a.db", -10n);
  assert.ok(t.tableOf("a.db", "database").isEmpty);
  assert.ok(t.tableOf("a.db", "shm").isEmpty);
});

test("wait=false: a conflict is ELOCKBUSY at once and nothing of the take stays held", async () => {
  const t = tables();
  const locks = tableNodeLocks(t.tableOf);
  t.tableOf("a.db", "shm").set(7n, 1, 121n, 121n, "read"); // a local connection
  await assert.rejects(
    locks.take("a.db", -10n, [span("database", 5, 5, "write"), span("shm", 120, 121, "write")], NOWAIT),
    (err: unknown) => err instanceof NodeLockError && err.code === "ELOCKBUSY",
  );
  assert.equal(t.tableOf("a.db", "database").lockCount, 0);
  assert.deepEqual(
    t
      .tableOf("a.db", "shm")
      .holders()
      .map((l) => l.owner),
    [7n],
  );
});

test("a waiting take completes when the holder lets go; an aborted one rejects ELOCKINTR holding nothing", async () => {
  const t = tables();
  const locks = tableNodeLocks(t.tableOf);
  const db = t.tableOf("a.db", "database");
  db.set(7n, 1, 10n, 10n, "read");
  let done = false;
  const waiting = locks.take(
    "a.db",
    -10n,
    [span("database", 9, 9, "write"), span("database", 10, 10, "write")],
    WAIT,
  );
  void waiting.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(done, false);
  assert.equal(db.locksOf(-10n).length, 1, "the first span is held while the second waits");
  db.releaseOwner(7n);
  await waiting;
  assert.equal(db.locksOf(-10n).length, 1); // 9..10 merged
  await locks.releaseOwner("a.db", -10n);

  db.set(7n, 1, 10n, 10n, "read");
  const ac = new AbortController();
  const reason = new Error("give up");
  const aborted = locks.take(
    "a.db",
    -11n,
    [span("database", 9, 9, "write"), span("database", 10, 10, "write")],
    { wait: true, signal: ac.signal },
  );
  setTimeout(() => ac.abort(reason), 20);
  await assert.rejects(aborted, (err: unknown) => {
    assert.ok(err instanceof NodeLockError && err.code === "ELOCKINTR");
    assert.equal(err.cause, reason);
    return true;
  });
  assert.equal(db.locksOf(-11n).length, 0);
  assert.ok(db.set(8n, 1, 9n, 9n, "write"), "another owner can lock what the aborted take had taken");
});

test("a take that wants the read marks exclusively holds WAL readers back until they are dropped", async () => {
  const t = tables();
  const locks = tableNodeLocks(t.tableOf, t.hold);
  // A writer's span (WRITE, CKPT) does not close the gate.
  await locks.take("a.db", -10n, [span("shm", 120, 121, "write")], WAIT);
  assert.equal(t.gates.get("a.db") ?? 0, 0);
  // The apply spans do, from before the wait until they are gone.
  t.tableOf("a.db", "shm").set(7n, 1, 124n, 124n, "read");
  const apply = locks.take(
    "a.db",
    -11n,
    [span("shm", 128, 128, "read"), span("shm", 122, 127, "write")],
    WAIT,
  );
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(t.gates.get("a.db"), 1, "gated while waiting");
  t.tableOf("a.db", "shm").releaseOwner(7n);
  await apply;
  assert.equal(t.gates.get("a.db"), 1, "gated while held");
  await locks.drop("a.db", -11n, [span("shm", 122, 127, "write")]);
  assert.equal(t.gates.get("a.db"), 0, "open once the read marks are dropped");
  // A failed take opens it too.
  t.tableOf("a.db", "shm").set(7n, 1, 125n, 125n, "read");
  await assert.rejects(locks.take("a.db", -12n, [span("shm", 123, 127, "write")], NOWAIT));
  assert.equal(t.gates.get("a.db"), 0);
  await locks.releaseOwner("a.db", -10n);
  await locks.releaseOwner("a.db", -11n);
});

test("routeLockFileToTable keeps -lock spans in the table and undoes both sides on failure", async () => {
  const t = tables();
  const table = tableNodeLocks(t.tableOf);
  const inner = tables();
  const innerTable = tableNodeLocks(inner.tableOf);
  // A stand-in for kernel locks: records spans in its own tables.
  const kernel: NodeLocks = { ...innerTable, mode: "kernel", helperPid: 4242 };
  const routed = routeLockFileToTable(kernel, table);
  assert.equal(routed.helperPid, 4242);
  assert.equal(routeLockFileToTable(table, table), table);
  await routed.take("a.db", -10n, [span("lock", 72, 72, "write"), span("database", 5, 5, "write")], WAIT);
  assert.equal(t.tableOf("a.db", "lock").locksOf(-10n).length, 1);
  assert.equal(t.tableOf("a.db", "database").lockCount, 0);
  assert.equal(inner.tableOf("a.db", "database").locksOf(-10n).length, 1);
  inner.tableOf("a.db", "shm").set(7n, 1, 120n, 120n, "write");
  await assert.rejects(
    routed.take("a.db", -11n, [span("lock", 73, 73, "write"), span("shm", 120, 120, "write")], NOWAIT),
    (err: unknown) => err instanceof NodeLockError && err.code === "ELOCKBUSY",
  );
  assert.equal(t.tableOf("a.db", "lock").locksOf(-11n).length, 0, "the -lock span was dropped again");
  await routed.releaseOwner("a.db", -10n);
  assert.equal(t.tableOf("a.db", "lock").lockCount, 0);
  assert.equal(inner.tableOf("a.db", "database").lockCount, 0);
});
