// The node's locks as kernel locks (src/mountfs/kernel-node-locks.ts) against real SQLite connections
// in other processes, through a real FUSE mount that leaves locks to the kernel (the passthrough
// example with --kernel-locks: the LiteFS mount in that mode is tested in kernel-locks.test.ts).
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";

import { LockTable } from "../../src/fuse/lock-table.js";
import { DatabaseLockGuard } from "../../src/mountfs/database-lock-guard.js";
import { KernelNodeLocks } from "../../src/mountfs/kernel-node-locks.js";
import { NodeLockError, type NodeLockSpan } from "../../src/mountfs/node-locks.js";
import { SILENT_LOGGER } from "../../src/store/store-logger.js";
import { MountProcess } from "../support/mount-process.js";
import { NODE_PASSTHROUGH } from "../support/passthrough.js";
import { REPO_ROOT } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

const PENDING = 0x40000000;
const span = (
  kind: "database" | "shm",
  start: number,
  end: number,
  type: "read" | "write",
): NodeLockSpan => ({
  kind,
  start: BigInt(start),
  end: BigInt(end),
  type,
});
/** What a rollback-mode writer holds to change the file: PENDING, RESERVED, the whole SHARED range. */
const APPLY_ROLLBACK = [
  span("database", PENDING, PENDING, "write"),
  span("database", PENDING + 1, PENDING + 1, "write"),
  span("database", PENDING + 2, PENDING + 511, "write"),
];
const never = new AbortController().signal;

let dir: string;
let mnt: string;
let mount: MountProcess;
let locks: KernelNodeLocks;
let guard: DatabaseLockGuard;
const children = new Set<ChildProcessWithoutNullStreams>();

before(async () => {
  dir = makeTempDir("kernel-node-locks");
  const src = path.join(dir, "src");
  mnt = path.join(dir, "mnt");
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  mount = await MountProcess.start({
    label: "passthrough --kernel-locks",
    command: process.execPath,
    args: [NODE_PASSTHROUGH, "--kernel-locks", src, mnt],
    mountDir: mnt,
    ready: "mounted",
  });
  locks = await KernelNodeLocks.start({ mountDir: mnt, log: SILENT_LOGGER });
  const tables = new Map<string, LockTable>();
  guard = new DatabaseLockGuard({
    lockTableOf: (db, kind) => {
      let t = tables.get(`${db}/${kind}`);
      if (t === undefined) tables.set(`${db}/${kind}`, (t = new LockTable()));
      return t;
    },
    nodeLocks: locks,
  });
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await locks?.close();
  await mount?.cleanup();
  if (dir !== undefined) removeTempDir(dir);
});

/** A SQLite connection in a Python child (busy timeout 0): one statement per call, answered in order. */
class Connection {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiter: (() => void) | null = null;

