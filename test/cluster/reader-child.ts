// A read load for one node's mount: better-sqlite3 (read-only connection) runs a small query in a
// loop until `durationMs` has passed, then prints one JSON line {"ok", "failed", "errors"} and exits.
// A failed read is counted, its message kept (the first 20), and the connection reopened. Prints
// "reading" after the first successful read, so the parent knows the load is on.
//   node reader-child.js <db path> <durationMs>
import * as fs from "node:fs";
import Database from "better-sqlite3";

const [dbPath, durationText] = process.argv.slice(2);
const durationMs = Number(durationText);
if (dbPath === undefined || !Number.isFinite(durationMs)) {
  process.stderr.write("usage: reader-child.js <db path> <durationMs>\n");
  process.exit(2);
}

const open = (): Database.Database => new Database(dbPath, { readonly: true, timeout: 10_000 });
let db = open();
let ok = 0;
let failed = 0;
const errors: string[] = [];
const end = Date.now() + durationMs;
while (Date.now() < end) {
  try {
    const row = db.prepare("SELECT count(*) AS n, coalesce(max(id), 0) AS top FROM batches").get() as {
      n: number;
    };
    if (typeof row.n !== "number") throw new Error("no count");
    if (ok === 0) fs.writeSync(1, "reading\n");
    ok++;
  } catch (err) {
    failed++;
    if (errors.length < 20) errors.push(`${new Date().toISOString()} ${(err as Error).message}`);
    try {
      db.close();
    } catch {
      // the connection is broken already; a new one follows
    }
    db = open();
  }
}
db.close();
fs.writeSync(1, JSON.stringify({ ok, failed, errors }) + "\n");
