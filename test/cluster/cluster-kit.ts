// What the failover tests share: the database and its schema, reading back which batches a node has,
// the consistency checks of the ack-writer load, and a read load on every node.
import assert from "node:assert/strict";
import * as path from "node:path";

import { ACK_WRITER_CONSISTENCY_QUERIES, ACK_WRITER_SCHEMA } from "../support/ack-writer.js";
import type { LeasedNode } from "../support/leased-cluster.js";
import { SUPPORT_DIST_DIR } from "../support/paths.js";
import { runSqlJob } from "../support/sql-clients.js";
import { TrackedProcess } from "../support/tracked-process.js";
import type { Ack } from "./following-writer.js";

export const DB = "failover.db";

/** Creates the ack-writer tables on the primary, in DELETE journal mode. */
export async function createSchema(primary: LeasedNode): Promise<void> {
  await runSqlJob("better-sqlite3", {
    dbPath: primary.node.dbPath(DB),
    pragmas: ["PRAGMA journal_mode=delete"],
    scripts: [ACK_WRITER_SCHEMA],
  });
}

/** Every batch id in the node's database. */
export async function batchIds(node: LeasedNode): Promise<Set<number>> {
  const rows = (
    await runSqlJob("better-sqlite3", { dbPath: node.node.dbPath(DB), queries: ["SELECT id FROM batches"] })
  ).results[0];
  return new Set(rows.map((r) => Number(r.id)));
}

/** Asserts that no transaction is half there and no rolled-back one leaked. */
export async function assertConsistent(node: LeasedNode): Promise<void> {
  const { results } = await runSqlJob("better-sqlite3", {
    dbPath: node.node.dbPath(DB),
    queries: ACK_WRITER_CONSISTENCY_QUERIES.map((q) => q.sql),
  });
  for (const [i, q] of ACK_WRITER_CONSISTENCY_QUERIES.entries()) {
    assert.equal(Number(results[i][0].bad), 0, `${node.name}: ${q.name}`);
  }
}

/** The acks whose batch is not in `present`. */
export function lostAcks(acks: readonly Ack[], present: ReadonlySet<number>): Ack[] {
  return acks.filter((a) => !present.has(a.batchId));
}

export interface ReadSummary {
  node: string;
  ok: number;
  failed: number;
  errors: string[];
}

/** A read load (test/cluster/reader-child.ts) on one node's mount for `durationMs`. */
export class ReadLoad {
  readonly node: LeasedNode;
  readonly process: TrackedProcess;

  private constructor(node: LeasedNode, process: TrackedProcess) {
    this.node = node;
    this.process = process;
  }

  /** Starts the reader and waits for its first successful read. */
  static async start(node: LeasedNode, durationMs: number): Promise<ReadLoad> {
    const process = await TrackedProcess.spawn({
      label: `reader on ${node.name}`,
      command: globalThis.process.execPath,
      args: [
        path.join(SUPPORT_DIST_DIR, "..", "cluster", "reader-child.js"),
        node.node.dbPath(DB),
        String(durationMs),
      ],
    });
    await process.waitForLine(/^reading$/, 15_000);
    return new ReadLoad(node, process);
  }

  /** Waits for the reader to finish and returns what it counted. */
  async result(): Promise<ReadSummary> {
    const status = await this.process.exit;
    const line = this.process.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .at(-1);
    assert.ok(
      status.code === 0 && line !== undefined,
      `reader on ${this.node.name} failed\n${this.process.describe()}`,
    );
    return { node: this.node.name, ...(JSON.parse(line) as Omit<ReadSummary, "node">) };
  }
}

/**
 * The writer is stopped with SIGKILL, possibly in the middle of a DELETE-mode commit: page 1 (pages are
 * written in order) may already be in the primary's database file while the journal is still hot. SQLite
 * rolls such a journal back at the next read-write open; until then the raw file differs from the last
 * committed state (at the change counter, bytes 24–27). Opening the database read-write on the primary
 * does that rollback, so byte comparisons afterwards see committed states only.
 */
export async function rollBackKilledWriter(primary: LeasedNode): Promise<void> {
  await runSqlJob("better-sqlite3", {
    dbPath: primary.node.dbPath(DB),
    queries: ["SELECT count(*) FROM batches"],
  });
}

/**
 * Skips a test that finds a known, unfixed bug (README "Known problems") unless LITEFS_KNOWN_BUGS=1:
 * it would turn the default suite red at random. No test uses it now; kept for the next such bug.
 */
export function knownBugSkip(bug: string): string | false {
  return process.env.LITEFS_KNOWN_BUGS === "1" ? false : `known bug (${bug}); LITEFS_KNOWN_BUGS=1 runs it`;
}
