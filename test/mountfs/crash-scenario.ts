// One crash scenario (crash.test.ts; kernel-locks.test.ts runs some in kernel-locks mode): a client
// process commits batches in a loop and reports each COMMIT that returned ("ack"); the node is killed
// with SIGKILL at a random moment (its FUSE connection dies, so the client's calls fail — expected),
// the dead mount is unmounted, the node restarted on the same data, and then:
//  - the position is the last LTX's, and its post-apply checksum is the database's checksum;
//  - the LTX chain replayed onto an empty file reproduces the database byte for byte;
//  - integrity_check is ok; every acknowledged batch is present; no batch is half there and no
//    rolled-back batch leaked (the three tables agree).
// The database carries over from one kill to the next, so each recovery starts from the previous one.
import assert from "node:assert/strict";
import {
  ACK_WRITER_CONSISTENCY_QUERIES,
  ACK_WRITER_SCHEMA,
  AckWriter,
  type AckWriterClient,
} from "../support/ack-writer.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { formatPos } from "../support/pos.js";
import { Prng } from "../support/prng.js";
import { runSqlJob } from "../support/sql-clients.js";
import type { JournalMode } from "../support/workload.js";

export interface CrashScenario {
  journalMode: JournalMode;
  client: AckWriterClient;
  pageSize: number;
  kills: number;
}

/**
 * Runs `scenario` on a started `node` (database `db`), with `seed`; `diagnostic` receives one line per
 * kill. Throws with the context of the first check that fails.
 */
export async function runCrashScenario(opts: {
  node: LitefsNode;
  db: string;
  scenario: CrashScenario;
  seed: number;
  scratchDir: string;
  diagnostic: (line: string) => void;
}): Promise<void> {
  const { node, db, scenario, seed, scratchDir } = opts;
  const name = `${scenario.journalMode} via ${scenario.client}, page ${scenario.pageSize}`;
  const prng = new Prng(seed);
  const dbPath = node.dbPath(db);
  await runSqlJob("sqlite3", {
    dbPath,
    pragmas: [`PRAGMA page_size=${scenario.pageSize}`, `PRAGMA journal_mode=${scenario.journalMode}`],
    scripts: [ACK_WRITER_SCHEMA],
  });

  const allAcked: number[] = [];
  for (let kill = 1; kill <= scenario.kills; kill++) {
    const context = `${name}, kill ${kill}, seed ${seed}`;
    const firstBatchId = await nextBatchId(dbPath);
    const writer = await AckWriter.start({
      client: scenario.client,
      dbPath,
      journalMode: scenario.journalMode,
      firstBatchId,
      seed: prng.nextUint32(),
      payloadBytesMax: Math.min(3 * scenario.pageSize, 20_000),
    });
    try {
      await writer.waitForAcks(prng.int(1, 20), 30_000);
      // Land the kill anywhere within the next few transactions, not right after an ack.
      await new Promise((resolve) => setTimeout(resolve, prng.int(0, 150)));
      await node.crash();
    } finally {
      await writer.finish();
    }
    allAcked.push(...writer.acked);
    const writerExit = writer.process.status;
    const killedAt = Date.now();

    await node.restart().catch((err: Error) => {
      throw new Error(`${context}: the node did not come back: ${err.message}`);
    });
    await checkAfterRecovery(node, db, scenario.journalMode, allAcked, context, scratchDir);
    opts.diagnostic(
      `kill ${kill}: ${writer.acked.length} acks, writer exit ${writerExit?.code ?? writerExit?.signal}, ` +
        `restart+check ${Date.now() - killedAt} ms, position ${formatPos(node.readPos(db))}`,
    );
  }
  assert.ok(allAcked.length > 0, "no transaction was ever acknowledged");
}

async function nextBatchId(dbPath: string): Promise<number> {
  const rows = (
    await runSqlJob("python", { dbPath, queries: ["SELECT coalesce(max(id), 0) + 1 AS next FROM batches"] })
  ).results[0];
  return rows[0].next as number;
}

async function checkAfterRecovery(
  node: LitefsNode,
  db: string,
  journalMode: JournalMode,
  acked: readonly number[],
  context: string,
  scratchDir: string,
): Promise<void> {
  const dbPath = node.dbPath(db);
  const posAfterRestart = node.readPos(db);
  // Bring every WAL frame into the database file so that its checksum can be compared; a checkpoint
  // writes no LTX, so the position must not move.
  const { results } = await runSqlJob("python", {
    dbPath,
    pragmas: [`PRAGMA journal_mode=${journalMode}`],
    queries: [
      ...(journalMode === "WAL" ? ["PRAGMA wal_checkpoint(TRUNCATE)"] : ["SELECT 0 AS busy"]),
      "PRAGMA integrity_check",
      "SELECT id FROM batches ORDER BY id",
      ...ACK_WRITER_CONSISTENCY_QUERIES.map((q) => q.sql),
    ],
  });
  const [checkpoint, integrity, batchRows, ...consistency] = results;
  assert.equal(
    checkpoint[0].busy,
    0,
    `${context}: checkpoint could not complete: ${JSON.stringify(checkpoint)}`,
  );
  assert.deepEqual(integrity, [{ integrity_check: "ok" }], `${context}: integrity_check`);
  assert.deepEqual(node.readPos(db), posAfterRestart, `${context}: the checkpoint moved the position`);

  const present = new Set(batchRows.map((row) => row.id as number));
  const missing = acked.filter((id) => !present.has(id));
  assert.deepEqual(
    missing,
    [],
    `${context}: acknowledged batches missing after recovery (of ${acked.length})`,
  );
  ACK_WRITER_CONSISTENCY_QUERIES.forEach((query, i) => {
    assert.deepEqual(consistency[i], [{ bad: 0 }], `${context}: half-applied transaction: ${query.name}`);
  });

  await verifyLtxChainMatchesDatabase({
    dbFile: dbPath,
    posFile: node.posPath(db),
    ltxDir: node.ltxDir(db),
    scratchDir,
  }).catch((err: Error) => {
    throw new Error(`${context} (position after restart ${formatPos(posAfterRestart)}): ${err.message}`);
  });
}