  constructor(dbPath: string) {
    const script = [
      "import sqlite3, sys",
      "con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)",
      "for line in sys.stdin:",
      "    try:",
      "        rows = con.execute(line).fetchall()",
      "        print('ok ' + repr(rows), flush=True)",
      "    except Exception as e:",
      "        print('error ' + str(e), flush=True)",
    ].join("\n");
    this.#child = spawn("python3", ["-c", script, dbPath], { stdio: ["pipe", "pipe", "pipe"] });
    children.add(this.#child);
    let partial = "";
    this.#child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      partial += chunk;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      this.#lines.push(...lines);
      this.#waiter?.();
    });
  }

  /** Runs one statement; resolves with "ok …" or "error …". */
  async run(sql: string): Promise<string> {
    this.#child.stdin.write(sql.replace(/\n/g, " ") + "\n");
    while (this.#lines.length === 0) await new Promise<void>((r) => (this.#waiter = r));
    this.#waiter = null;
    return this.#lines.shift()!;
  }

  async close(): Promise<void> {
    this.#child.stdin.end();
    if (this.#child.exitCode === null) await new Promise((r) => this.#child.once("exit", r));
    children.delete(this.#child);
  }
}

async function makeDb(name: string, journalMode: "wal" | "delete"): Promise<string> {
  const file = path.join(mnt, name);
  const c = new Connection(file);
  assert.match(await c.run(`PRAGMA journal_mode=${journalMode}`), /^ok/);
  assert.match(await c.run("CREATE TABLE t(x)"), /^ok/);
  assert.match(await c.run("INSERT INTO t VALUES (1), (2), (3)"), /^ok/);
  await c.close();
  return file;
}

/** A read transaction kept open. */
async function openReader(file: string): Promise<Connection> {
  const c = new Connection(file);
  assert.match(await c.run("BEGIN"), /^ok/);
  assert.equal(await c.run("SELECT count(*) FROM t"), "ok [(3,)]");
  return c;
}

async function notSettledWithin<T>(p: Promise<T>, ms: number): Promise<void> {
  const marker = Symbol("pending");
  const first = await Promise.race([p, new Promise((r) => setTimeout(() => r(marker), ms))]);
  assert.equal(first, marker, "settled too early");
}

for (const mode of ["wal", "delete"] as const) {
  test(`${mode}: an apply waits for a reader's transaction, then keeps new readers out until released`, async () => {
    const name = `apply-${mode}.db`;
    const file = await makeDb(name, mode);
    const reader = await openReader(file);
    const applying = guard.replicaApply(name, mode === "wal", never);
    await notSettledWithin(applying, 300);
    if (mode === "delete") {
      // PENDING is caught while the SHARED range is still busy (the three spans go in one request,
      // each kept once caught): a new reader cannot start, so a stream of them cannot starve the apply.
      const early = new Connection(file);
      try {
        assert.match(await early.run("SELECT count(*) FROM t"), /^error database is locked/);
      } finally {
        await early.close();
      }
    }
    assert.match(await reader.run("COMMIT"), /^ok/);
    const release = await applying;
    const late = new Connection(file);
    try {
      if (mode === "delete") {
        // Rollback mode: PENDING and the SHARED range are held, a reader's SHARED fails at once.
        assert.match(await late.run("SELECT count(*) FROM t"), /^error database is locked/);
      } else {
        // WAL mode: every read mark is held; SQLite retries a read mark by itself, so the reader waits.
        const read = late.run("SELECT count(*) FROM t");
        await notSettledWithin(read, 300);
        await release();
        assert.equal(await read, "ok [(3,)]");
      }
      await release();
      assert.equal(await eventually(late, "SELECT count(*) FROM t"), "ok [(3,)]");
      assert.match(await late.run("INSERT INTO t VALUES (4)"), /^ok/);
      assert.match(await late.run("DELETE FROM t WHERE x = 4"), /^ok/);
    } finally {
      await late.close();
      await reader.close();
    }
  });
}

test("wait=false: a conflict fails ELOCKBUSY at once; an aborted wait rejects and leaves nothing held", async () => {
  const name = "busy.db";
  const file = await makeDb(name, "delete");
  const reader = await openReader(file);
  try {
    await assert.rejects(
      locks.take(name, -100n, APPLY_ROLLBACK, { wait: false, signal: never }),
      (err: unknown) => err instanceof NodeLockError && err.code === "ELOCKBUSY",
    );
    const ac = new AbortController();
    const reason = new Error("stop waiting");
    const waiting = locks.take(name, -101n, APPLY_ROLLBACK, { wait: true, signal: ac.signal });
    setTimeout(() => ac.abort(reason), 200);
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof NodeLockError && err.code === "ELOCKINTR", String(err));
      assert.equal(err.cause, reason);
      return true;
    });
    assert.match(await reader.run("COMMIT"), /^ok/);
    // PENDING and RESERVED were taken before the wait: nothing of them may be left.
    const writer = new Connection(file);
    try {
      assert.match(await writer.run("INSERT INTO t VALUES (5)"), /^ok/);
      assert.match(await writer.run("DELETE FROM t WHERE x = 5"), /^ok/);
    } finally {
      await writer.close();
    }
  } finally {
    await reader.close();
  }
});

