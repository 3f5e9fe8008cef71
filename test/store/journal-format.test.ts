// Rollback journals: real hot journals captured by SIGKILLing a writer (better-sqlite3 or Python) in the
// middle of a transaction that has already spilled pages into the database file; our rollback must give
// back the database exactly as it was before the transaction, and exactly what the sqlite3 shell makes
// of the same files when it opens them (it rolls the hot journal back itself). Damaged and synthetic
// journals are judged by the shell the same way.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import {
  DEFAULT_JOURNAL_SECTOR_SIZE,
  JOURNAL_HEADER_FIELDS_SIZE,
  JOURNAL_MAGIC,
  JOURNAL_NREC_FROM_SIZE,
  applyJournalRollback,
  encodeJournalHeader,
  encodeJournalRecord,
  encodeSuperJournalRecord,
  isJournalHeaderZeroWrite,
  journalChecksum,
  journalHeaderState,
  journalLooksHot,
  journalRollbackPages,
  parseJournal,
  readJournalHeader,
  readSuperJournalName,
  rolledBackFileSize,
  type JournalRollback,
} from "../../src/store/journal-format.js";
import { SqliteFormatError } from "../../src/store/sqlite-header.js";
import { PYTHON3 } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { TrackedProcess } from "../support/tracked-process.js";
import { firstDifference, readFile, runSqliteCli } from "./sqlite-files.js";

const tmp = makeTempDir("store-journal");
after(() => removeTempDir(tmp));
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "journal-writer-child.js");

const PYTHON_CHILD = `
import json, sqlite3, sys, time
job = json.loads(sys.argv[1])
c = sqlite3.connect(job["db"], isolation_level=None)
for p in job["pragmas"]:
    c.execute(p).fetchall()
c.execute("BEGIN")
for s in job["statements"]:
    c.execute(s)
print("ready", flush=True)
time.sleep(600)
`;

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `${what}: differs at byte ${at} (sizes ${actual.length} vs ${expected.length})`);
}

interface Crash {
  /** The database before the killed transaction began. */
  before: Uint8Array;
  /** Database and journal as the killed writer left them. */
  db: Uint8Array;
  journal: Uint8Array;
  /** The journal as the last committed transaction left it (undefined: no journal file). */
  journalBefore: Uint8Array | undefined;
}

interface CrashSpec {
  pageSize: number;
  journalMode: "DELETE" | "TRUNCATE" | "PERSIST";
  synchronous: "OFF" | "NORMAL" | "FULL";
  client: "better-sqlite3" | "python";
  /** Rows of table t (blobs of about a third of a page, every tenth one spilling to overflow pages). */
  rows: number;
  /** The killed transaction's statements (after BEGIN). */
  statements: string[];
  /** Per-connection cache in pages: small makes the transaction spill into the database file. */
  cacheSize: number;
  /** Statements committed before the killed transaction, in the same journal mode. */
  committedFirst?: string[];
}

/** Builds a database, commits what the spec says, then runs a writer and SIGKILLs it mid-transaction. */
async function crash(spec: CrashSpec): Promise<Crash> {
  const dir = fs.mkdtempSync(path.join(tmp, `${spec.journalMode.toLowerCase()}-${spec.pageSize}-`));
  const file = path.join(dir, "db");
  const third = Math.floor(spec.pageSize / 3);
  runSqliteCli(
    file,
    `PRAGMA page_size=${spec.pageSize};
     PRAGMA journal_mode=${spec.journalMode};
     CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${spec.rows})
       INSERT INTO t(v) SELECT randomblob(CASE WHEN x % 10 = 0 THEN ${spec.pageSize * 2} ELSE ${third} END) FROM c;
     PRAGMA cache_size=${spec.cacheSize};
     ${(spec.committedFirst ?? []).join("\n")}`,
  );
  const before = readFile(file);
  const journalBefore = fs.existsSync(file + "-journal") ? readFile(file + "-journal") : undefined;
  const job = {
    db: file,
    pragmas: [
      `PRAGMA journal_mode=${spec.journalMode}`,
      `PRAGMA synchronous=${spec.synchronous}`,
      `PRAGMA cache_size=${spec.cacheSize}`,
    ],
    statements: spec.statements,
  };
  const child = await TrackedProcess.spawn(
    spec.client === "python"
      ? { label: "python writer", command: PYTHON3, args: ["-c", PYTHON_CHILD, JSON.stringify(job)] }
      : { label: "better-sqlite3 writer", command: process.execPath, args: [CHILD, JSON.stringify(job)] },
  );
  try {
    await child.waitForLine(/^ready$/, 30_000);
  } finally {
    child.killGroup();
    await child.exit;
  }
  return { before, db: readFile(file), journal: readFile(file + "-journal"), journalBefore };
}

