// The database header, read from files the sqlite3 shell and better-sqlite3 wrote, compared with what
// SQLite reports through PRAGMAs; every validity rule broken on purpose.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import {
  DATABASE_HEADER_SIZE,
  SqliteFormatError,
  databaseHeaderProblem,
  decodeHeaderPageSize,
  effectivePageCount,
  isValidDatabaseHeader,
  isValidPageSize,
  isWalMode,
  parseDatabaseHeader,
  textEncodingName,
} from "../../src/store/sqlite-header.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { readFile, runSqliteCli } from "./sqlite-files.js";

const tmp = makeTempDir("store-header");
after(() => removeTempDir(tmp));

function pragmaInts(file: string, names: readonly string[]): number[] {
  const out = runSqliteCli(file, names.map((n) => `PRAGMA ${n};`).join("\n") + "\n");
  return out.trim().split("\n").map(Number);
}

describe("parseDatabaseHeader on files SQLite wrote", () => {
  for (const pageSize of [512, 4096, 65536]) {
    test(`sqlite3 shell, page size ${pageSize}: fields equal what the PRAGMAs report`, () => {
      const file = path.join(tmp, `cli-${pageSize}.db`);
      runSqliteCli(
        file,
        `PRAGMA page_size=${pageSize};
         PRAGMA user_version=42; PRAGMA application_id=-5;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         INSERT INTO t(v) VALUES (randomblob(${pageSize * 3})), (randomblob(100));
         CREATE TABLE u(x); DELETE FROM t WHERE id = 1;`,
      );
      const bytes = readFile(file);
      const h = parseDatabaseHeader(bytes);
      const [pageCount, freelist, schema, userVersion, appId] = pragmaInts(file, [
        "page_count",
        "freelist_count",
        "schema_version",
        "user_version",
        "application_id",
      ]);
      assert.equal(h.pageSize, pageSize);
      assert.equal(h.pageCount, pageCount);
      assert.equal(h.pageCount, bytes.length / pageSize);
      assert.equal(h.pageCountValid, true);
      assert.equal(effectivePageCount(h, bytes.length), pageCount);
      assert.equal(h.freelistCount, freelist);
      assert.ok(freelist > 0, "the delete freed overflow pages");
      assert.ok(h.freelistTrunk > 0);
      assert.equal(h.schemaCookie, schema);
      assert.equal(h.userVersion, userVersion);
      assert.equal(h.applicationId, appId);
      assert.equal(h.applicationId, -5);
      assert.deepEqual([h.writeVersion, h.readVersion, isWalMode(h), isWalMode(bytes)], [1, 1, false, false]);
      assert.equal(textEncodingName(h.textEncoding), "utf-8");
      assert.equal(h.schemaFormat, 4);
      assert.equal(h.versionValidFor, h.changeCounter);
      assert.equal(h.sqliteVersion, 3040001, "Debian 12's sqlite3 shell is 3.40.1");

      const before = h.changeCounter;
      runSqliteCli(file, "INSERT INTO u VALUES (1);");
      assert.equal(
        parseDatabaseHeader(readFile(file)).changeCounter,
        before + 1,
        "each rollback-mode commit bumps it",
      );

      runSqliteCli(file, "PRAGMA journal_mode=WAL;");
      const wal = parseDatabaseHeader(readFile(file));
      assert.deepEqual([wal.writeVersion, wal.readVersion, isWalMode(wal)], [2, 2, true]);
      runSqliteCli(file, "PRAGMA journal_mode=DELETE;");
      assert.equal(isWalMode(readFile(file)), false);
    });
  }

  test("better-sqlite3: UTF-16le, auto-vacuum, the library's own version number", () => {
    const file = path.join(tmp, "b.db");
    const db = new Database(file);
    try {
      db.pragma("encoding = 'UTF-16le'");
      db.pragma("auto_vacuum = FULL");
      db.exec("CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a VALUES ('z');");
    } finally {
      db.close();
    }
    const h = parseDatabaseHeader(readFile(file));
    assert.equal(textEncodingName(h.textEncoding), "utf-16le");
    assert.ok(h.autovacuumLargestRoot >= 3, "tables a and b have root pages");
    assert.equal(h.incrementalVacuum, 0);
    const version = (new Database(":memory:").prepare("SELECT sqlite_version() AS v").get() as { v: string })
      .v;
    const [major, minor, patch] = version.split(".").map(Number);
    assert.equal(h.sqliteVersion, major * 1_000_000 + minor * 1000 + patch);
  });

  test("a header whose page count is stale (written by an old library) falls back to the file size", () => {
    const file = path.join(tmp, "stale.db");
    runSqliteCli(file, "CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(20000));");
    const bytes = readFile(file).slice();
    bytes[95] ^= 1; // version-valid-for no longer equals the change counter
    const h = parseDatabaseHeader(bytes);
    assert.equal(h.pageCountValid, false);
    assert.equal(effectivePageCount(h, bytes.length + 1), bytes.length / h.pageSize + 1);
  });
});

describe("validity rules", () => {
  const good = (): Uint8Array => {
    const file = path.join(tmp, "rules.db");
    if (!fs.existsSync(file)) runSqliteCli(file, "CREATE TABLE t(x);");
    return readFile(file).subarray(0, DATABASE_HEADER_SIZE).slice();
  };

  test("every broken rule is named; parse throws ESQLITEHEADER", () => {
    assert.equal(databaseHeaderProblem(good()), undefined);
    const cases: Array<[string, (b: Uint8Array) => void, RegExp]> = [
      ["magic", (b) => (b[3] = 0x6c), /magic/],
      ["page size 1000", (b) => ((b[16] = 0x03), (b[17] = 0xe8)), /page size 1000/],
      ["page size 256", (b) => ((b[16] = 0x01), (b[17] = 0x00)), /page size 256/],
      ["page size 0", (b) => ((b[16] = 0), (b[17] = 0)), /page size 0/],
      ["read version 3", (b) => (b[19] = 3), /read version 3/],
      ["write version 0", (b) => (b[18] = 0), /write version 0/],
      ["payload fraction", (b) => (b[21] = 65), /payload fractions/],
      ["usable size", (b) => ((b[16] = 2), (b[17] = 0), (b[20] = 40)), /usable page size 472/],
    ];
    for (const [name, breakIt, message] of cases) {
      const bytes = good();
      breakIt(bytes);
      assert.match(databaseHeaderProblem(bytes) ?? "", message, name);
      assert.equal(isValidDatabaseHeader(bytes), false, name);
      assert.throws(
        () => parseDatabaseHeader(bytes),
        (e) => e instanceof SqliteFormatError && e.code === "ESQLITEHEADER" && e.offset === 0,
        name,
      );
    }
    assert.match(databaseHeaderProblem(good().subarray(0, 99)) ?? "", /100 bytes/);
    assert.throws(() => isWalMode(new Uint8Array(20)), SqliteFormatError);
    // Write version 3 makes a database read-only for SQLite but does not make the header invalid.
    const readOnly = good();
    readOnly[18] = 3;
    assert.equal(isValidDatabaseHeader(readOnly), true);
  });

  test("page sizes: powers of two from 512 to 65536, with 1 standing for 65536", () => {
    const valid = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
    for (let n = 0; n <= 70000; n++) assert.equal(isValidPageSize(n), valid.includes(n), `size ${n}`);
    assert.equal(decodeHeaderPageSize(1), 65536);
    assert.equal(decodeHeaderPageSize(4096), 4096);
    assert.equal(decodeHeaderPageSize(0), 0);
    assert.equal(decodeHeaderPageSize(65535), 0);
  });
});
