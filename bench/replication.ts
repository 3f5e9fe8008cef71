// Replication, measured on loopback with real `litefs mount` processes (one primary, one replica):
//
// 1. Lag: a writer commits one small row per transaction through the primary's mount at a steady rate;
//    a reader process polls the replica's mount (SELECT max(id), one read transaction every ~0.5 ms)
//    and notes when each row first becomes readable there (and how long each of its read
//    transactions took: the replica's read latency while it applies). Lag = readable on the replica − COMMIT
//    returned on the primary, both on CLOCK_MONOTONIC. Printed as p50/p99/max per journal mode, beside
//    the primary's own COMMIT latency measured in the same run (the ratio says how many commit times
//    a transaction takes to reach a replica).
// 2. Snapshot catch-up: a database of --snapshot-mb MiB is imported on the primary, then a new replica
//    starts and the time until its position equals the primary's gives MB/s — beside a plain copy of
//    the same file on the same disk in the same run (cp, page cache dropped neither time).
//
//   node dist/bench/replication.js [--seconds N] [--rate TX_PER_S] [--modes WAL,DELETE]
//                                  [--snapshot-mb N] [--json FILE]
//   defaults: 10 s per mode at 100 tx/s, modes WAL and DELETE, 1024 MiB snapshot (~1 min in all on
//   this VM; --snapshot-mb 128 for a quick run; --seconds 0 or --snapshot-mb 0 skips a part). Goals
//   (issue 5): lag p99 < 20 ms; catch-up ≥ 200 MB/s.

import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import Database from "better-sqlite3";

import { LitefsNode } from "../test/support/litefs-node.js";
import { runLitefsCli } from "../test/support/litefs-cli.js";
import { makeTempDir, removeTempDir } from "../test/support/temp-dir.js";
import { readPosText, replicaConfig, waitForRecords } from "../test/replication/cluster.js";

const THIS_FILE = fileURLToPath(import.meta.url);
/** The replica poller's pause between read transactions (its resolution; it adds ≤ this to each lag). */
const POLL_MS = 0.5;

interface Options {
  seconds: number;
  rate: number;
  modes: string[];
  snapshotMb: number;
  json: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "10" },
      rate: { type: "string", default: "100" },
      modes: { type: "string", default: "WAL,DELETE" },
      "snapshot-mb": { type: "string", default: "1024" },
      json: { type: "string" },
      "poll-replica": { type: "string" },
    },
  });
  return {
    seconds: Number(values.seconds),
    rate: Number(values.rate),
    modes: values.modes.split(",").map((m) => m.trim().toUpperCase()),
    snapshotMb: Number(values["snapshot-mb"]),
    json: values.json,
  };
}

