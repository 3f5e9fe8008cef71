// A write load that knows which transactions were acknowledged: a client process commits batches in a
// loop and prints "ack <batch id>" only after its COMMIT returned. A crash test kills the node under
// it and then checks that every acknowledged batch survived and that no batch is half there.
//
// Each batch is one transaction: k rows in `items` (ids batch*1000+j), one row in `batches` (k and the
// sum of the rows' amounts), and the running totals in `totals` — so a half-applied transaction shows
// up as a disagreement between the three tables. Every 10th transaction is rolled back on purpose
// (negative batch id), so any row with a negative batch id is a rolled-back change that leaked.
import * as path from "node:path";
import { PYTHON3, SUPPORT_DIST_DIR } from "./paths.js";
import { TrackedProcess } from "./tracked-process.js";
import type { JournalMode } from "./workload.js";

export type AckWriterClient = "python" | "better-sqlite3";

export interface AckWriterOptions {
  client: AckWriterClient;
  dbPath: string;
  journalMode: JournalMode;
  /** The first batch id to use: one more than the largest batch id already in the database. */
  firstBatchId: number;
  seed: number;
  /** Largest payload per item; batches of up to 40 items with payloads up to this spill over many pages. */
  payloadBytesMax: number;
}

/** Creates the tables (idempotent); run once, through any client, before the first writer starts. */
export const ACK_WRITER_SCHEMA = `
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, amount INTEGER NOT NULL, payload BLOB);
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, nitems INTEGER NOT NULL, total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS totals (k INTEGER PRIMARY KEY, batches INTEGER NOT NULL, items INTEGER NOT NULL, total INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0, 0);
CREATE INDEX IF NOT EXISTS items_batch ON items(batch);
`;

/**
 * Queries whose single row must have `bad = 0` when no transaction is half-applied and no rolled-back
 * one leaked.
 */
export const ACK_WRITER_CONSISTENCY_QUERIES: ReadonlyArray<{ name: string; sql: string }> = [
  {
    name: "batches vs totals.batches",
    sql: "SELECT (SELECT count(*) FROM batches) - (SELECT batches FROM totals WHERE k = 0) AS bad",
  },
  {
    name: "items vs totals.items",
    sql: "SELECT (SELECT count(*) FROM items) - (SELECT items FROM totals WHERE k = 0) AS bad",
  },
  {
    name: "sum of amounts vs totals.total",
    sql: "SELECT (SELECT coalesce(sum(amount), 0) FROM items) - (SELECT total FROM totals WHERE k = 0) AS bad",
  },
  {
    name: "batches whose items are incomplete",
    sql:
      "SELECT count(*) AS bad FROM batches b WHERE b.nitems != (SELECT count(*) FROM items i WHERE i.batch = b.id) " +
      "OR b.total != (SELECT coalesce(sum(amount), 0) FROM items i WHERE i.batch = b.id)",
  },
  {
    name: "items without their batch",
    sql: "SELECT count(*) AS bad FROM items i WHERE i.batch NOT IN (SELECT id FROM batches)",
  },
  { name: "rolled-back batches present", sql: "SELECT count(*) AS bad FROM items WHERE batch < 0" },
];

export class AckWriter {
  readonly process: TrackedProcess;
  /** Batch ids whose COMMIT returned to the client, in order. */
  readonly acked: number[] = [];
  #partial = "";

  private constructor(process: TrackedProcess) {
    this.process = process;
    process.child.stdout?.on("data", (chunk: string) => this.#onStdout(chunk));
  }

  static async start(options: AckWriterOptions): Promise<AckWriter> {
    const job = JSON.stringify({
      db: options.dbPath,
      journalMode: options.journalMode,
      firstBatchId: options.firstBatchId,
      seed: options.seed,
      payloadBytesMax: options.payloadBytesMax,
    });
    const command =
      options.client === "python"
        ? { command: PYTHON3, args: ["-c", PYTHON_WRITER, job] }
        : { command: process.execPath, args: [path.join(SUPPORT_DIST_DIR, "ack-writer-child.js"), job] };
    const tracked = await TrackedProcess.spawn({ label: `${options.client} ack writer`, ...command });
    return new AckWriter(tracked);
  }

  /** Resolves once at least `count` batches are acknowledged; rejects if the writer exits first or on timeout. */
  async waitForAcks(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.acked.length < count) {
      if (this.process.status !== undefined) {
        throw new Error(
          `writer exited after ${this.acked.length} acks, before ${count}\n${this.process.describe()}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`writer: only ${this.acked.length}/${count} acks in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /**
   * After the node was killed: gives the writer `graceMs` to notice (its calls fail) and exit, then
   * kills its process group. Resolves once it has exited; acks read until then count.
   */
  async finish(graceMs = 2_000): Promise<void> {
    await Promise.race([this.process.exit, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
    this.process.killGroup();
    await this.process.exit;
  }

  #onStdout(chunk: string): void {
    const lines = (this.#partial + chunk).split("\n");
    this.#partial = lines.pop() ?? "";
    for (const line of lines) {
      const match = /^ack (\d+)$/.exec(line);
      if (match !== null) this.acked.push(Number(match[1]));
    }
  }
}

/** The Python writer: job JSON in argv[1]; prints "ack <id>" after each COMMIT returned. */
const PYTHON_WRITER = `
import json, random, sqlite3, sys
job = json.loads(sys.argv[1])
rng = random.Random(job["seed"])
conn = sqlite3.connect(job["db"], timeout=10, isolation_level=None)
conn.execute("PRAGMA journal_mode=%s" % job["journalMode"]).fetchall()
batch = job["firstBatchId"]
n = 0
while True:
    n += 1
    k = rng.randint(1, 40 if rng.random() < 0.1 else 4)
    rollback = n % 10 == 0
    bid = -batch if rollback else batch
    conn.execute("BEGIN IMMEDIATE")
    total = 0
    for j in range(k):
        amount = rng.randint(1, 1000)
        total += amount
        size = rng.randint(0, job["payloadBytesMax"])
        conn.execute("INSERT INTO items VALUES (?, ?, ?, randomblob(?))", (bid * 1000 + j, bid, amount, size))
    conn.execute("INSERT INTO batches VALUES (?, ?, ?)", (bid, k, total))
    conn.execute("UPDATE totals SET batches = batches + 1, items = items + ?, total = total + ? WHERE k = 0", (k, total))
    if rollback:
        conn.execute("ROLLBACK")
        continue
    conn.execute("COMMIT")
    sys.stdout.write("ack %d\\n" % batch)
    sys.stdout.flush()
    batch += 1
`;