/**
 * What the sqlite3 shell leaves when it opens `db` beside `journal` and runs `sql` (any read first rolls
 * a hot journal back). Synthetic tests read only the schema: their scribbled pages are not a database.
 */
function shellRecovery(
  db: Uint8Array,
  journal: Uint8Array,
  sql = "PRAGMA integrity_check;",
): { db: Uint8Array; journalLeft: boolean; check: string } {
  const dir = fs.mkdtempSync(path.join(tmp, "shell-"));
  const file = path.join(dir, "db");
  fs.writeFileSync(file, db);
  fs.writeFileSync(file + "-journal", journal);
  const check = runSqliteCli(file, sql).trim();
  return { db: readFile(file), journalLeft: fs.existsSync(file + "-journal"), check };
}

function rollback(journal: Uint8Array): JournalRollback {
  const plan = journalRollbackPages(journal);
  assert.ok(plan !== undefined, "the journal has a valid first header");
  return plan;
}

const SCHEMA_ONLY = "PRAGMA schema_version;";
const updateAll = "UPDATE t SET v = randomblob(length(v))";

describe("hot journals left by a killed writer", () => {
  const cases: Array<[string, CrashSpec]> = [
    [
      "DELETE, synchronous=FULL, 4096-byte pages, better-sqlite3",
      {
        pageSize: 4096,
        journalMode: "DELETE",
        synchronous: "FULL",
        client: "better-sqlite3",
        rows: 240,
        cacheSize: 10,
        statements: [
          updateAll,
          "DELETE FROM t WHERE id % 7 = 0",
          "INSERT INTO t(v) SELECT randomblob(3000) FROM t WHERE id < 60",
        ],
      },
    ],
    [
      "PERSIST over an earlier, bigger journal, 512-byte pages, better-sqlite3",
      {
        pageSize: 512,
        journalMode: "PERSIST",
        synchronous: "FULL",
        client: "better-sqlite3",
        rows: 600,
        cacheSize: 10,
        committedFirst: [updateAll + ";"],
        statements: ["UPDATE t SET v = randomblob(length(v)) WHERE id < 250"],
      },
    ],
    [
      "TRUNCATE, synchronous=NORMAL, 65536-byte pages, Python",
      {
        pageSize: 65536,
        journalMode: "TRUNCATE",
        synchronous: "NORMAL",
        client: "python",
        rows: 90,
        cacheSize: 10,
        committedFirst: ["UPDATE t SET v = randomblob(10) WHERE id = 1;"],
        statements: [updateAll, "DELETE FROM t WHERE id > 80"],
      },
    ],
    [
      "DELETE, synchronous=OFF (record count from the file size), 4096-byte pages, Python",
      {
        pageSize: 4096,
        journalMode: "DELETE",
        synchronous: "OFF",
        client: "python",
        rows: 240,
        cacheSize: 10,
        statements: [updateAll],
      },
    ],
  ];

  for (const [name, spec] of cases) {
    test(`${name}: rollback restores the database byte for byte, as the sqlite3 shell does`, async () => {
      const c = await crash(spec);
      assert.notDeepEqual(c.db, c.before, "the transaction spilled pages into the database file");
      if (spec.journalMode === "PERSIST") assert.equal(journalHeaderState(c.journalBefore!), "zeroed");
      if (spec.journalMode === "TRUNCATE") assert.equal(journalHeaderState(c.journalBefore!), "empty");
      assert.equal(journalHeaderState(c.journal), "active");
      assert.equal(journalLooksHot(c.journal, c.db.length), true);

      const plan = rollback(c.journal);
      const parsed = plan.parsed;
      const first = parsed.headers[0];
      assert.equal(first.pageSize, spec.pageSize);
      assert.equal(first.sectorSize, DEFAULT_JOURNAL_SECTOR_SIZE);
      assert.equal(first.initialPageCount * spec.pageSize, c.before.length);
      assert.equal(plan.superJournal, undefined);
      if (spec.synchronous === "OFF") {
        assert.equal(first.recordCount, JOURNAL_NREC_FROM_SIZE);
        assert.equal(parsed.headers.length, 1);
      } else {
        assert.ok(
          parsed.headers.length > 1,
          `several segments (one per cache spill): ${parsed.headers.length}`,
        );
        assert.equal(parsed.stop, "no-header", "the segment being filled has no magic yet");
      }
      assert.ok(plan.pages.size > 0);
      if (spec.journalMode === "PERSIST") {
        assert.ok(
          c.journal.length >= c.journalBefore!.length &&
            parsed.stopOffset + 10 * spec.pageSize < c.journal.length,
          `stale records of the earlier transaction lie past the live segments (stop ${parsed.stopOffset}, size ${c.journal.length})`,
        );
      }

      const ours = applyJournalRollback(c.db, plan);
      assertSame(ours, c.before, "rolled back = the database before the transaction");
      const shell = shellRecovery(c.db, c.journal);
      assert.equal(shell.check, "ok");
      assert.equal(shell.journalLeft, false);
      assertSame(ours, shell.db, "ours = the shell's rollback");
    });
  }

  test("a damaged record ends the rollback there, for us as for SQLite", async () => {
    const c = await crash(cases[0][1]);
    const parsed = parseJournal(c.journal);
    const secondSegmentRecord = parsed.records.find((r) => r.offset > parsed.headers[1].offset && r.restores);
    assert.ok(secondSegmentRecord !== undefined);
    const damaged = c.journal.slice();
    damaged[secondSegmentRecord.offset + 4 + 4096 - 200] ^= 0x01; // a byte the checksum covers
    const plan = rollback(damaged);
    assert.equal(plan.parsed.stop, "checksum");
    assert.equal(plan.parsed.stopOffset, secondSegmentRecord.offset);
    assert.ok(plan.pages.size < rollback(c.journal).pages.size);
    const ours = applyJournalRollback(c.db, plan);
    assert.notDeepEqual(ours, c.before, "a partial rollback");
    assertSame(ours, shellRecovery(c.db, damaged).db, "ours = the shell's partial rollback");

    // A byte the checksum does not sample is not noticed, by either.
    const unnoticed = c.journal.slice();
    unnoticed[secondSegmentRecord.offset + 4 + 1] ^= 0x01;
    assertSame(
      applyJournalRollback(c.db, rollback(unnoticed)),
      shellRecovery(c.db, unnoticed).db,
      "unsampled byte",
    );

    // A torn journal (cut inside a record) stops at the torn record.
    const torn = c.journal.subarray(0, secondSegmentRecord.offset + 100);
    const tornPlan = rollback(torn);
    assert.equal(tornPlan.parsed.stop, "short-record");
    assertSame(applyJournalRollback(c.db, tornPlan), shellRecovery(c.db, torn).db, "torn journal");
  });

  test("a journal whose header was never synced is not hot: nothing to roll back, the database untouched", async () => {
    const c = await crash({
      pageSize: 4096,
      journalMode: "DELETE",
      synchronous: "FULL",
      client: "better-sqlite3",
      rows: 30,
      cacheSize: 2000,
      statements: ["UPDATE t SET v = randomblob(length(v)) WHERE id < 5"],
    });
    assertSame(c.db, c.before, "nothing reached the database file");
    assert.equal(journalHeaderState(c.journal), "unsynced");
    assert.equal(journalLooksHot(c.journal, c.db.length), false);
    assert.equal(journalRollbackPages(c.journal), undefined);
    assertSame(shellRecovery(c.db, c.journal).db, c.before, "the shell leaves it too");
  });
});

