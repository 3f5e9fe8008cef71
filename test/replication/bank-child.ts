// Child process of the replication tests: a "bank" on one database, either writing transfers through
// the primary's mount or reading them through a replica's, for a given time. Runs in its own process so
// that synchronous better-sqlite3 calls never block the test (or a FUSE server).
//
//   node bank-child.js '{"role":"writer", ...}'   → prints {"transfers": n}
//   node bank-child.js '{"role":"reader", ...}'   → prints {"reads": n, "busy": n, "violations": [...], "maxSeen": n}
//
// Schema: accounts(id, balance) — transfers move money between two accounts, so the sum never
// changes; ledger(id, amount, memo) gets one row per transfer with a memo of 1–6 KiB (a transaction
// touches several pages); meta.transfers counts them. A reader checks, in one read transaction, that
// the sum is the initial total, that ledger and meta agree, and — on one connection kept open across
// transactions, the way a reader caches pages — that the count never goes backwards.
import Database from "better-sqlite3";

interface WriterJob {
  role: "writer";
  dbPath: string;
  journalMode: string;
  accounts: number;
  durationMs: number;
  seed: number;
  /** Create the schema first. */
  init: boolean;
}

interface ReaderJob {
  role: "reader";
  dbPath: string;
  accounts: number;
  durationMs: number;
}

const BALANCE = 1000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function write(job: WriterJob): unknown {
  const db = new Database(job.dbPath, { timeout: 10_000 });
  db.pragma(`journal_mode = ${job.journalMode}`);
  if (job.init) {
    db.exec(`CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, memo BLOB);
             CREATE TABLE IF NOT EXISTS meta (k INTEGER PRIMARY KEY, transfers INTEGER NOT NULL);`);
    const insert = db.prepare("INSERT OR IGNORE INTO accounts VALUES (?, ?)");
    db.transaction(() => {
      for (let i = 1; i <= job.accounts; i++) insert.run(i, BALANCE);
      db.prepare("INSERT OR IGNORE INTO meta VALUES (0, 0)").run();
    })();
  }
  const random = mulberry32(job.seed);
  const move = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
  const log = db.prepare("INSERT INTO ledger (amount, memo) VALUES (?, randomblob(?))");
  const count = db.prepare("UPDATE meta SET transfers = transfers + 1 WHERE k = 0");
  const transfer = db.transaction((from: number, to: number, amount: number, memo: number) => {
    move.run(-amount, from);
    move.run(amount, to);
    log.run(amount, memo);
    count.run();
  });
  let transfers = 0;
  const end = Date.now() + job.durationMs;
  while (Date.now() < end) {
    const from = 1 + Math.floor(random() * job.accounts);
    const to = 1 + Math.floor(random() * job.accounts);
    transfer(from, to, 1 + Math.floor(random() * 50), 1024 + Math.floor(random() * 5 * 1024));
    transfers++;
  }
  db.close();
  return { transfers };
}

function read(job: ReaderJob): unknown {
  const total = job.accounts * BALANCE;
  const violations: string[] = [];
  let reads = 0;
  let busy = 0;
  let maxSeen = -1;
  let db = new Database(job.dbPath, { readonly: false, timeout: 10_000 });
  const end = Date.now() + job.durationMs;
  while (Date.now() < end) {
    if (reads % 200 === 199) {
      db.close(); // a fresh connection now and then: no cached pages at all
      db = new Database(job.dbPath, { timeout: 10_000 });
    }
    try {
      const row = db.transaction(() => ({
        sum: db.prepare("SELECT sum(balance) AS s, count(*) AS n FROM accounts").get() as {
          s: number;
          n: number;
        },
        ledger: (
          db.prepare("SELECT count(*) AS n, coalesce(sum(length(memo)), 0) AS bytes FROM ledger").get() as {
            n: number;
          }
        ).n,
        transfers: (db.prepare("SELECT transfers FROM meta WHERE k = 0").get() as { transfers: number })
          .transfers,
      }))();
      reads++;
      if (row.sum.s !== total || row.sum.n !== job.accounts) {
        violations.push(
          `read ${reads}: balance total ${row.sum.s} over ${row.sum.n} accounts, want ${total}`,
        );
      }
      if (row.ledger !== row.transfers) {
        violations.push(`read ${reads}: ${row.ledger} ledger rows but meta says ${row.transfers} transfers`);
      }
      if (row.transfers < maxSeen) {
        violations.push(`read ${reads}: ${row.transfers} transfers after having seen ${maxSeen} (stale)`);
      }
      maxSeen = Math.max(maxSeen, row.transfers);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      if (code.startsWith("SQLITE_BUSY")) busy++;
      else violations.push(`read ${reads}: ${code} ${(err as Error).message}`);
    }
    if (violations.length > 20) break;
  }
  db.close();
  return { reads, busy, violations, maxSeen };
}

const job = JSON.parse(process.argv[2]) as WriterJob | ReaderJob;
process.stdout.write(JSON.stringify(job.role === "writer" ? write(job) : read(job)) + "\n");
