// SQLite through our mount, side by side in one run with the same disk without FUSE, libfuse's C
// passthrough (the floor of any FUSE daemon) and — when built — our FUSE library's plain passthrough
// example (which separates the FUSE library's cost from the mount's own: commit capture, LTX files) —
// `node-passthrough` answering SQLite's locks itself, `node-passthrough-kl` leaving them to the kernel
// as the C passthrough and the default litefs do (the like-for-like ceiling of our request path).
//
//   node dist/bench/mount.js [--rounds N] [--seconds N] [--bulk-mb N] [--speedtest-size N]
//                            [--targets a,b,…] [--measures a,b,…] [--json FILE]
//   targets: plain, c-passthrough, node-passthrough, node-passthrough-kl, litefs, litefs-table-locks
//            (default: all that are available)
//   measures: writeWal, writeDelete, readWal, readDelete, bulkWal, speedtestDelete, speedtestWal
//            (default: all)
//   defaults: 3 rounds, 2 s per rate, 64 MB bulk, speedtest1 --size 10 (about 3 minutes in all)
//
// Measures, per target: write transactions/s (one small INSERT per transaction) in WAL with
// synchronous=NORMAL and in DELETE with synchronous=FULL; read queries/s (point SELECTs, each its own
// read transaction) in both modes; bulk load MB/s (one transaction of random 4 KiB blobs, WAL); and
// SQLite's speedtest1 total time in DELETE and WAL mode. `litefs` runs a node as configured by default
// (`fuse.kernel-locks: true`: the kernel keeps SQLite's locks, docs/store.md "Kernel-locks mode");
// `litefs-table-locks` is the same node with `fuse.kernel-locks: false` (the mount answers every fcntl
// lock itself, as LiteFS does). (Before session 7 these two were named `litefs-kernel-locks` and
// `litefs`.) All
// targets are mounted at once and measured in turn, measure by measure, for N rounds; prints the median
// of each figure and the ratio of each litefs target to C (for times: C time / our time, so that above
// 1 is faster in every row). The goal from issue 4: ≥ 0.5 of C on writes and ≥ 0.67 on reads, while
// capturing every transaction as an LTX file.
//
// The client (better-sqlite3) runs in this process; every file system server runs in its own process,
// so the client never shares a thread with a server. Everything lives under $TMPDIR (default /tmp).
// LiteFS creates one file per transaction; on an ext4 without a journal, creating a file right after
// many deletions nearby (a test suite in /tmp, a DELETE-mode journal per transaction) costs up to ~1 ms
// of kernel CPU (docs/store.md "What costs what"): compare against TMPDIR on a quiet directory.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { runCommand } from "../test/support/litefs-cli.js";
import { LitefsNode } from "../test/support/litefs-node.js";
import { listLtxFiles } from "../test/support/ltx-chain.js";
import type { MountProcess } from "../test/support/mount-process.js";
import { NODE_PASSTHROUGH, startCPassthrough, startNodePassthrough } from "../test/support/passthrough.js";
import { REPO_ROOT } from "../test/support/paths.js";
import { makeTempDir, removeTempDir } from "../test/support/temp-dir.js";

type TargetName =
  "plain" | "c-passthrough" | "node-passthrough" | "node-passthrough-kl" | "litefs" | "litefs-table-locks";
const ALL_TARGETS: readonly TargetName[] = [
  "plain",
  "c-passthrough",
  "node-passthrough",
  "node-passthrough-kl",
  "litefs",
  "litefs-table-locks",
];
const LITEFS_TARGETS: readonly TargetName[] = ["litefs", "litefs-table-locks"];

interface Options {
  seconds: number;
  bulkMb: number;
  speedtestSize: number;
  targets: TargetName[];
  /** Keys of MEASURES to run (all by default). */
  measures: string[];
  rounds: number;
  json: string | undefined;
}

interface Measure {
  key: string;
  label: string;
  unit: string;
  /** "rate": higher is better, ratio ours/C; "time": lower is better, ratio C/ours. */
  kind: "rate" | "time";
  /** The goal for ours relative to C, if the issue sets one. */
  goal?: number;
}

const MEASURES: readonly Measure[] = [
  { key: "writeWal", label: "write tx/s, WAL, synchronous=NORMAL", unit: "tx/s", kind: "rate", goal: 0.5 },
  {
    key: "writeDelete",
    label: "write tx/s, DELETE, synchronous=FULL",
    unit: "tx/s",
    kind: "rate",
    goal: 0.5,
  },
  { key: "readWal", label: "read queries/s, WAL", unit: "q/s", kind: "rate", goal: 0.67 },
  { key: "readDelete", label: "read queries/s, DELETE", unit: "q/s", kind: "rate", goal: 0.67 },
  { key: "bulkWal", label: "bulk load, WAL, one transaction", unit: "MB/s", kind: "rate", goal: 0.5 },
  { key: "speedtestDelete", label: "speedtest1 total, DELETE", unit: "s", kind: "time" },
  { key: "speedtestWal", label: "speedtest1 total, WAL", unit: "s", kind: "time" },
];

