// The role-change test kit (role-change.test.ts; kernel-locks.test.ts runs cases in kernel-locks
// mode): in-process mounts of a Store whose role and commit gate the test flips, driven by real SQLite
// clients in child processes (Python's sqlite3 for a transaction held open across the flip, the sqlite3
// shell for everything else), and the refused-commit case.

import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import type { TestContext } from "node:test";

import { FuseSession } from "../../src/fuse/session.js";
import { DatabaseLockGuard } from "../../src/mountfs/database-lock-guard.js";
import { KernelNodeLocks } from "../../src/mountfs/kernel-node-locks.js";
import { LitefsFileSystem } from "../../src/mountfs/litefs-file-system.js";
import type { NodeRole } from "../../src/mountfs/replica-access.js";
import { ReplicaApplier } from "../../src/node/replica-applier.js";
import { LtxStager } from "../../src/store/ltx-stager.js";
import { SILENT_LOGGER, type StoreLogger } from "../../src/store/store-logger.js";
import { Store } from "../../src/store/store.js";
import { listLtxFiles, readLtxHeader } from "../support/ltx-chain.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { PYTHON3 } from "../support/paths.js";
import { runSqlJob } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

/**
 * Cleanups run last-registered first, all of them even when one fails: clients are killed before the
 * mounts are unmounted, and the mounts before their temporary directory is removed.
 */
export function cleanupStack(t: TestContext): (fn: () => unknown) => void {
  const stack: (() => unknown)[] = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const fn of stack.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (fn) => stack.push(fn);
}

/** ROLE_CHANGE_LOG=1 prints the mounts' log lines (to see why a case failed). */
const TEST_LOG: StoreLogger =
  process.env.ROLE_CHANGE_LOG === "1"
    ? {
        debug: () => undefined,
        info: (msg, fields) => console.error("info", msg, fields ?? {}),
        warn: (msg, fields) => console.error("warn", msg, fields ?? {}),
        error: (msg, fields) => console.error("error", msg, fields ?? {}),
      }
    : SILENT_LOGGER;

export const JOURNAL_MODES = ["DELETE", "TRUNCATE", "PERSIST", "WAL"] as const;
export type JournalMode = (typeof JOURNAL_MODES)[number];

/** One node's mount: a store, its file system, the session, and the switches the test flips. */
export class TestMount {
  role: NodeRole;
  mayCommit = true;
  /** What `.primary` names on a replica (null: no primary known). */
  primaryHostname: string | null = null;
  readonly store: Store;
  readonly fileSystem: LitefsFileSystem;
  readonly session: FuseSession;
  readonly dir: string;
  readonly applier: ReplicaApplier;
  /** The node's own locks (what the applier takes: `replicaApply`, …). */
  readonly locks: DatabaseLockGuard;
  /** The node's own locks as kernel locks held by the helper (start's `kernelNodeLocks`), else null. */
  readonly kernelNodeLocks: KernelNodeLocks | null;
  #stopped = false;

  private constructor(
    dir: string,
    role: NodeRole,
    store: Store,
    fileSystem: LitefsFileSystem,
    session: FuseSession,
    kernelNodeLocks: KernelNodeLocks | null,
  ) {
    this.dir = dir;
    this.role = role;
    this.store = store;
    this.fileSystem = fileSystem;
    this.session = session;
    this.kernelNodeLocks = kernelNodeLocks;
    const locks = (this.locks = new DatabaseLockGuard({
      lockTableOf: (db, kind) => fileSystem.lockTableOf(db, kind),
      holdWalReaders: (db) => fileSystem.locks.holdWalReaders(db),
      ...(kernelNodeLocks === null ? {} : { nodeLocks: kernelNodeLocks }),
    }));
    this.applier = new ReplicaApplier({ fileSystem, session, locks, log: SILENT_LOGGER });
  }

