// Real databases, written by the sqlite3 CLI and by better-sqlite3 at page sizes 512…65536:
// `encode-db` then `apply` to an empty file reproduces the database byte for byte, and `checksum`
// equals the snapshot's post-apply checksum. The sqlite3 databases go through the real CLI.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import {
  applyLtxFiles,
  checksumDatabaseFile,
  formatHex64,
  readLtxFile,
  writeDatabaseSnapshotFile,
  type LtxWriteFormat,
} from "../../src/ltx/index.js";
import { litefs } from "./cli-run.js";
import { tempDir } from "./ltx-fixtures.js";

const PAGE_SIZES = [512, 1024, 4096, 65536];
const SQLITE3 = "/usr/bin/sqlite3";

function fillSql(pageSize: number, journal: "delete" | "wal"): string {
  return [
    `PRAGMA page_size=${pageSize};`,
    `PRAGMA journal_mode=${journal};`,
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload BLOB);",
    "CREATE INDEX t_name ON t(name);",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)",
    "  INSERT INTO t(name, payload) SELECT 'row ' || i, randomblob(150 + i % 100) FROM n;",
    "DELETE FROM t WHERE id % 7 = 0;", // leaves free pages behind
  ].join("\n");
}

for (const pageSize of PAGE_SIZES) {
  test(
    `sqlite3 CLI database, page size ${pageSize}: encode-db, apply, checksum via bin/litefs`,
    { skip: !fs.existsSync(SQLITE3) && "no sqlite3" },
    (t) => {
      const dir = tempDir(t);
      const db = path.join(dir, "app.db");
      execFileSync(SQLITE3, [db], { input: fillSql(pageSize, pageSize === 4096 ? "wal" : "delete") });
      assert.ok(!fs.existsSync(db + "-wal") || fs.statSync(db + "-wal").size === 0);
      const original = fs.readFileSync(db);
      assert.equal(original.length % pageSize, 0);

      const checksum = litefs("ltx", "checksum", db);
      assert.equal(checksum.status, 0, checksum.stderr);
      // Every format through the CLI once; v3 (the default) at every page size.
      const formats = pageSize === 4096 ? (["v3", "v1", "v1-lz4"] as const) : (["v3"] as const);
      for (const format of formats) {
        const ltx = path.join(dir, `snapshot-${format}.ltx`);
        const encoded = litefs("ltx", "encode-db", "-o", ltx, db, "--format", format);
        assert.equal(encoded.status, 0, encoded.stderr);
        assert.match(encoded.stdout, new RegExp(`post-apply ${checksum.stdout.trim()}`));
        if (format !== "v3") {
          const verified = litefs("ltx", "verify", ltx);
          assert.deepEqual([verified.status, verified.stdout], [0, "ok\n"]);
        }
        const restored = path.join(dir, `restored-${format}.db`);
        const applied = litefs("ltx", "apply", "--db", restored, ltx);
        assert.equal(applied.status, 0, applied.stderr);
        assert.equal(applied.stdout, `0000000000000001/${checksum.stdout.trim()}\n`);
        assert.ok(fs.readFileSync(restored).equals(original), `${format}: restored database differs`);
      }
      // The restored database is a working database.
      const count = execFileSync(
        SQLITE3,
        [path.join(dir, "restored-v3.db"), "SELECT count(*) FROM t; PRAGMA integrity_check;"],
        { encoding: "utf8" },
      );
      assert.equal(count, "2572\nok\n");
    },
  );

  test(`better-sqlite3 database, page size ${pageSize}: snapshot, apply, checksum`, async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, "app.db");
    const db = new Database(file);
    db.pragma(`page_size = ${pageSize}`);
    db.exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB)");
    const insert = db.prepare("INSERT INTO kv VALUES (?, ?)");
    db.transaction(() => {
      for (let i = 0; i < 2500; i++) insert.run(`key-${i}`, Buffer.alloc(100 + (i % 300), i & 0xff));
    })();
    db.close();
    const original = fs.readFileSync(file);

    const expected = await checksumDatabaseFile(file);
    for (const format of ["v3", "v1-lz4"] as LtxWriteFormat[]) {
      const ltx = path.join(dir, `${format}.ltx`);
      const { trailer, header } = await writeDatabaseSnapshotFile(file, ltx, { format, timestamp: 1234 });
      assert.equal(formatHex64(trailer.postApplyChecksum), formatHex64(expected));
      assert.equal(header.commit, original.length / pageSize);
      assert.equal((await readLtxFile(ltx)).pageCount, header.commit);
      const restored = path.join(dir, `${format}.restored`);
      const result = await applyLtxFiles(restored, [ltx]);
      assert.equal(result.position.checksum, expected);
      assert.ok(fs.readFileSync(restored).equals(original));
      const again = new Database(restored, { readonly: true });
      assert.equal((again.prepare("SELECT count(*) AS n FROM kv").get() as { n: number }).n, 2500);
      again.close();
    }
  });
}