type Results = Partial<Record<TargetName, Record<string, number>>>;
type Samples = Partial<Record<TargetName, Record<string, number[]>>>;

function parseOptions(argv: string[]): Options {
  const options: Options = {
    rounds: 3,
    seconds: 2,
    bulkMb: 64,
    speedtestSize: 10,
    targets: [...ALL_TARGETS],
    measures: MEASURES.map((m) => m.key),
    json: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case "--seconds":
        options.seconds = Number(value);
        i++;
        break;
      case "--bulk-mb":
        options.bulkMb = Number(value);
        i++;
        break;
      case "--speedtest-size":
        options.speedtestSize = Number(value);
        i++;
        break;
      case "--targets":
        options.targets = value.split(",") as TargetName[];
        i++;
        break;
      case "--measures":
        options.measures = value.split(",");
        i++;
        break;
      case "--rounds":
        options.rounds = Number(value);
        i++;
        break;
      case "--json":
        options.json = value;
        i++;
        break;
      default:
        throw new Error(`bench/mount: unknown argument ${argv[i]}`);
    }
  }
  for (const target of options.targets) {
    if (!ALL_TARGETS.includes(target)) throw new Error(`bench/mount: unknown target ${target}`);
  }
  for (const key of options.measures) {
    if (!MEASURES.some((m) => m.key === key)) throw new Error(`bench/mount: unknown measure ${key}`);
  }
  return options;
}

function speedtest1Binary(): string {
  const tool = path.resolve(REPO_ROOT, "..", "shared", "tools", "sqlite-testfixture");
  const out = execFileSync("bash", [process.env.SQLITE_TESTFIXTURE_TOOL ?? tool], { encoding: "utf8" });
  const line = out.split("\n").find((l) => l.startsWith("speedtest1="));
  if (line === undefined) throw new Error(`${tool} printed no speedtest1=`);
  return line.slice("speedtest1=".length);
}

/** Runs `body` repeatedly for `seconds` (after a short warm-up); returns operations per second. */
function ratePerSecond(seconds: number, body: () => void): number {
  for (let i = 0; i < 20; i++) body();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let count = 0;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 10; i++) body();
    count += 10;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - start) / 1e9);
}

function openDb(
  file: string,
  journalMode: "WAL" | "DELETE",
  synchronous: "NORMAL" | "FULL",
): Database.Database {
  const db = new Database(file, { timeout: 10_000 });
  db.pragma(`journal_mode=${journalMode}`);
  db.pragma(`synchronous=${synchronous}`);
  return db;
}

/** Unlinks a database and its side files (through the mount, so a litefs deletion is an LTX too). */
function removeDatabase(file: string): void {
  for (const suffix of ["", "-journal", "-wal", "-shm"]) fs.rmSync(file + suffix, { force: true });
}