const nowNs = (): bigint => process.hrtime.bigint();

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Child mode: polls `db` until row `last` is visible; prints one "id ns" line per newly seen row, then
 * "reads <ms> <ms> …": how long each read transaction took (the replica's read latency under the
 * replication load — a replica's main thread blocked in a system call delays its FUSE reads).
 */
function pollReplica(spec: string): void {
  const { db: file, last } = JSON.parse(spec) as { db: string; last: number };
  const db = new Database(file, { timeout: 10_000 });
  const max = db.prepare("SELECT coalesce(max(id), 0) AS m FROM t");
  let seen = (max.get() as { m: number }).m;
  process.stdout.write(`ready ${seen}\n`);
  const out: string[] = [];
  const reads: number[] = [];
  while (seen < last) {
    const started = nowNs();
    const m = (max.get() as { m: number }).m;
    reads.push(Number(nowNs() - started) / 1e6);
    if (m > seen) {
      const at = nowNs();
      for (let id = seen + 1; id <= m; id++) out.push(`${id} ${at}`);
      seen = m;
    } else {
      sleepMs(POLL_MS);
    }
  }
  db.close();
  process.stdout.write(out.join("\n") + "\n");
  process.stdout.write(`reads ${reads.map((ms) => ms.toFixed(3)).join(" ")}\n`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

interface LagResult {
  mode: string;
  transactions: number;
  lagMs: { p50: number; p99: number; max: number };
  commitMs: { p50: number; p99: number };
  /** The replica poller's read transactions (SELECT max(id)) while the writer ran. */
  readMs: { p50: number; p99: number; max: number };
}

async function measureLag(
  primary: LitefsNode,
  replica: LitefsNode,
  mode: string,
  o: Options,
): Promise<LagResult> {
  const name = `lag-${mode.toLowerCase()}.db`;
  const writer = new Database(primary.dbPath(name), { timeout: 10_000 });
  writer.pragma(`journal_mode = ${mode}`);
  if (mode === "WAL") writer.pragma("synchronous = NORMAL");
  writer.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
  await waitForPosition(primary, replica, name);
  const count = Math.round(o.seconds * o.rate);
  const child = spawn(
    process.execPath,
    [THIS_FILE, "--poll-replica", JSON.stringify({ db: replica.dbPath(name), last: count })],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  while (!output.includes("\n")) await new Promise((r) => setTimeout(r, 10));

  const insert = writer.prepare("INSERT INTO t (id, v) VALUES (?, 'x')");
  const committedAt: bigint[] = [0n];
  const commitMs: number[] = [];
  const intervalNs = BigInt(Math.round(1e9 / o.rate));
  let next = nowNs();
  for (let id = 1; id <= count; id++) {
    for (let wait = next - nowNs(); wait > 0n; wait = next - nowNs()) {
      if (wait > 2_000_000n) await new Promise((r) => setTimeout(r, Number(wait / 1_000_000n) - 1));
      else await new Promise((r) => setImmediate(r));
    }
    const start = nowNs();
    insert.run(id);
    const done = nowNs();
    committedAt.push(done);
    commitMs.push(Number(done - start) / 1e6);
    next += intervalNs;
  }
  await exited;
  writer.close();
  const lags: number[] = [];
  const reads: number[] = [];
  for (const line of output.split("\n").slice(1)) {
    if (line.startsWith("reads ")) {
      for (const ms of line.slice(6).split(" ")) reads.push(Number(ms));
      continue;
    }
    const [id, at] = line.split(" ");
    if (at === undefined) continue;
    lags.push(Number(BigInt(at) - committedAt[Number(id)]) / 1e6);
  }
  lags.sort((a, b) => a - b);
  commitMs.sort((a, b) => a - b);
  reads.sort((a, b) => a - b);
  return {
    mode,
    transactions: lags.length,
    lagMs: { p50: quantile(lags, 0.5), p99: quantile(lags, 0.99), max: lags[lags.length - 1] },
    commitMs: { p50: quantile(commitMs, 0.5), p99: quantile(commitMs, 0.99) },
    readMs: { p50: quantile(reads, 0.5), p99: quantile(reads, 0.99), max: reads[reads.length - 1] },
  };
}

async function waitForPosition(
  primary: LitefsNode,
  replica: LitefsNode,
  db: string,
  timeoutMs = 600_000,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    const want = readPosText(primary, db);
    if (want !== null && readPosText(replica, db) === want) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`replica did not reach ${want} for ${db}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A SQLite database of about `mb` MiB: rows of text that compress about 3× and some random bytes. */
function buildDatabase(file: string, mb: number): number {
  const db = new Database(file);
  db.pragma("page_size = 4096");
  db.pragma("journal_mode = OFF");
  db.pragma("synchronous = OFF");
  db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, body TEXT, salt BLOB)");
  const insert = db.prepare("INSERT INTO big (name, body, salt) VALUES (?, ?, randomblob(64))");
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
  const rowsPerBatch = 10_000;
  for (let batch = 0; fs.statSync(file).size < mb * 1024 * 1024; batch++) {
    db.transaction(() => {
      for (let i = 0; i < rowsPerBatch; i++) {
        const n = batch * rowsPerBatch + i;
        let body = "";
        for (let w = 0; w < 60; w++) body += words[(n * 7 + w * 13) % words.length] + " ";
        insert.run(`row ${n}`, body);
      }
    })();
  }
  db.close();
  return fs.statSync(file).size;
}

async function main(): Promise<void> {
  const o = options();
  const work = makeTempDir("bench-replication");
  const nodes: LitefsNode[] = [];
  const results: { lag: LagResult[]; snapshot?: Record<string, number> } = { lag: [] };
  try {
    const primary = await LitefsNode.start({ baseDir: path.join(work, "primary"), retention: "1h" });
    nodes.push(primary);
    const replica = await LitefsNode.start({
      baseDir: path.join(work, "replica"),
      config: replicaConfig(primary),
    });
    nodes.push(replica);

    for (const mode of o.seconds > 0 ? o.modes : []) {
      const r = await measureLag(primary, replica, mode, o);
      results.lag.push(r);
      console.log(
        `lag ${mode.padEnd(6)} ${r.transactions} tx at ${o.rate}/s: p50 ${r.lagMs.p50.toFixed(2)} ms, ` +
          `p99 ${r.lagMs.p99.toFixed(2)} ms, max ${r.lagMs.max.toFixed(2)} ms ` +
          `(primary COMMIT p50 ${r.commitMs.p50.toFixed(2)} ms: lag p50 = ${(r.lagMs.p50 / r.commitMs.p50).toFixed(1)}× commit; goal p99 < 20 ms)`,
      );
      console.log(
        `  replica read transaction meanwhile: p50 ${r.readMs.p50.toFixed(3)} ms, ` +
          `p99 ${r.readMs.p99.toFixed(3)} ms, max ${r.readMs.max.toFixed(2)} ms`,
      );
    }

    if (o.snapshotMb > 0) {
      await replica.stop(); // alone with the primary: it would take the import live meanwhile
      const source = path.join(work, "big.db");
      const bytes = buildDatabase(source, o.snapshotMb);
      const copy = path.join(work, "big-copy.db");
      let started = performance.now();
      execFileSync("cp", [source, copy]);
      execFileSync("sync");
      const copyMs = performance.now() - started;
      fs.rmSync(copy);
      const imported = await runLitefsCli(["import", "--name", "big.db", "--url", primary.httpUrl, source], {
        timeoutMs: 1_800_000,
      });
      if (imported.code !== 0) throw new Error(`import failed: ${imported.stderr}`);
      execFileSync("sync"); // the import's writeback must not run into the measurement
      started = performance.now();
      const late = await LitefsNode.start({
        baseDir: path.join(work, "late"),
        config: replicaConfig(primary),
      });
      nodes.push(late);
      await waitForPosition(primary, late, "big.db");
      const totalMs = performance.now() - started;
      const [applied] = await waitForRecords(late, "snapshot applied", 1, (r) => r.db === "big.db");
      const streamMs = Number(applied.ms);
      const [sent] = await waitForRecords(primary, "snapshot sent", 1, (r) => r.db === "big.db");
      const mbps = bytes / 1e6 / (streamMs / 1000);
      const cpMbps = bytes / 1e6 / (copyMs / 1000);
      results.snapshot = { bytes, streamMs, totalMs, mbps, cpMbps, ltxBytes: Number(applied.ltxBytes) };
      console.log(
        `snapshot catch-up of ${(bytes / 1048576).toFixed(0)} MiB (${(Number(applied.ltxBytes) / 1048576).toFixed(0)} MiB on the wire): ` +
          `${(streamMs / 1000).toFixed(2)} s = ${mbps.toFixed(0)} MB/s from LTX_BEGIN to applied ` +
          `(primary done sending after ${(Number(sent.ms) / 1000).toFixed(2)} s; ` +
          `${(totalMs / 1000).toFixed(2)} s from starting the replica process); cp+sync of the file: ` +
          `${cpMbps.toFixed(0)} MB/s, ratio ${(mbps / cpMbps).toFixed(2)}; goal ≥ 200 MB/s`,
      );
    }
  } finally {
    for (const node of nodes.reverse()) await node.cleanup().catch(() => undefined);
    removeTempDir(work);
  }
  if (o.json !== undefined) fs.writeFileSync(o.json, JSON.stringify(results, null, 2) + "\n");
}

const pollArg = process.argv.indexOf("--poll-replica");
if (pollArg >= 0) pollReplica(process.argv[pollArg + 1]);
else await main();