describe("synthetic journals judged by the sqlite3 shell", () => {
  function baseDatabase(pageSize: number): Uint8Array {
    const file = path.join(fs.mkdtempSync(path.join(tmp, "synthetic-")), "db");
    runSqliteCli(
      file,
      `PRAGMA page_size=${pageSize}; CREATE TABLE t(v); INSERT INTO t VALUES (randomblob(${pageSize * 3})), ('x');`,
    );
    return readFile(file);
  }

  /** A journal that restores pages 2 and 3 of `original` into a database whose pages were scribbled on. */
  function scribbled(pageSize: number): { original: Uint8Array; damaged: Uint8Array; journal: Uint8Array } {
    const original = baseDatabase(pageSize);
    const pageCount = original.length / pageSize;
    const damaged = new Uint8Array((pageCount + 2) * pageSize).fill(0x5c); // grown by two pages, too
    damaged.set(original.subarray(0, pageSize));
    damaged.set(original.subarray(3 * pageSize), 3 * pageSize);
    const nonce = 0x1234abcd;
    const journal = concat([
      encodeJournalHeader({ recordCount: 1, nonce, initialPageCount: pageCount, sectorSize: 512, pageSize }),
      encodeJournalRecord(2, original.subarray(pageSize, 2 * pageSize), nonce),
      new Uint8Array(512 - ((pageSize + 8) % 512 || 512)),
      encodeJournalHeader({
        recordCount: 2,
        nonce: nonce + 1,
        initialPageCount: pageCount,
        sectorSize: 512,
        pageSize,
      }),
      encodeJournalRecord(pageCount + 1, new Uint8Array(pageSize).fill(1), 0), // beyond the initial size: skipped
      encodeJournalRecord(3, original.subarray(2 * pageSize, 3 * pageSize), nonce + 1),
    ]);
    return { original, damaged, journal };
  }

  test("built journals with two segments roll back like SQLite's, for every page size", () => {
    for (const pageSize of [512, 1024, 4096, 65536]) {
      const { original, damaged, journal } = scribbled(pageSize);
      const plan = rollback(journal);
      assert.deepEqual([...plan.pages.keys()], [2, 3]);
      assert.equal(plan.parsed.records.filter((r) => !r.restores).length, 1);
      assert.equal(rolledBackFileSize(damaged.length, plan), original.length);
      const ours = applyJournalRollback(damaged, plan);
      assertSame(ours, original, `page size ${pageSize}`);
      assertSame(shellRecovery(damaged, journal, SCHEMA_ONLY).db, ours, `shell, page size ${pageSize}`);
    }
  });

  test("a super-journal that does not exist means the commit finished: no rollback (a bad name checksum: rollback)", () => {
    const pageSize = 4096;
    const { damaged, journal } = scribbled(pageSize);
    const missing = path.join(tmp, "no-such-super-journal");
    const withSuper = concat([journal, encodeSuperJournalRecord(missing, pageSize)]);
    assert.equal(readSuperJournalName(withSuper), missing);
    const plan = rollback(withSuper);
    assert.equal(plan.superJournal, missing);
    assert.equal(plan.parsed.stop, "end");
    assertSame(shellRecovery(damaged, withSuper, SCHEMA_ONLY).db, damaged, "SQLite does not roll back");

    const badSum = withSuper.slice();
    badSum[badSum.length - 9] ^= 1; // the name checksum
    assert.equal(readSuperJournalName(badSum), undefined);
    assertSame(
      shellRecovery(damaged, badSum, SCHEMA_ONLY).db,
      applyJournalRollback(damaged, rollback(badSum)),
      "rolled back",
    );
  });

  test("invalid first headers: no rollback at all, database untouched", () => {
    const { damaged, journal } = scribbled(1024);
    const badPageSize = journal.slice();
    new DataView(badPageSize.buffer).setUint32(24, 1000, false);
    const badSector = journal.slice();
    new DataView(badSector.buffer).setUint32(20, 16, false);
    for (const [name, j] of [
      ["page size", badPageSize],
      ["sector size", badSector],
    ] as const) {
      assert.equal(journalRollbackPages(j), undefined, name);
      assert.equal(parseJournal(j).stop, "bad-header");
      assertSame(shellRecovery(damaged, j, SCHEMA_ONLY).db, damaged, `shell leaves it: bad ${name}`);
    }
    assert.equal(parseJournal(journal.subarray(0, 300)).stop, "no-header", "shorter than a sector");
  });
});