test("wal: the export barrier stops writers, a snapshot read stops checkpoints, an import waits for every connection", async () => {
  const name = "guard.db";
  const file = await makeDb(name, "wal");
  const keeper = new Connection(file); // a connection that stays open: -shm exists, SHARED is held
  assert.equal(await keeper.run("SELECT count(*) FROM t"), "ok [(3,)]");
  try {
    const barrier = await guard.writeBarrier(name, 5000);
    assert.equal(await keeper.run("SELECT count(*) FROM t"), "ok [(3,)]", "readers go on");
    assert.match(await keeper.run("INSERT INTO t VALUES (7)"), /^error database is locked/);
    await barrier();
    assert.match(await eventually(keeper, "INSERT INTO t VALUES (7)"), /^ok/);

    const snapshot = await guard.snapshotRead(name, 5000);
    assert.match(await keeper.run("DELETE FROM t WHERE x = 7"), /^ok/, "WAL writers go on");
    assert.match(await keeper.run("PRAGMA wal_checkpoint(PASSIVE)"), /^ok \[\(1, /, "the checkpoint is busy");
    await snapshot();
    const deadline = Date.now() + 2000;
    let checkpoint = "";
    while (Date.now() < deadline && !/^ok \[\(0, /.test(checkpoint)) {
      checkpoint = await keeper.run("PRAGMA wal_checkpoint(PASSIVE)");
    }
    assert.match(checkpoint, /^ok \[\(0, /);

    await assert.rejects(guard.exclusive(name, 300), { code: "ELOCKTIMEOUT" });
    const importing = guard.exclusive(name, 10_000);
    await notSettledWithin(importing, 200);
    await keeper.close(); // its SHARED lock on the database goes with the connection
    const release = await importing;
    const late = new Connection(file);
    assert.match(await late.run("SELECT count(*) FROM t"), /^error database is locked/);
    await release();
    assert.equal(await eventually(late, "SELECT count(*) FROM t"), "ok [(3,)]");
    await late.close();
  } finally {
    await keeper.close();
  }
});

// Twice: the helper stats the path itself, or is told the inode there now (as the node tells it; here
// the test asks the mount, which answers the same for an existing file).
for (const told of [false, true]) {
  test(`a descriptor the helper kept is not reused once the file at its path was replaced (inode ${told ? "told" : "looked up"})`, async () => {
    const own = told
      ? await KernelNodeLocks.start({
          mountDir: mnt,
          log: SILENT_LOGGER,
          inodeOf: (db, kind) => {
            const at = path.join(mnt, db + (kind === "shm" ? "-shm" : ""));
            return fs.existsSync(at) ? fs.statSync(at).ino : undefined;
          },
        })
      : locks;
    const ownGuard = told
      ? new DatabaseLockGuard({ lockTableOf: () => new LockTable(), nodeLocks: own })
      : guard;
    const name = `renewed-${told}.db`;
    const file = await makeDb(name, "wal");
    const first = new Connection(file);
    try {
      assert.equal(await first.run("SELECT count(*) FROM t"), "ok [(3,)]");
      await (
        await ownGuard.replicaApply(name, true, never)
      )(); // the helper keeps this -shm descriptor
      await new Promise((r) => setTimeout(r, 100));
      const inodeBefore = fs.statSync(`${file}-shm`).ino;
      await first.close(); // the last connection removes -wal and -shm
      assert.equal(fs.existsSync(`${file}-shm`), false);
      const reader = await openReader(file); // a new -shm, and a read mark in it
      try {
        assert.notEqual(fs.statSync(`${file}-shm`).ino, inodeBefore);
        const applying = ownGuard.replicaApply(name, true, never);
        await notSettledWithin(applying, 300); // on the old file it would have been granted at once
        assert.match(await reader.run("COMMIT"), /^ok/);
        await (
          await applying
        )();
      } finally {
        await reader.close();
      }
    } finally {
      await first.close();
      if (own !== locks) await own.close();
    }
  });
}

test("wal without -shm: the apply takes the database stand-in, which keeps new connections out", async () => {
  const name = "noshm.db";
  const file = await makeDb(name, "wal");
  assert.equal(fs.existsSync(`${file}-shm`), false, "the last connection removed -shm");
  const release = await guard.replicaApply(name, true, never);
  const late = new Connection(file);
  try {
    assert.match(await late.run("SELECT count(*) FROM t"), /^error database is locked/);
    assert.equal(fs.existsSync(`${file}-shm`), false, "the node created nothing");
    await release();
    assert.equal(await eventually(late, "SELECT count(*) FROM t"), "ok [(3,)]");
  } finally {
    await late.close();
  }
});

test("starvation: readers running back-to-back WAL transactions do not keep the apply out", async () => {
  const name = "busy-readers.db";
  const file = await makeDb(name, "wal");
  const script = [
    "import sqlite3, sys, time",
    "con = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)",
    "end = time.time() + 30",
    "print('reading', flush=True)",
    "while time.time() < end:",
    "    con.execute('BEGIN'); con.execute('SELECT count(*) FROM t').fetchall(); con.execute('COMMIT')",
  ].join("\n");
  const readers = Array.from({ length: 4 }, () => {
    const child = spawn("python3", ["-c", script, file], { stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    return child;
  });
  try {
    await Promise.all(readers.map((r) => new Promise((resolve) => r.stdout.once("data", resolve))));
    const release = await guard.replicaApply(name, true, AbortSignal.timeout(20_000));
    await release();
  } finally {
    for (const r of readers) {
      r.kill("SIGKILL");
      children.delete(r);
    }
  }
});

test("a drop of an owner's other locks while its take waits does not lose that take's descriptor", async () => {
  // The HALT case: the hold (RESERVED) is dropped while a transaction of the holder waits for its
  // apply locks under the same owner. The drop used to close the owner's descriptor under the waiting
  // take and forget the owner: the take then failed, or kept its locks on a descriptor no one closed.
  const name = "drop-during-take.db";
  const file = await makeDb(name, "delete");
  const holder = -300n;
  const blocker = -301n;
  const reserved = span("database", PENDING + 1, PENDING + 1, "write");
  const apply = [
    span("database", PENDING, PENDING, "write"),
    span("database", PENDING + 2, PENDING + 511, "write"),
  ];
  await locks.take(name, holder, [reserved], { wait: false, signal: never });
  await locks.take(name, blocker, [apply[0]], { wait: false, signal: never });
  const applying = locks.take(name, holder, apply, { wait: true, signal: AbortSignal.timeout(20_000) });
  await notSettledWithin(applying, 200); // polling for PENDING, which the blocker holds
  const dropped = locks.drop(name, holder, [reserved]);
  await locks.releaseOwner(name, blocker);
  await applying;
  await dropped;
  const reader = new Connection(file);
  try {
    assert.match(await reader.run("SELECT count(*) FROM t"), /^error database is locked/, "the apply holds");
    await locks.drop(name, holder, apply);
    assert.deepEqual(locks.heldSnapshot(), [], "the helper holds nothing for any owner");
    assert.equal(await reader.run("SELECT count(*) FROM t"), "ok [(3,)]");
    assert.match(await reader.run("INSERT INTO t VALUES (9)"), /^ok/);
  } finally {
    await reader.close();
  }
});

test("the helper dies when its parent is SIGKILLed", async () => {
  const url = pathToFileURL(path.join(REPO_ROOT, "dist", "src", "mountfs", "kernel-node-locks.js")).href;
  const program = [
    `const { KernelNodeLocks } = await import(${JSON.stringify(url)});`,
    `const locks = await KernelNodeLocks.start({ mountDir: ${JSON.stringify(mnt)}, log: console });`,
    `await locks.take("parent.db", -1n, [{ kind: "database", start: 1073741825n, end: 1073741825n, type: "write" }], { wait: false, signal: new AbortController().signal });`,
    "console.log(locks.helperPid);",
    "setInterval(() => undefined, 1000);",
  ].join("\n");
  await makeDb("parent.db", "delete");
  const parent = spawn(process.execPath, ["--input-type=module", "-e", program], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  parent.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const pid = Number(
      await new Promise<string>((resolve, reject) => {
        parent.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
        parent.once("exit", () => reject(new Error(`parent exited: ${stderr}`)));
      }),
    );
    assert.ok(pid > 0 && alive(pid));
    // The node's RESERVED lock is a real kernel lock: a writer here cannot commit.
    const writer = new Connection(path.join(mnt, "parent.db"));
    assert.match(await writer.run("INSERT INTO t VALUES (6)"), /^error database is locked/);
    parent.kill("SIGKILL");
    const deadline = Date.now() + 2000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(pid), false, "the helper outlived its parent by 2 s");
    assert.match(await writer.run("INSERT INTO t VALUES (6)"), /^ok/, "its locks went with it");
    await writer.close();
  } finally {
    parent.kill("SIGKILL");
  }
});

test("a dead helper fails pending and new requests with ELOCKHELPER", async () => {
  const own = await KernelNodeLocks.start({ mountDir: mnt, log: SILENT_LOGGER });
  const name = "dead.db";
  const file = await makeDb(name, "delete");
  const reader = await openReader(file);
  try {
    const waiting = own.take(name, -200n, APPLY_ROLLBACK, { wait: true, signal: never });
    await notSettledWithin(waiting, 100);
    process.kill(own.helperPid!, "SIGKILL");
    const isHelperError = (err: unknown): boolean =>
      err instanceof NodeLockError &&
      err.code === "ELOCKHELPER" &&
      /died \(signal SIGKILL\)/.test(err.message);
    await assert.rejects(waiting, isHelperError);
    await assert.rejects(
      own.take(name, -201n, [APPLY_ROLLBACK[1]], { wait: false, signal: never }),
      isHelperError,
    );
  } finally {
    await own.close();
    await reader.close();
  }
});

/**
 * Runs `sql` until it is not refused as locked (2 s at most): a release lets go when the helper has
 * closed the descriptors, a moment after it returns.
 */
async function eventually(c: Connection, sql: string): Promise<string> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const answer = await c.run(sql);
    if (!answer.startsWith("error database is locked") || Date.now() > deadline) return answer;
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("without perl the helper does not start: ELOCKHELPER names it", async () => {
  const saved = process.env.PATH;
  process.env.PATH = path.join(dir, "no-such-bin");
  try {
    await assert.rejects(
      KernelNodeLocks.start({ mountDir: mnt, log: SILENT_LOGGER }),
      (err: unknown) =>
        err instanceof NodeLockError && err.code === "ELOCKHELPER" && /perl/.test(err.message),
    );
  } finally {
    process.env.PATH = saved;
  }
});

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}
