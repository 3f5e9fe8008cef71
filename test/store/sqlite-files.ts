// Helpers for the SQLite file-format tests: run the sqlite3 shell on files, let SQLite itself checkpoint
// a copy of a database + WAL (the oracle for WAL scanning), rebuild a database image from scanned WAL
// commits (the thing under test), and random write workloads for better-sqlite3 connections.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import Database from "better-sqlite3";
import { walPagesAfter, WAL_FRAME_HEADER_SIZE, type WalCommit } from "../../src/store/wal-format.js";
import { SQLITE3_CLI } from "../support/paths.js";
import type { Prng } from "../support/prng.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

/** Runs the sqlite3 shell on `dbPath` with `sql` on stdin; returns stdout, throws with stderr on failure. */
export function runSqliteCli(dbPath: string, sql: string): string {
  const result = spawnSync(SQLITE3_CLI, ["-bail", "-batch", dbPath], {
    input: sql,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (result.status !== 0 || result.stderr !== "") {
    throw new Error(
      `sqlite3 ${dbPath} failed (status ${result.status}): ${result.stderr}\nsql: ${sql.slice(0, 500)}`,
    );
  }
  return result.stdout;
}

/**
 * The database image SQLite produces from `db` + `wal`: both are written to a fresh directory, the
 * shell opens them (running WAL recovery, which decides which frames are valid) and checkpoints with
 * TRUNCATE; the resulting database file is returned.
 */
export function sqliteCheckpointImage(db: Uint8Array, wal: Uint8Array | undefined): Uint8Array {
  const dir = makeTempDir("store-ckpt");
  try {
    const file = path.join(dir, "db");
    fs.writeFileSync(file, db);
    if (wal !== undefined) fs.writeFileSync(file + "-wal", wal);
    runSqliteCli(file, "PRAGMA wal_checkpoint(TRUNCATE);\n");
    return new Uint8Array(fs.readFileSync(file));
  } finally {
    removeTempDir(dir);
  }
}

/**
 * Our reconstruction: the database file `base`, resized to the last commit's page count, with the last
 * version (within `commits`) of every page up to that count copied in from `wal`. This is what a
 * checkpoint of exactly those commits must produce.
 */
export function imageFromWal(
  base: Uint8Array,
  wal: Uint8Array,
  pageSize: number,
  commits: readonly WalCommit[],
): Uint8Array {
  if (commits.length === 0) return base;
  const pageCount = commits[commits.length - 1].dbPageCount;
  const out = new Uint8Array(pageCount * pageSize);
  out.set(base.subarray(0, Math.min(base.length, out.length)));
  for (const [pgno, offset] of walPagesAfter(commits)) {
    const page = wal.subarray(offset + WAL_FRAME_HEADER_SIZE, offset + WAL_FRAME_HEADER_SIZE + pageSize);
    out.set(page, (pgno - 1) * pageSize);
  }
  return out;
}

/** First differing byte of two arrays, or -1 when equal (lengths included); for short failure messages. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

export function readFile(file: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(file));
}

/**
 * One random write transaction on table t(id INTEGER PRIMARY KEY, v BLOB): inserts of blobs up to
 * `maxBlob` bytes (some spilling to overflow pages), updates and deletes. Always changes something (it
 * starts with an insert), so it always commits exactly one WAL transaction.
 */
export function randomTransaction(db: Database.Database, prng: Prng, maxBlob: number): void {
  const insert = db.prepare("INSERT INTO t(v) VALUES (?)");
  const update = db.prepare("UPDATE t SET v = ? WHERE id = ?");
  const del = db.prepare("DELETE FROM t WHERE id = ?");
  const maxId = (): number =>
    (db.prepare("SELECT coalesce(max(id), 0) AS m FROM t").get() as { m: number }).m;
  db.transaction(() => {
    const ops = prng.int(1, 8);
    for (let i = 0; i < ops; i++) {
      const blob = randomBytes(prng, prng.int(1, maxBlob));
      const choice = i === 0 ? 0 : prng.int(0, 9); // the first op inserts: never an empty transaction
      if (choice < 6) insert.run(blob);
      else if (choice < 9) update.run(blob, prng.int(1, Math.max(1, maxId())));
      else del.run(prng.int(1, Math.max(1, maxId())));
    }
  })();
}

/** `n` pseudo-random bytes from `prng` (reproducible from the test's seed). */
export function randomBytes(prng: Prng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) {
    const word = prng.nextUint32();
    for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
  }
  return out;
}

/**
 * Opens (creating) a WAL-mode database at `file` with `pageSize`, automatic checkpoints off (so the
 * WAL keeps every frame until a checkpoint is asked for) and table t(id INTEGER PRIMARY KEY, v BLOB).
 */
export function openWalDatabase(file: string, pageSize: number): Database.Database {
  const db = new Database(file);
  db.pragma(`page_size = ${pageSize}`);
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (mode !== "wal") throw new Error(`openWalDatabase: journal_mode is ${String(mode)}, not wal`);
  db.pragma("wal_autocheckpoint = 0");
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  return db;
}

// POSIX record locks belong to a process and an inode, and closing *any* descriptor of the file drops
// all of that process's locks on it. A test that holds SQLite connections in this process and opens
// and closes the same files with node:fs therefore silently drops SQLite's locks (DMS on -shm, SHARED
// on the database), and another process can then reset the wal-index under the connections. Tests
// whose correctness depends on those locks do their file I/O in child processes with these helpers.

/** The first `length` bytes (all when undefined) of `file`, read by another process. */
export function readFileOutOfProcess(file: string, length?: number): Uint8Array {
  const args = length === undefined ? [file] : ["-c", String(length), file];
  const result = spawnSync(length === undefined ? "cat" : "head", args, {
    maxBuffer: 1 << 30,
    timeout: 30_000,
  });
  if (result.status !== 0) throw new Error(`reading ${file} failed: ${String(result.stderr)}`);
  return new Uint8Array(result.stdout);
}

/** Writes `bytes` at offset 0 of `file` from another process; then truncates to `truncateTo` if given. */
export function writeFileOutOfProcess(file: string, bytes: Uint8Array, truncateTo?: number): void {
  const dd = spawnSync("dd", [`of=${file}`, "conv=notrunc", "iflag=fullblock", "bs=65536", "status=none"], {
    input: bytes,
    timeout: 30_000,
  });
  if (dd.status !== 0) throw new Error(`writing ${file} failed: ${String(dd.stderr)}`);
  if (truncateTo !== undefined) {
    const t = spawnSync("truncate", ["-s", String(truncateTo), file], { timeout: 30_000 });
    if (t.status !== 0) throw new Error(`truncating ${file} failed: ${String(t.stderr)}`);
  }
}

/** Copies `from` to `to` in another process. */
export function copyFileOutOfProcess(from: string, to: string): void {
  const cp = spawnSync("cp", [from, to], { timeout: 30_000 });
  if (cp.status !== 0) throw new Error(`cp ${from} ${to} failed: ${String(cp.stderr)}`);
}