  /**
   * `kernelLocks`: the kernel keeps every fcntl lock (config fuse.kernel-locks); `kernelNodeLocks`
   * (with it): the applier's locks are kernel locks held by the lock helper, as on a node.
   */
  static async start(
    defer: (fn: () => unknown) => void,
    root: string,
    name: string,
    role: NodeRole,
    opts: { kernelLocks?: boolean; kernelNodeLocks?: boolean } = {},
  ): Promise<TestMount> {
    const dir = path.join(root, name);
    fs.mkdirSync(path.join(dir, "mnt"), { recursive: true });
    const store = Store.open({ dataDir: path.join(dir, "data"), noSync: true, log: TEST_LOG });
    const self: { mount: TestMount | null } = { mount: null };
    const fileSystem = new LitefsFileSystem({
      store,
      log: TEST_LOG,
      noSync: true,
      role: () => self.mount?.role ?? role,
      mayCommit: () => self.mount?.mayCommit ?? true,
      primaryHostname: () => self.mount?.primaryHostname ?? null,
      kernelLocks: opts.kernelLocks === true,
      lockHelperPid: () => self.mount?.kernelNodeLocks?.helperPid ?? null,
    });
    let session: FuseSession;
    try {
      session = await FuseSession.mount(fileSystem, {
        mountpoint: path.join(dir, "mnt"),
        fsName: "litefs-test",
        posixLocks: !fileSystem.kernelLocks,
        entryTimeoutMs: 1000,
        attrTimeoutMs: 1000,
        negativeTimeoutMs: 1000,
      });
    } catch (err) {
      store.close();
      throw err;
    }
    fileSystem.attachSession(session);
    let nodeLocks: KernelNodeLocks | null = null;
    try {
      if (opts.kernelNodeLocks === true) {
        nodeLocks = await KernelNodeLocks.start({
          mountDir: path.join(dir, "mnt"),
          log: SILENT_LOGGER,
          inodeOf: (db, kind) => fileSystem.inodeOf(db, kind),
        });
      }
    } catch (err) {
      await session.unmount();
      store.close();
      throw err;
    }
    const mount = new TestMount(dir, role, store, fileSystem, session, nodeLocks);
    self.mount = mount;
    defer(() => mount.stop());
    return mount;
  }

  /** Closes the applier and the lock helper, unmounts, closes the store (once; also run at cleanup). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.applier.close();
    await this.kernelNodeLocks?.close();
    await this.session.unmount();
    this.store.close();
  }

  path(db: string): string {
    return path.join(this.dir, "mnt", db);
  }

  // Everything this process reads through its own mount is asynchronous (the thread pool makes the
  // system call): a synchronous call would block the very thread that must answer it.
  async pos(db: string): Promise<string> {
    return (await fsp.readFile(this.path(db) + "-pos", "utf8")).trim();
  }

  async mode(db: string): Promise<number> {
    return (await fsp.stat(this.path(db))).mode & 0o777;
  }

  ltxFiles(db: string): string[] {
    return listLtxFiles(this.store.mustDb(db).dir.ltxDir).map((f) => f.path);
  }

  async setRole(role: NodeRole): Promise<void> {
    this.role = role;
    await this.fileSystem.roleChanged(role);
  }

  /**
   * Applies `from`'s LTX files after this node's position through the replica applier (as a replica
   * does): one by one; with `run` as one queued run (each but the last applied with `more`, as a stream
   * read bringing them all would); with `queueOnly` all of them with `more` (left queued: the caller
   * flushes). `signal` goes to every `apply`.
   */
  async applyFrom(
    from: TestMount,
    db: string,
    opts: { run?: boolean; queueOnly?: boolean; signal?: AbortSignal } = {},
  ): Promise<number> {
    const target = this.store.replicaDatabase(db);
    const files = from.ltxFiles(db).filter((file) => readLtxHeader(file).maxTxid > target.pos.txid);
    for (const [i, file] of files.entries()) {
      const header = readLtxHeader(file);
      const stager = new LtxStager(target.dir, db, { minTxid: header.minTxid, maxTxid: header.maxTxid });
      stager.push(fs.readFileSync(file));
      const plan = this.applier.plan(target, stager.finish());
      const more = opts.queueOnly === true || (opts.run === true && i < files.length - 1);
      await this.applier.apply(target, plan, opts.signal ?? AbortSignal.timeout(20_000), { more });
    }
    return files.length;
  }

