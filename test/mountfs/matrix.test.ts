// Every journal mode × page size × client through one mounted primary, each case checked as
// matrix-case.ts describes (rows, one LTX per commit, byte-for-byte replay, `<db>-pos`).
// All 36 combinations run (each its own database on the same mount, two at a time); a clean restart at
// the end must keep every position. Replay a failure with LITEFS_TEST_SEED=<seed printed>.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { LitefsNode } from "../support/litefs-node.js";
import type { Pos } from "../support/pos.js";
import { testSeed } from "../support/prng.js";
import { SQL_CLIENTS } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { JOURNAL_MODES } from "../support/workload.js";
import { checkWorkload, describeMismatches } from "../support/workload-run.js";
import { type MatrixCase, matrixCase, matrixWorkload, runMatrixCase } from "./matrix-case.js";

const PAGE_SIZES = [512, 4096, 65536] as const;

const baseSeed = testSeed();
const cases: MatrixCase[] = [];
for (const journalMode of JOURNAL_MODES) {
  for (const pageSize of PAGE_SIZES) {
    for (const client of SQL_CLIENTS) {
      cases.push(matrixCase(journalMode, pageSize, client, baseSeed + cases.length));
    }
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
      const pos = await runMatrixCase(node, c, scratchDir);
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
      const mismatches = await checkWorkload(c.reader, node.dbPath(c.db), matrixWorkload(c));
      assert.equal(mismatches.length, 0, `${c.db} after restart:\n${describeMismatches(mismatches)}`);
    }
  });
});