describe("header states and helpers", () => {
  test("journalHeaderState, isJournalHeaderZeroWrite, journalLooksHot", () => {
    const header = encodeJournalHeader({
      recordCount: 3,
      nonce: 9,
      initialPageCount: 4,
      sectorSize: 512,
      pageSize: 4096,
    });
    assert.equal(journalHeaderState(new Uint8Array(0)), "empty");
    assert.equal(journalHeaderState(header), "active");
    assert.equal(journalHeaderState(new Uint8Array(512)), "zeroed");
    const unsynced = header.slice();
    unsynced.fill(0, 0, 12);
    assert.equal(journalHeaderState(unsynced), "unsynced");
    const garbage = header.slice();
    garbage[0] = 0x42;
    assert.equal(journalHeaderState(garbage), "invalid");
    assert.equal(readJournalHeader(garbage), undefined);
    assert.deepEqual(readJournalHeader(header), {
      offset: 0,
      recordCount: 3,
      nonce: 9,
      initialPageCount: 4,
      sectorSize: 512,
      pageSize: 4096,
    });

    assert.equal(isJournalHeaderZeroWrite(0, new Uint8Array(JOURNAL_HEADER_FIELDS_SIZE)), true);
    assert.equal(isJournalHeaderZeroWrite(512, new Uint8Array(JOURNAL_HEADER_FIELDS_SIZE)), false);
    assert.equal(isJournalHeaderZeroWrite(0, new Uint8Array(27)), false);
    assert.equal(isJournalHeaderZeroWrite(0, JOURNAL_MAGIC), false);

    assert.equal(journalLooksHot(header, 4096), true);
    assert.equal(journalLooksHot(header, 0), false, "an empty database has nothing to roll back");
    assert.equal(journalLooksHot(unsynced, 4096), false);
    assert.equal(journalLooksHot(new Uint8Array(0), 4096), false);
  });

  test("journalChecksum samples every 200th byte from the end, never byte 0", () => {
    const page = new Uint8Array(512);
    assert.equal(journalChecksum(7, page), 7);
    page[312] = 1;
    page[112] = 2;
    page[0] = 100;
    page[311] = 50;
    assert.equal(journalChecksum(7, page), 10);
    assert.equal(journalChecksum(0xffffffff, page), 2, "wraps modulo 2^32");
    const big = new Uint8Array(65536).fill(1);
    assert.equal(journalChecksum(0, big), Math.floor((65536 - 200) / 200) + 1);
  });

  test("encoders refuse what SQLite could not have written; applying a plan past the size throws", () => {
    assert.throws(
      () =>
        encodeJournalHeader({
          recordCount: 0,
          nonce: 0,
          initialPageCount: 0,
          sectorSize: 48,
          pageSize: 4096,
        }),
      SqliteFormatError,
    );
    assert.throws(() => encodeJournalRecord(0, new Uint8Array(512), 0), SqliteFormatError);
    assert.throws(() => encodeSuperJournalRecord("", 4096), SqliteFormatError);
    const plan: JournalRollback = { ...rollbackOf(), dbPageCount: 1 };
    assert.throws(
      () => applyJournalRollback(new Uint8Array(512), plan),
      (e) => e instanceof SqliteFormatError && e.code === "EJOURNAL",
    );
  });
});

function rollbackOf(): JournalRollback {
  const journal = concat([
    encodeJournalHeader({ recordCount: 1, nonce: 1, initialPageCount: 2, sectorSize: 512, pageSize: 512 }),
    encodeJournalRecord(2, new Uint8Array(512).fill(3), 1),
  ]);
  return rollback(journal);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