function measureWrites(dir: string, journalMode: "WAL" | "DELETE", seconds: number, round: number): number {
  const file = path.join(dir, `write-${journalMode.toLowerCase()}-r${round}.db`);
  const db = openDb(file, journalMode, journalMode === "WAL" ? "NORMAL" : "FULL");
  try {
    db.exec("CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const insert = db.prepare("INSERT INTO w (v) VALUES (?)");
    const value = "x".repeat(100);
    return ratePerSecond(seconds, () => insert.run(value));
  } finally {
    db.close();
  }
}

const READ_ROWS = 10_000;

function measureReads(dir: string, journalMode: "WAL" | "DELETE", seconds: number): number {
  const file = path.join(dir, `read-${journalMode.toLowerCase()}.db`);
  if (!fs.existsSync(file)) {
    const setup = openDb(file, journalMode, "NORMAL");
    setup.exec("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const insert = setup.prepare("INSERT INTO r (id, v) VALUES (?, ?)");
    setup.transaction(() => {
      for (let id = 1; id <= READ_ROWS; id++) insert.run(id, `row ${id} `.padEnd(100, "."));
    })();
    setup.close();
  }
  const db = openDb(file, journalMode, "NORMAL");
  try {
    const select = db.prepare("SELECT v FROM r WHERE id = ?").pluck();
    let id = 1;
    return ratePerSecond(seconds, () => {
      id = (id * 7919 + 13) % READ_ROWS;
      if (select.get(id + 1) === undefined) throw new Error(`row ${id + 1} missing`);
    });
  } finally {
    db.close();
  }
}

function measureBulk(dir: string, megabytes: number, round: number): number {
  const file = path.join(dir, `bulk-r${round}.db`);
  const db = openDb(file, "WAL", "NORMAL");
  try {
    db.exec("CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    const rowBytes = 4000;
    const rows = Math.ceil((megabytes * 1e6) / rowBytes);
    const insert = db.prepare("INSERT INTO b (v) VALUES (randomblob(?))");
    const start = process.hrtime.bigint();
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(rowBytes);
    })();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return (rows * rowBytes) / 1e6 / seconds;
  } finally {
    db.close();
    removeDatabase(file);
  }
}

async function measureSpeedtest(
  binary: string,
  dir: string,
  size: number,
  journalMode: "delete" | "wal",
  round: number,
): Promise<number> {
  const file = path.join(dir, `speedtest-${journalMode}-r${round}.db`);
  try {
    const result = await runCommand(binary, ["--size", String(size), "--journal", journalMode, file], {
      cwd: dir,
      timeoutMs: 600_000,
    });
    const total = /TOTAL\.+\s+([0-9.]+)s/.exec(result.stdout);
    if (result.code !== 0 || total === null) {
      throw new Error(
        `speedtest1 in ${dir} failed (exit ${result.code})\n${result.stderr}${result.stdout.slice(-2000)}`,
      );
    }
    return Number(total[1]);
  } finally {
    removeDatabase(file);
  }
}

async function measure(
  key: string,
  dir: string,
  options: Options,
  speedtest: string,
  round: number,
): Promise<number> {
  switch (key) {
    case "writeWal":
      return measureWrites(dir, "WAL", options.seconds, round);
    case "writeDelete":
      return measureWrites(dir, "DELETE", options.seconds, round);
    case "readWal":
      return measureReads(dir, "WAL", options.seconds);
    case "readDelete":
      return measureReads(dir, "DELETE", options.seconds);
    case "bulkWal":
      return measureBulk(dir, options.bulkMb, round);
    case "speedtestDelete":
      return measureSpeedtest(speedtest, dir, options.speedtestSize, "delete", round);
    case "speedtestWal":
      return measureSpeedtest(speedtest, dir, options.speedtestSize, "wal", round);
    default:
      throw new Error(`bench/mount: no measure ${key}`);
  }
}

/** A directory to measure in, and how to take it down again. */
interface MountedTarget {
  name: TargetName;
  dir: string;
  cleanup(): Promise<void>;
  /** LTX files written so far (litefs only). */
  ltxFiles?(): number;
}

async function mountTarget(target: TargetName, base: string): Promise<MountedTarget> {
  const root = path.join(base, target);
  fs.mkdirSync(root, { recursive: true });
  if (target === "plain") return { name: target, dir: root, cleanup: async () => {} };
  if (target === "litefs" || target === "litefs-table-locks") {
    const node = await LitefsNode.start({
      baseDir: root,
      // The default log level: test nodes log a debug line per commit (test/support/litefs-node.ts),
      // which cost this bench's WAL figure ~3–8 % before session 9 (and the bench process the reading).
      config: { fuse: { "kernel-locks": target === "litefs" }, log: { format: "json", debug: false } },
    });
    return {
      name: target,
      dir: node.fuseDir,
      cleanup: () => node.cleanup(),
      ltxFiles: () =>
        fs
          .readdirSync(path.join(node.dataDir, "dbs"))
          .reduce((sum, db) => sum + listLtxFiles(node.ltxDir(db)).length, 0),
    };
  }
  const source = path.join(root, "src");
  const mountDir = path.join(root, "mnt");
  fs.mkdirSync(source);
  fs.mkdirSync(mountDir);
  const mount: MountProcess =
    target === "c-passthrough"
      ? await startCPassthrough(source, mountDir)
      : await startNodePassthrough(source, mountDir, { kernelLocks: target === "node-passthrough-kl" });
  return { name: target, dir: mountDir, cleanup: () => mount.cleanup() };
}

function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function format(value: number | undefined, unit: string): string {
  if (value === undefined) return "—";
  if (unit === "s") return value.toFixed(3);
  if (unit === "MB/s") return value.toFixed(1);
  return Math.round(value).toLocaleString("en-US");
}

function ratio(measure: Measure, ours: number | undefined, c: number | undefined): number | undefined {
  if (ours === undefined || c === undefined || ours === 0) return undefined;
  return measure.kind === "rate" ? ours / c : c / ours;
}

function printTable(results: Results, targets: readonly TargetName[]): void {
  const ours = targets.filter((t) => LITEFS_TARGETS.includes(t));
  const widths = [40, ...targets.map(() => 20), ...ours.map(() => 12), 8];
  const row = (cells: string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(" ");
  const ratioLabel = (t: TargetName): string => (t === "litefs" ? "litefs/C" : "tl/C");
  console.log(row(["measure", ...targets, ...ours.map(ratioLabel), "goal"]));
  for (const measure of MEASURES) {
    const value = (target: TargetName): number | undefined => results[target]?.[measure.key];
    const ratios = ours.map((t) => ratio(measure, value(t), value("c-passthrough")));
    console.log(
      row([
        `${measure.label} (${measure.unit})`,
        ...targets.map((target) => format(value(target), measure.unit)),
        ...ratios.map((r) => (r === undefined ? "—" : r.toFixed(2))),
        measure.goal === undefined ? "" : `≥ ${measure.goal}`,
      ]),
    );
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.targets.some((t) => t.startsWith("node-passthrough")) && !fs.existsSync(NODE_PASSTHROUGH)) {
    console.log(`(skipping node-passthrough: ${NODE_PASSTHROUGH} is not built)`);
    options.targets = options.targets.filter((t) => !t.startsWith("node-passthrough"));
  }
  const speedtest = speedtest1Binary();
  // Not /dev/shm: every target must sit on the same real disk, where fsync costs what it costs.
  const base = makeTempDir("bench-mount");
  const samples: Samples = {};
  const ltxFiles = new Map<TargetName, number>();
  const mounted: MountedTarget[] = [];
  let createCost: { before: number; after: number } | undefined;
  try {
    const before = fileCreateMicros(path.join(base, "create-cost-before"));
    for (const target of options.targets) mounted.push(await mountTarget(target, base));
    // Measure-major order, every round: a burst of load from elsewhere on the machine then hits all
    // targets of one measure alike instead of one target's whole column; the median drops outliers.
    for (let round = 0; round < options.rounds; round++) {
      for (const { key } of MEASURES.filter((m) => options.measures.includes(m.key))) {
        for (const target of mounted) {
          process.stderr.write(
            `bench/mount: round ${round + 1}/${options.rounds} ${key} on ${target.name}\n`,
          );
          const value = await measure(key, target.dir, options, speedtest, round);
          ((samples[target.name] ??= {})[key] ??= []).push(value);
        }
      }
    }
    for (const t of mounted) if (t.ltxFiles !== undefined) ltxFiles.set(t.name, t.ltxFiles());
    createCost = { before, after: fileCreateMicros(path.join(base, "create-cost-after")) };
  } finally {
    for (const target of mounted) await target.cleanup();
    removeTempDir(base);
  }
  const results: Results = {};
  for (const [target, byKey] of Object.entries(samples)) {
    results[target as TargetName] = Object.fromEntries(
      Object.entries(byKey).map(([key, values]) => [key, median(values)!]),
    );
  }
  console.log(
    `bench/mount: medians of ${options.rounds} rounds; ${options.seconds} s per rate, bulk ${options.bulkMb} MB, ` +
      `speedtest1 --size ${options.speedtestSize}; load average ${os.loadavg()[0].toFixed(1)}; ` +
      `${new Date().toISOString()}`,
  );
  printTable(results, options.targets);
  for (const [name, count] of ltxFiles) console.log(`LTX files written by ${name} during the run: ${count}`);
  if (createCost !== undefined) {
    console.log(
      `creating a file in TMPDIR: ${createCost.before.toFixed(0)} µs before the run, ` +
        `${createCost.after.toFixed(0)} µs after (litefs creates one per transaction: past ~200 µs it ` +
        `bounds the WAL write rate; see "What bounds WAL writes" in the README)`,
    );
  }
  if (options.json !== undefined) {
    fs.writeFileSync(options.json, JSON.stringify({ options, results, samples }, null, 2) + "\n");
  }
}

/**
 * Mean cost of creating one empty file in a new directory `dir` (200 files, kept: deleting them would
 * make the next creations nearby slower). On ext4 without a journal the inode allocator skips inodes
 * freed in the last 60–300 s, checking each one's inode-table block: after many deletions nearby a
 * create costs ~1 ms of kernel CPU instead of ~20–100 µs (perf: recently_deleted).
 */
function fileCreateMicros(dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  const count = 200;
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) fs.closeSync(fs.openSync(path.join(dir, `f${i}`), "wx"));
  return Number(process.hrtime.bigint() - started) / 1000 / count;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
