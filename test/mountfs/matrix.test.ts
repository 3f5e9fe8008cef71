// Every journal mode × page size × client through one mounted primary: a seeded random workload
// (inserts, updates, deletes, schema changes, VACUUM, checkpoints, rolled-back transactions), then
//  - the rows SQLite returns (through the writing client and through another one) equal the model's;
//  - one LTX per committed transaction: the chain runs 1..N without gaps, N = commits (plus at most
//    one per rolled-back transaction that spilled into the database file, see Workload.txCountMax);
//  - replaying the chain onto an empty file gives the database byte for byte (WAL: after a checkpoint);
//  - `<db>-pos` equals the last LTX's post-apply checksum and `litefs ltx checksum` of the database.
// All 36 combinations run (each its own database on the same mount, two at a time); a clean restart at
// the end must keep every position. Replay a failure with LITEFS_TEST_SEED=<seed printed>.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { LitefsNode } from "../support/litefs-node.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { formatPos, type Pos } from "../support/pos.js";
import { testSeed } from "../support/prng.js";
import { runSqlJob, SQL_CLIENTS, type SqlClientName } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { JOURNAL_MODES, generateWorkload, type JournalMode } from "../support/workload.js";
import { checkWorkload, describeMismatches, runWorkload } from "../support/workload-run.js";

const PAGE_SIZES = [512, 4096, 65536] as const;
/** Scripts per workload: enough for every kind of operation to occur, small enough for 36 cases. */
const SCRIPTS_PER_WORKLOAD = 24;

interface MatrixCase {
  journalMode: JournalMode;
  pageSize: number;
  client: SqlClientName;
  /** A different client that reads the result back. */
  reader: SqlClientName;
  seed: number;
  db: string;
}

const baseSeed = testSeed();
const cases: MatrixCase[] = [];
for (const journalMode of JOURNAL_MODES) {
  for (const pageSize of PAGE_SIZES) {
    SQL_CLIENTS.forEach((client, i) => {
      cases.push({
        journalMode,
        pageSize,
        client,
        reader: SQL_CLIENTS[(i + 1) % SQL_CLIENTS.length],
        seed: (baseSeed + cases.length) >>> 0,
        db: `m-${journalMode.toLowerCase()}-${pageSize}-${client}.db`,
      });
    });
  }
}

let node: LitefsNode;
let scratchDir: string;
const finalPositions = new Map<string, Pos>();

before(async () => {
  scratchDir = makeTempDir("matrix-scratch");
  node = await LitefsNode.start();
});

after(async () => {
  await node?.cleanup();
  if (scratchDir !== undefined) removeTempDir(scratchDir);
});

describe(`mount matrix (LITEFS_TEST_SEED=${baseSeed})`, { concurrency: 2 }, () => {
  for (const c of cases) {
    test(`${c.journalMode} page ${c.pageSize} via ${c.client}`, async () => {
      const context = `db ${c.db}, seed ${c.seed}`;
      const workload = generateWorkload({
        seed: c.seed,
        journalMode: c.journalMode,
        pageSize: c.pageSize,
        scripts: SCRIPTS_PER_WORKLOAD,
      });
      const dbPath = node.dbPath(c.db);
      await runWorkload(c.client, dbPath, workload);
      if (c.journalMode === "WAL") {
        // Move every frame into the database file; a checkpoint must not write an LTX.
        const before = node.readPos(c.db);
        await runSqlJob(c.client, { dbPath, queries: ["PRAGMA wal_checkpoint(TRUNCATE)"] });
        assert.deepEqual(node.readPos(c.db), before, `${context}: a checkpoint changed the position`);
      }

      for (const reader of [c.client, c.reader]) {
        const mismatches = await checkWorkload(reader, dbPath, workload);
        assert.equal(
          mismatches.length,
          0,
          `${context}, read via ${reader}:\n${describeMismatches(mismatches)}`,
        );
      }

      const { files, pos } = await verifyLtxChainMatchesDatabase({
        dbFile: dbPath,
        posFile: node.posPath(c.db),
        ltxDir: node.ltxDir(c.db),
        scratchDir,
      }).catch((err: Error) => {
        throw new Error(`${context}: ${err.message}`);
      });
      assert.ok(
        pos.txid >= BigInt(workload.txCountMin) && pos.txid <= BigInt(workload.txCountMax),
        `${context}: expected ${workload.txCountMin}..${workload.txCountMax} transactions (one per commit), ` +
          `got position ${formatPos(pos)} (${files.length} LTX files)`,
      );
      finalPositions.set(c.db, pos);
    });
  }
});

describe("after a clean restart", () => {
  test("every database keeps its position, rows and chain", async () => {
    assert.equal(finalPositions.size, cases.length, "some matrix cases failed; not checking the restart");
    const status = await node.stop();
    assert.equal(status.code, 0, `litefs mount exited with ${status.code ?? status.signal}\n${node.logs()}`);
    await node.restart();
    for (const [db, pos] of finalPositions) {
      assert.deepEqual(node.readPos(db), pos, `${db}: position changed across a clean restart`);
      assert.ok(fs.existsSync(node.dbPath(db)), `${db}: missing after restart`);
    }
    const sample = cases.filter((_, i) => i % 5 === 0);
    for (const c of sample) {
      const workload = generateWorkload({
        seed: c.seed,
        journalMode: c.journalMode,
        pageSize: c.pageSize,
        scripts: SCRIPTS_PER_WORKLOAD,
      });
      const mismatches = await checkWorkload(c.reader, node.dbPath(c.db), workload);
      assert.equal(mismatches.length, 0, `${c.db} after restart:\n${describeMismatches(mismatches)}`);
    }
  });
});
