// Child process for the journal tests: opens a database with better-sqlite3, runs the pragmas, BEGINs,
// runs the statements, prints "ready" and then waits — inside the open transaction — until the test
// SIGKILLs it, leaving behind whatever journal and database writes the transaction made so far.
// Job JSON in argv[2]: {"db": path, "pragmas": [sql], "statements": [sql]}.
import * as fs from "node:fs";
import Database from "better-sqlite3";

interface Job {
  db: string;
  pragmas: string[];
  statements: string[];
}

const job = JSON.parse(process.argv[2]) as Job;
const db = new Database(job.db);
for (const pragma of job.pragmas) db.exec(pragma);
db.exec("BEGIN");
for (const statement of job.statements) db.exec(statement);
// Synchronous: the line must be out before the test reacts, and nothing else runs here anyway.
fs.writeSync(1, "ready\n");
setInterval(() => undefined, 60_000);
