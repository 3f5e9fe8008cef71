// One case of the mount matrix (matrix.test.ts; kernel-locks.test.ts runs a subset in kernel-locks
// mode): a seeded random workload (inserts, updates, deletes, schema changes, VACUUM, checkpoints,
// rolled-back transactions) through one client on a mounted primary, then
//  - the rows SQLite returns (through the writing client and through another one) equal the model's;
//  - one LTX per committed transaction: the chain runs 1..N without gaps, N = commits (plus at most
//    one per rolled-back transaction that spilled into the database file, see Workload.txCountMax);
//  - replaying the chain onto an empty file gives the database byte for byte (WAL: after a checkpoint);
//  - `<db>-pos` equals the last LTX's post-apply checksum and `litefs ltx checksum` of the database.
import assert from "node:assert/strict";
import type { LitefsNode } from "../support/litefs-node.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { formatPos, type Pos } from "../support/pos.js";
import { runSqlJob, SQL_CLIENTS, type SqlClientName } from "../support/sql-clients.js";
import { generateWorkload, type JournalMode, type Workload } from "../support/workload.js";
import { checkWorkload, describeMismatches, runWorkload } from "../support/workload-run.js";

/** Scripts per workload: enough for every kind of operation to occur, small enough for 36 cases. */
export const SCRIPTS_PER_WORKLOAD = 24;

export interface MatrixCase {
  journalMode: JournalMode;
  pageSize: number;
  client: SqlClientName;
  /** A different client that reads the result back. */
  reader: SqlClientName;
  seed: number;
  db: string;
}

/** The case of (journal mode, page size, client) with the next seed; the reader is the next client. */
export function matrixCase(
  journalMode: JournalMode,
  pageSize: number,
  client: SqlClientName,
  seed: number,
  dbPrefix = "m",
): MatrixCase {
  const i = SQL_CLIENTS.indexOf(client);
  return {
    journalMode,
    pageSize,
    client,
    reader: SQL_CLIENTS[(i + 1) % SQL_CLIENTS.length],
    seed: seed >>> 0,
    db: `${dbPrefix}-${journalMode.toLowerCase()}-${pageSize}-${client}.db`,
  };
}

export function matrixWorkload(c: MatrixCase): Workload {
  return generateWorkload({
    seed: c.seed,
    journalMode: c.journalMode,
    pageSize: c.pageSize,
    scripts: SCRIPTS_PER_WORKLOAD,
  });
}

/** Runs case `c` on `node` and checks it (see the header); returns the final position. */
export async function runMatrixCase(node: LitefsNode, c: MatrixCase, scratchDir: string): Promise<Pos> {
  const context = `db ${c.db}, seed ${c.seed}`;
  const workload = matrixWorkload(c);
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
    assert.equal(mismatches.length, 0, `${context}, read via ${reader}:\n${describeMismatches(mismatches)}`);
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
  return pos;
}
