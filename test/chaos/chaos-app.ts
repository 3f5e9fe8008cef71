// The chaos suite's application, one per node behind the node's proxy: a tiny HTTP server over the
// node's mounted database. It opens the database per request (a connection never outlives a node
// restart or a role change) and answers:
//   POST /init          sets the journal mode (--journal-mode delete|wal) and creates the tables
//   POST /write?id=N    one transaction: the row (id, token) and counter + 1; 200 "inserted"/"present"
//                       once COMMIT returned — the acknowledgement the checker holds the cluster to
//   GET  /read?id=N     {rows, counter, has}: rows must equal counter in every snapshot (a write is
//                       all or nothing); `has` says whether row N is visible
// Errors: 503 with SQLite's message (read-only replica, disk full, I/O error, busy).
// Usage: node chaos-app.js --db PATH --port N [--journal-mode delete|wal]
// (prints "chaos app listening on PORT")
import * as http from "node:http";
import { parseArgs } from "node:util";

import Database from "better-sqlite3";

import { ackToken } from "./ack-token.js";

const { values } = parseArgs({
  options: { db: { type: "string" }, port: { type: "string" }, "journal-mode": { type: "string" } },
});
const journalMode = values["journal-mode"] ?? "delete";
if (!["delete", "wal"].includes(journalMode)) throw new Error(`chaos app: journal mode ${journalMode}`);
const dbPath = values.db ?? "";
if (dbPath === "") throw new Error("chaos app: --db is required");

const SCHEMA = `
CREATE TABLE IF NOT EXISTS acks (id INTEGER PRIMARY KEY, token TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counter (k INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES (0, 0);
`;

function withDb<T>(readonly: boolean, fn: (db: Database.Database) => T): T {
  const db = new Database(dbPath, { readonly, fileMustExist: readonly, timeout: 2_000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function handle(req: http.IncomingMessage): { status: number; body: unknown } {
  const url = new URL(req.url ?? "/", "http://app");
  const id = Number(url.searchParams.get("id"));
  if (req.method === "POST" && url.pathname === "/init") {
    withDb(false, (db) => {
      db.pragma(`journal_mode = ${journalMode}`);
      db.exec(SCHEMA);
    });
    return { status: 200, body: { ok: true } };
  }
  if (req.method === "POST" && url.pathname === "/write" && Number.isSafeInteger(id) && id > 0) {
    const outcome = withDb(false, (db) => {
      db.exec("BEGIN IMMEDIATE");
      try {
        const inserted = db.prepare("INSERT OR IGNORE INTO acks VALUES (?, ?)").run(id, ackToken(id)).changes;
        if (inserted === 1) db.prepare("UPDATE counter SET n = n + 1 WHERE k = 0").run();
        db.exec("COMMIT");
        return inserted === 1 ? "inserted" : "present";
      } catch (err) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw err;
      }
    });
    return { status: 200, body: { id, outcome } };
  }
  if (req.method === "GET" && url.pathname === "/read") {
    const state = withDb(true, (db) => {
      db.exec("BEGIN");
      try {
        const rows = (db.prepare("SELECT count(*) AS n FROM acks").get() as { n: number }).n;
        const counter = (db.prepare("SELECT n FROM counter WHERE k = 0").get() as { n: number }).n;
        const has =
          Number.isSafeInteger(id) &&
          id > 0 &&
          db.prepare("SELECT 1 FROM acks WHERE id = ?").get(id) !== undefined;
        return { rows, counter, has };
      } finally {
        db.exec("COMMIT");
      }
    });
    return { status: 200, body: state };
  }
  return { status: 404, body: { error: "no such route" } };
}

const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    let answer: { status: number; body: unknown };
    try {
      answer = handle(req);
    } catch (err) {
      answer = {
        status: 503,
        body: { error: (err as Error).message, code: (err as { code?: string }).code },
      };
    }
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(text);
  });
});
server.listen(Number(values.port ?? "0"), "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`chaos app listening on ${port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