  /** The LTX chain replays to the database byte for byte (checked on copies taken out of the mount). */
  async verifyChain(db: string, scratch: string): Promise<void> {
    const copy = path.join(scratch, db);
    await fsp.copyFile(this.path(db), copy);
    await fsp.copyFile(this.path(db) + "-pos", copy + "-pos");
    await verifyLtxChainMatchesDatabase({
      dbFile: copy,
      posFile: copy + "-pos",
      ltxDir: this.store.mustDb(db).dir.ltxDir,
      scratchDir: scratch,
    });
  }
}

const PYTHON_SESSION = `
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], uri=True, isolation_level=None, timeout=10)
for line in sys.stdin:
    try:
        rows = [list(r) for r in con.execute(json.loads(line)).fetchall()]
        out = {"ok": True, "rows": rows}
    except sqlite3.Error as e:
        out = {"ok": False, "error": str(e), "code": getattr(e, "sqlite_errorname", None)}
    print(json.dumps(out), flush=True)
`;

type SessionAnswer =
  { ok: true; rows: (number | string | null)[][] } | { ok: false; error: string; code: string | null };

/** One Python sqlite3 connection kept open in a child process, statement by statement. */
export class SqlSession {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  constructor(defer: (fn: () => unknown) => void, uri: string) {
    this.#child = spawn(PYTHON3, ["-c", PYTHON_SESSION, uri], { stdio: ["pipe", "pipe", "pipe"] });
    this.#lines = readline.createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
    defer(() => this.close());
  }

  /** The pid of the connection's process (the owner of its POSIX locks). */
  get pid(): number {
    return this.#child.pid ?? 0;
  }

  async run(sql: string): Promise<SessionAnswer> {
    this.#child.stdin.write(JSON.stringify(sql) + "\n");
    const next = await Promise.race([
      this.#lines.next(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no answer to ${sql} within 30 s`)), 30_000).unref(),
      ),
    ]);
    if (next.done === true) throw new Error(`python session ended before answering ${sql}`);
    return JSON.parse(next.value) as SessionAnswer;
  }

  async ok(sql: string): Promise<(number | string | null)[][]> {
    const answer = await this.run(sql);
    if (!answer.ok) throw new Error(`${sql}: ${answer.error} (${answer.code})`);
    return answer.rows;
  }

  close(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
  }

  /** Kills the connection's process and waits until it has exited (its files and locks are gone). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.close();
    await exited;
  }
}

/**
 * Removes a test's directory once nothing is mounted under it any more. Checked on the mount table
 * only: removeTempDir would stat a mount point still served by this very process and block forever.
 */
