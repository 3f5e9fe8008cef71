// One process of the rolling-back-writer load (rollback-race-kit.ts): job JSON in argv[2], one JSON
// summary line on stdout when `durationMs` has passed.
// - "writer": a DELETE-mode better-sqlite3 connection that begins, inserts one small row and rolls
//   back, in a loop (every `commitEvery`-th transaction commits instead). The page cache is large and
//   the transaction small, so a rollback ends holding RESERVED only (it never reached PENDING): the
//   case where SQLite deletes the journal and only then drops RESERVED.
// - "reader": a read-only better-sqlite3 connection querying in a loop; errors are counted by code
//   (SQLITE_READONLY_ROLLBACK is the race) and the connection is reopened after one.
import * as fs from "node:fs";
import Database from "better-sqlite3";

interface Job {
  role: "writer" | "reader";
  db: string;
  durationMs: number;
  commitEvery: number;
}

const job = JSON.parse(process.argv[2] ?? "") as Job;
const end = Date.now() + job.durationMs;
const errors: Record<string, number> = {};
const samples: string[] = [];
const count = (err: unknown): void => {
  const code = (err as { code?: string }).code ?? "UNKNOWN";
  errors[code] = (errors[code] ?? 0) + 1;
  if (samples.length < 5) samples.push(`${code}: ${(err as Error).message}`);
};

if (job.role === "writer") {
  const db = new Database(job.db, { timeout: 10_000 });
  db.pragma("journal_mode = DELETE");
  db.pragma("cache_size = -65536");
  const insert = db.prepare("INSERT INTO t (v) VALUES (randomblob(64))");
  let rollbacks = 0;
  let commits = 0;
  fs.writeSync(1, "started\n");
  for (let n = 1; Date.now() < end; n++) {
    try {
      db.exec("BEGIN");
      insert.run();
      if (n % job.commitEvery === 0) {
        db.exec("COMMIT");
        commits++;
      } else {
        db.exec("ROLLBACK");
        rollbacks++;
      }
    } catch (err) {
      count(err);
      if (db.inTransaction) db.exec("ROLLBACK");
    }
  }
  db.close();
  fs.writeSync(1, JSON.stringify({ rollbacks, commits, errors, samples }) + "\n");
} else {
  const open = (): Database.Database => new Database(job.db, { readonly: true, timeout: 10_000 });
  let db = open();
  let ok = 0;
  fs.writeSync(1, "started\n");
  while (Date.now() < end) {
    try {
      db.prepare("SELECT count(*) AS n FROM t").get();
      ok++;
    } catch (err) {
      count(err);
      db.close();
      db = open();
    }
  }
  db.close();
  fs.writeSync(1, JSON.stringify({ ok, errors, samples }) + "\n");
}
