// The better-sqlite3 writer of AckWriter (see ack-writer.ts): job JSON in argv[2]; prints
// "ack <batch id>" after each COMMIT returned, with a synchronous write so the line is out before
// the next transaction starts (better-sqlite3 blocks the event loop, so an async write would wait).
import * as fs from "node:fs";
import Database from "better-sqlite3";
import { Prng } from "./prng.js";

interface Job {
  db: string;
  journalMode: string;
  firstBatchId: number;
  seed: number;
  payloadBytesMax: number;
}

const job = JSON.parse(process.argv[2]) as Job;
const prng = new Prng(job.seed);
const db = new Database(job.db, { timeout: 10_000 });
db.exec(`PRAGMA journal_mode=${job.journalMode}`);
const insertItem = db.prepare("INSERT INTO items VALUES (?, ?, ?, randomblob(?))");
const insertBatch = db.prepare("INSERT INTO batches VALUES (?, ?, ?)");
const updateTotals = db.prepare(
  "UPDATE totals SET batches = batches + 1, items = items + ?, total = total + ? WHERE k = 0",
);

let batch = job.firstBatchId;
for (let n = 1; ; n++) {
  const k = prng.int(1, prng.chance(0.1) ? 40 : 4);
  const rollback = n % 10 === 0;
  const id = rollback ? -batch : batch;
  db.exec("BEGIN IMMEDIATE");
  let total = 0;
  for (let j = 0; j < k; j++) {
    const amount = prng.int(1, 1000);
    total += amount;
    insertItem.run(id * 1000 + j, id, amount, prng.int(0, job.payloadBytesMax));
  }
  insertBatch.run(id, k, total);
  updateTotals.run(k, total);
  if (rollback) {
    db.exec("ROLLBACK");
    continue;
  }
  db.exec("COMMIT");
  fs.writeSync(1, `ack ${batch}\n`);
  batch++;
}
