// SQLite and plain file operations through the passthrough example, run as its own process: the
// sqlite3 shell and better-sqlite3 in every journal mode (WAL maps -shm with MAP_SHARED: through the
// page cache, and through a direct-I/O mount where only DIRECT_IO_ALLOW_MMAP makes it possible), two
// writers and a reader at once with a busy timeout, and the file operations SQLite and other
// programs rely on: offsets past 4 GiB, fsync, rename, readdir, statfs, truncate, fallocate, lseek.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { type Mount, mountPassthrough } from "./helpers/passthrough-mount.js";
import { type SqlClientName, runSqlJob } from "../support/sql-clients.js";

const MODES = ["DELETE", "TRUNCATE", "PERSIST", "WAL"] as const;
const CLIENTS: SqlClientName[] = ["sqlite3", "better-sqlite3"];

let base = "";
let src = "";
let mount: Mount | undefined;
let directSrc = "";
let directMount: Mount | undefined;

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "fuse-sqlite-"));
  src = path.join(base, "src");
  directSrc = path.join(base, "direct-src");
  for (const d of [src, directSrc, path.join(base, "mnt"), path.join(base, "direct-mnt")]) fs.mkdirSync(d);
  mount = await mountPassthrough(src, path.join(base, "mnt"));
  directMount = await mountPassthrough(directSrc, path.join(base, "direct-mnt"), ["--direct-io"]);
});

after(async () => {
  await mount?.unmount();
  await directMount?.unmount();
  fs.rmSync(base, { recursive: true, force: true });
});

/** Rows (i, payload) in `transactions` separate transactions of `rowsPerTx` rows each. */
function insertScripts(writer: number, transactions: number, rowsPerTx: number): string[] {
  return Array.from({ length: transactions }, (_, tx) => {
    const values = Array.from(
      { length: rowsPerTx },
      (_, r) => `(${writer}, ${tx * rowsPerTx + r}, randomblob(300))`,
    );
    return `BEGIN IMMEDIATE; INSERT INTO t(writer, i, payload) VALUES ${values.join(", ")}; COMMIT;`;
  });
}

const SCHEMA =
  "CREATE TABLE IF NOT EXISTS t(writer INTEGER, i INTEGER, payload BLOB, PRIMARY KEY (writer, i))";

describe("SQLite clients in every journal mode", () => {
  for (const mode of MODES) {
    for (const client of CLIENTS) {
      test(`${client}, journal_mode=${mode}`, async () => {
        const db = path.join(mount!.dir, `${client}-${mode}.db`);
        const result = await runSqlJob(client, {
          dbPath: db,
          pragmas: [`PRAGMA journal_mode=${mode}`],
          scripts: [
            SCHEMA,
            ...insertScripts(1, 20, 10),
            "UPDATE t SET i = i + 1000 WHERE i % 2 = 0",
            "DELETE FROM t WHERE i < 5",
          ],
          queries: [
            "PRAGMA integrity_check",
            "SELECT count(*) AS n, sum(i) AS s FROM t",
            "PRAGMA journal_mode",
          ],
        });
        const expected = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? i + 1000 : i)).filter(
          (i) => i >= 5,
        );
        assert.deepEqual(result.results[0], [{ integrity_check: "ok" }]);
        assert.deepEqual(result.results[1], [{ n: expected.length, s: expected.reduce((a, b) => a + b, 0) }]);
        assert.equal(Object.values(result.results[2][0])[0], mode.toLowerCase());
        // The bytes really are in the directory behind the mount.
        const direct = new Database(path.join(src, `${client}-${mode}.db`), {
          readonly: true,
          fileMustExist: true,
        });
        try {
          assert.equal(
            (direct.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n,
            expected.length,
          );
        } finally {
          direct.close();
        }
      });
    }
  }
});

describe("two writers and a reader at once, with a busy timeout", () => {
  for (const mode of ["WAL", "DELETE"] as const) {
    test(`journal_mode=${mode}: no lost or corrupt rows`, async () => {
      const db = path.join(mount!.dir, `concurrent-${mode}.db`);
      await runSqlJob("sqlite3", { dbPath: db, pragmas: [`PRAGMA journal_mode=${mode}`], scripts: [SCHEMA] });
      const pragmas = [`PRAGMA journal_mode=${mode}`];
      const writers = [1, 2].map((w, k) =>
        runSqlJob(CLIENTS[k], {
          dbPath: db,
          pragmas,
          scripts: insertScripts(w, 40, 5),
          busyTimeoutMs: 20_000,
        }),
      );
      const reader = runSqlJob("better-sqlite3", {
        dbPath: db,
        pragmas,
        queries: Array.from({ length: 30 }, () => "SELECT count(*) AS n FROM t"),
        busyTimeoutMs: 20_000,
      });
      await Promise.all(writers);
      const seen = (await reader).results.map((rows) => rows[0].n as number);
      for (let i = 1; i < seen.length; i++)
        assert.ok(seen[i] >= seen[i - 1], "committed rows never disappear");
      const check = await runSqlJob("sqlite3", {
        dbPath: db,
        queries: [
          "PRAGMA integrity_check",
          "SELECT writer, count(*) AS n, min(i) AS lo, max(i) AS hi FROM t GROUP BY writer ORDER BY writer",
        ],
      });
      assert.deepEqual(check.results[0], [{ integrity_check: "ok" }]);
      assert.deepEqual(check.results[1], [
        { writer: 1, n: 200, lo: 0, hi: 199 },
        { writer: 2, n: 200, lo: 0, hi: 199 },
      ]);
    });
  }
});