export function removeUnmountedTempDir(root: string): void {
  const mounted = fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${root}/`);
  if (mounted) throw new Error(`${root} still has a mount of this process under it: not removed`);
  removeTempDir(root);
}

/** A subquery of `n` rows (column i = 1..n) that every SQLite build has (no generate_series). */
export function rows(n: number): string {
  return `(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${n}) SELECT i FROM s)`;
}

export async function shell(dbPath: string, mode: JournalMode, scripts: string[], queries: string[] = []) {
  return runSqlJob("sqlite3", { dbPath, pragmas: [`PRAGMA journal_mode=${mode}`], scripts, queries });
}

/** What a fresh read-only connection (as on a replica) sees: integrity and the row count. */
export async function readOnlyView(dbPath: string): Promise<{ integrity: string; rows: number }> {
  const answers = await runSqlJob("sqlite3", {
    dbPath: `file:${dbPath}?mode=ro`,
    queries: ["PRAGMA integrity_check", "SELECT count(*) AS n FROM t"],
  });
  return { integrity: String(answers.results[0][0].integrity_check), rows: Number(answers.results[1][0].n) };
}

export function txidOf(posText: string): bigint {
  return BigInt("0x" + posText.split("/")[0]);
}

/**
 * A write transaction open while the commit gate closes (`mayCommit` false, or a demotion): its commit
 * fails for the client ("disk I/O error"), captures nothing, leaves the database at its last committed
 * state with no hot journal, and the next allowed commit continues the chain (TXID+1) which still
 * replays to the database byte for byte.
 */
export async function refusedCommitCase(
  t: TestContext,
  mode: JournalMode,
  flip: "mayCommit" | "demote",
  opts: { kernelLocks?: boolean } = {},
): Promise<void> {
  const defer = cleanupStack(t);
  const root = makeTempDir("role-change");
  defer(() => removeUnmountedTempDir(root));
  const node = await TestMount.start(defer, root, "n", "primary", opts);
  const db = `${mode.toLowerCase()}-${flip}.db`;
  const file = node.path(db);
  await shell(file, mode, [
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
    `INSERT INTO t (v) SELECT hex(randomblob(300)) FROM ${rows(40)}`,
  ]);
  const posBefore = await node.pos(db);
  const ltxBefore = node.ltxFiles(db).length;

  // A read-only connection (what an app opened while its node was a replica) stays open across it.
  const reader = new SqlSession(defer, `file:${file}?mode=ro`);
  assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[40]]);
  const client = new SqlSession(defer, `file:${file}`);
  await client.ok(`PRAGMA journal_mode=${mode}`);
  await client.ok("BEGIN");
  await client.ok(`INSERT INTO t (v) SELECT hex(randomblob(2000)) FROM ${rows(30)}`);
  await client.ok("UPDATE t SET v = 'changed' WHERE id <= 10");
  if (flip === "mayCommit") node.mayCommit = false;
  else await node.setRole("replica");
  const commit = await client.run("COMMIT");
  assert.equal(commit.ok, false, `${mode}: COMMIT must fail when the node may not commit`);
  assert.match(commit.error, /disk I\/O error/, `${mode}: ${commit.error}`);
  t.diagnostic(`${mode} ${flip}: the client saw "${commit.error}" (${commit.code})`);

  // The refused transaction's journal is gone from the view at once (DELETE: the client asked for it
  // to go), so no connection can take it for a hot journal — a read-only one would fail READONLY.
  if (mode === "DELETE") {
    // (the cached name is dropped right after the answer: until then it names the emptied orphan)
    const deadline = Date.now() + 2000;
    while (
      await fsp.stat(file + "-journal").then(
        () => Date.now() < deadline,
        () => false,
      )
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await assert.rejects(fsp.stat(file + "-journal"), { code: "ENOENT" }, "the refused journal is gone");
  }
  assert.deepEqual(await reader.ok("SELECT count(*), sum(v = 'changed') FROM t"), [[40, 0]]);
  assert.equal(node.ltxFiles(db).length, ltxBefore, "no LTX file for a refused commit");
  assert.equal(await node.pos(db), posBefore, "position unchanged");
  // The same connection goes on and sees the last committed state.
  await client.run("ROLLBACK"); // no transaction left open: "cannot rollback" is fine
  assert.deepEqual(await client.ok("SELECT count(*), sum(v = 'changed') FROM t"), [[40, 0]]);
  assert.deepEqual(await client.ok("PRAGMA integrity_check"), [["ok"]]);
  // A fresh read-only connection (what a replica's readers have) finds no hot journal.
  assert.deepEqual(await readOnlyView(file), { integrity: "ok", rows: 40 });
  if (mode !== "WAL") {
    const journal = await fsp.readFile(file + "-journal").catch(() => Buffer.alloc(0));
    assert.ok(
      journal.subarray(0, 28).every((b) => b === 0),
      `${mode}: the journal left behind is not hot`,
    );
  }

  // Allowed again (the gate reopens, or the node is promoted back): the chain continues at TXID + 1.
  if (flip === "mayCommit") node.mayCommit = true;
  else await node.setRole("primary");
  await client.ok("INSERT INTO t (v) VALUES ('after')");
  client.close();
  assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[41]]);
  reader.close();
  const files = node.ltxFiles(db);
  assert.equal(files.length, ltxBefore + 1);
  const header = readLtxHeader(files.at(-1)!);
  assert.equal(header.minTxid, txidOf(posBefore) + 1n);
  assert.equal(header.preApplyChecksum, posBefore.split("/")[1]);
  assert.deepEqual(await readOnlyView(file), { integrity: "ok", rows: 41 });
  if (mode === "WAL") await shell(file, mode, ["PRAGMA wal_checkpoint(TRUNCATE)"]);
  const scratch = path.join(root, "scratch");
  fs.mkdirSync(scratch);
  await node.verifyChain(db, scratch);
}