test("WAL through a direct-I/O mount: -shm is mmapped thanks to DIRECT_IO_ALLOW_MMAP", async () => {
  const db = path.join(directMount!.dir, "direct.db");
  const result = await runSqlJob("better-sqlite3", {
    dbPath: db,
    pragmas: ["PRAGMA journal_mode=WAL"],
    scripts: [SCHEMA, ...insertScripts(1, 10, 10)],
    queries: ["PRAGMA integrity_check", "SELECT count(*) AS n FROM t"],
  });
  assert.deepEqual(result.results, [[{ integrity_check: "ok" }], [{ n: 100 }]]);
});

describe("file operations", () => {
  const GiB = 2 ** 30;
  const p = (name: string): string => path.join(mount!.dir, name);

  test("writes and reads past 4 GiB; sparse size; truncate down and up", () => {
    const fd = fs.openSync(p("big"), "w+");
    try {
      const data = Buffer.from("past four gibibytes");
      assert.equal(fs.writeSync(fd, data, 0, data.length, 5 * GiB + 3), data.length);
      fs.fsyncSync(fd);
      fs.fdatasyncSync(fd);
      const back = Buffer.alloc(data.length);
      assert.equal(fs.readSync(fd, back, 0, back.length, 5 * GiB + 3), data.length);
      assert.deepEqual(back, data);
      assert.equal(fs.fstatSync(fd).size, 5 * GiB + 3 + data.length);
      fs.ftruncateSync(fd, 4 * GiB + 1);
      assert.equal(fs.fstatSync(fd).size, 4 * GiB + 1);
    } finally {
      fs.closeSync(fd);
    }
    fs.truncateSync(p("big"), 10);
    assert.equal(fs.statSync(p("big")).size, 10);
    assert.equal(fs.statSync(path.join(src, "big")).size, 10);
    fs.truncateSync(p("big"), 6 * GiB);
    assert.equal(fs.statSync(p("big")).size, 6 * GiB);
    fs.unlinkSync(p("big"));
  });

  test("rename, readdir and statfs agree with the directory behind the mount", () => {
    fs.mkdirSync(p("dir/sub"), { recursive: true });
    fs.writeFileSync(p("dir/sub/a"), "A");
    fs.renameSync(p("dir/sub/a"), p("dir/b"));
    fs.renameSync(p("dir/sub"), p("dir/moved"));
    fs.writeFileSync(p("dir/moved/c"), "C");
    assert.equal(fs.readFileSync(p("dir/b"), "utf8"), "A");
    assert.deepEqual(fs.readdirSync(p("dir")).sort(), ["b", "moved"]);
    assert.deepEqual(fs.readdirSync(p("dir")).sort(), fs.readdirSync(path.join(src, "dir")).sort());
    assert.equal(fs.readFileSync(path.join(src, "dir/moved/c"), "utf8"), "C");
    assert.throws(() => fs.statSync(p("dir/sub")), { code: "ENOENT" });
    const listing = execFileSync("ls", ["-1ai", p("dir")], { encoding: "utf8" })
      .trim()
      .split("\n");
    assert.deepEqual(
      listing.map((l) => l.trim().split(/\s+/)[1]),
      [".", "..", "b", "moved"],
    );
    assert.ok(
      listing.every((l) => Number(l.trim().split(/\s+/)[0]) > 0),
      "every entry has an inode number",
    );
    const fuseStat = fs.statfsSync(mount!.dir);
    const diskStat = fs.statfsSync(src);
    assert.equal(fuseStat.blocks, diskStat.blocks);
    assert.equal(fuseStat.bsize, diskStat.bsize);
    fs.rmSync(p("dir"), { recursive: true });
    assert.deepEqual(
      fs.readdirSync(src).filter((n) => n === "dir"),
      [],
    );
  });

  test("fallocate extends, punches holes; lseek SEEK_DATA/SEEK_HOLE treat the file as data", () => {
    execFileSync("fallocate", ["-l", String(3 * 2 ** 20), p("alloc")]);
    assert.equal(fs.statSync(p("alloc")).size, 3 * 2 ** 20);
    fs.writeFileSync(p("alloc"), Buffer.alloc(8192, 0xaa));
    execFileSync("fallocate", ["--punch-hole", "--offset", "0", "--length", "4096", p("alloc")]);
    const after = fs.readFileSync(p("alloc"));
    assert.equal(after.length, 8192);
    assert.ok(after.subarray(0, 4096).every((b) => b === 0));
    assert.ok(after.subarray(4096).every((b) => b === 0xaa));
    const py =
      "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 100, os.SEEK_DATA), os.lseek(fd, 100, os.SEEK_HOLE))";
    assert.equal(execFileSync("python3", ["-c", py, p("alloc")], { encoding: "utf8" }).trim(), "100 8192");
    fs.unlinkSync(p("alloc"));
  });

  test("an unlinked file stays usable through its open descriptor", () => {
    fs.writeFileSync(p("ghost"), "boo");
    const fd = fs.openSync(p("ghost"), "r+");
    try {
      fs.unlinkSync(p("ghost"));
      assert.equal(fs.fstatSync(fd).nlink, 0);
      fs.writeSync(fd, "!", 3);
      assert.equal(fs.fstatSync(fd).size, 4);
      assert.equal(fs.readFileSync(`/proc/self/fd/${fd}`, "utf8"), "boo!");
    } finally {
      fs.closeSync(fd);
    }
  });
});
