// Side-by-side benchmark of one directory reached three ways in the same run:
//   direct — the backing directory itself (no FUSE);
//   C      — libfuse's example passthrough_ll (Debian fuse3 sources, default options: cache=normal,
//            1 s attr/entry timeouts, POSIX locks kept by the kernel because it has no setlk);
//   ours   — dist/examples/passthrough.js, run as its own process.
// and two explanatory runs of ours wrapped in fuse-request-counter.js:
//   ours-count — counts FUSE requests per operation (MiB, read, transaction, query; the figure
//                itself is not reported);
//   ours-kl    — (SQLite figures only) lock handlers hidden, so the kernel keeps POSIX locks locally as it does for C:
//                what ours would do without lock round trips (LiteFS needs them; see fuse-notes.md).
// Every FUSE server runs in its own process; the workloads run here with synchronous fs calls and
// better-sqlite3, so no client work shares an event loop with a server.
//
// Figures: sequential write and read (cold and cached) MB/s, 4 KiB random reads/s (cold after
// dropping the page cache, and cached), SQLite write transactions/s in WAL (synchronous=NORMAL) and
// DELETE (synchronous=FULL), and point-read queries/s in both modes. Prints a table with ours/C and
// C/direct; the goal is ours ≥ 67 % of C on every figure.
//
//   node dist/bench/fuse-passthrough.js [--mib 256] [--seconds 2] [--repeat 3] [--c-binary PATH] [--only figure,…]
//                                       [--targets direct,C,ours,ours-kl,ours-count]
//   (bench/fuse-passthrough.sh builds everything first.)

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { isMounted, mountPassthrough } from "../test/fuse/helpers/passthrough-mount.js";
import { cPassthroughBinary } from "../test/support/passthrough.js";

interface Options {
  mib: number;
  seconds: number;
  repeat: number;
  cBinary: string;
  only: Set<string> | null;
  targets: Set<string>;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    mib: 256,
    seconds: 2,
    repeat: 3,
    cBinary: "",
    only: null,
    targets: new Set(["direct", "C", "ours", "ours-kl", "ours-count"]),
  };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--mib") o.mib = Number(v);
    else if (k === "--seconds") o.seconds = Number(v);
    else if (k === "--repeat") o.repeat = Number(v);
    else if (k === "--c-binary") o.cBinary = v;
    else if (k === "--only") o.only = new Set(v.split(","));
    else if (k === "--targets") o.targets = new Set(v.split(","));
    else throw new Error(`unknown argument ${k}`);
    i++;
  }
  if (o.cBinary === "") {
    o.cBinary = cPassthroughBinary();
  }
  return o;
}

type TargetName = "direct" | "C" | "ours" | "ours-kl" | "ours-count";

/** Request counts of a counting server since the previous call (see fuse-request-counter.ts). */
interface Probe {
  counts(): Record<string, number>;
}

interface Target {
  readonly name: TargetName;
  readonly dir: string;
  /** Only SQLite figures are run on it (the extra, explanatory targets). */
  readonly sqliteOnly: boolean;
  readonly probe?: Probe;
  stop(): Promise<void>;
}

async function waitMounted(dir: string, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!isMounted(dir)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not mount ${dir}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function stopper(child: ChildProcess, mnt: string): () => Promise<void> {
  return async () => {
    if (isMounted(mnt)) spawnSync("umount", [mnt]);
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
  };
}

async function startC(binary: string, src: string, mnt: string): Promise<Target> {
  const child = spawn(binary, ["-o", `source=${src}`, "-f", mnt], { stdio: "ignore" });
  await waitMounted(mnt, child, "C passthrough");
  return { name: "C", dir: mnt, sqliteOnly: false, stop: stopper(child, mnt) };
}

async function startOurs(src: string, mnt: string): Promise<Target> {
  const m = await mountPassthrough(src, mnt);
  return { name: "ours", dir: mnt, sqliteOnly: false, stop: () => m.unmount() };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Our passthrough wrapped in fuse-request-counter.js; `kernelLocks` hides its lock handlers. */
async function startCounter(name: "ours-kl" | "ours-count", src: string, mnt: string): Promise<Target> {
  const countsFile = path.join(path.dirname(mnt), `${name}.counts.json`);
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "fuse-request-counter.js");
  const args = [script, "--counts", countsFile, ...(name === "ours-kl" ? ["--kernel-locks"] : []), src, mnt];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  await waitMounted(mnt, child, name);
  const probe: Probe = {
    // Synchronous on purpose: the workloads are synchronous, and no request of the measured part
    // may be counted before the reset is done.
    counts: () => {
      fs.rmSync(countsFile, { force: true });
      child.kill("SIGUSR2");
      const deadline = Date.now() + 5000;
      while (!fs.existsSync(countsFile)) {
        if (Date.now() > deadline) throw new Error(`${name}: no counts`);
        Atomics.wait(sleeper, 0, 0, 1);
      }
      return JSON.parse(fs.readFileSync(countsFile, "utf8")) as Record<string, number>;
    },
  };
  return { name, dir: mnt, sqliteOnly: name === "ours-kl", probe, stop: stopper(child, mnt) };
}

function dropCaches(): void {
  spawnSync("sync");
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
}

const MiB = 1024 * 1024;

function seqWrite(dir: string, mib: number): number {
  const file = path.join(dir, "seq.bin");
  fs.rmSync(file, { force: true });
  const buf = Buffer.alloc(MiB, 0x5a);
  const fd = fs.openSync(file, "w");
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < mib; i++) fs.writeSync(fd, buf, 0, MiB, i * MiB);
  fs.closeSync(fd);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return mib / s;
}

/** Reads the whole file sequentially through `fd`; returns MB/s. */
function seqReadFd(fd: number, mib: number): number {
  const buf = Buffer.alloc(MiB);
  const t0 = process.hrtime.bigint();
  let total = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, MiB, total);
    if (n === 0) break;
    total += n;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (total !== mib * MiB) throw new Error(`read ${total} bytes, expected ${mib * MiB}`);
  return mib / s;
}

/** `count` random 4 KiB preads through `fd` from a fixed sequence; returns reads/s. */
function randomReads(fd: number, mib: number, count: number, seed: number): number {
  const buf = Buffer.alloc(4096);
  const pages = (mib * MiB) / 4096;
  let x = seed >>> 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    if (fs.readSync(fd, buf, 0, 4096, (x % pages) * 4096) !== 4096) throw new Error("short read");
  }
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function openDb(file: string, mode: "wal" | "delete"): Database.Database {
  const db = new Database(file);
  db.pragma(`journal_mode = ${mode}`);
  db.pragma(mode === "wal" ? "synchronous = normal" : "synchronous = full");
  db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  return db;
}

interface Measured {
  /** The figure, in its unit per second. */
  value: number;
  /** Requests the counting server saw per operation of the measured part, when it is a counting target. */
  perOp?: Record<string, number>;
}

/** Runs `step` (which does `batch` operations) for `seconds` between two probe readings. */
function timed(seconds: number, batch: number, probe: Probe | undefined, step: () => void): Measured {
  probe?.counts(); // reset: setup requests are not counted
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end) {
    step();
    n += batch;
  }
  const value = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  const counts = probe?.counts();
  const perOp =
    counts === undefined ? undefined : Object.fromEntries(Object.entries(counts).map(([k, c]) => [k, c / n]));
  return { value, perOp };
}

/** Single-row INSERT transactions (autocommit). */
function sqliteWrites(t: Target, mode: "wal" | "delete", seconds: number): Measured {
  const db = openDb(path.join(t.dir, `w-${mode}.db`), mode);
  try {
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const row = "x".repeat(100);
    for (let i = 0; i < 50; i++) insert.run(row); // warm-up
    return timed(seconds, 10, t.probe, () => {
      for (let i = 0; i < 10; i++) insert.run(row);
    });
  } finally {
    db.close();
  }
}

/** Point queries by primary key, each its own read transaction, over 10,000 rows. */
function sqliteReads(t: Target, mode: "wal" | "delete", seconds: number): Measured {
  const db = openDb(path.join(t.dir, `r-${mode}.db`), mode);
  try {
    const rows = 10_000;
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(`row ${i} ${"y".repeat(80)}`);
    })();
    const select = db.prepare("SELECT v FROM t WHERE id = ?").pluck();
    let x = 12345;
    return timed(seconds, 100, t.probe, () => {
      for (let i = 0; i < 100; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        if (select.get(1 + (x % rows)) === undefined) throw new Error("row missing");
      }
    });
  } finally {
    db.close();
  }
}

interface Figure {
  name: string;
  unit: string;
  sqlite: boolean;
  run(t: Target): Measured;
}

function figures(o: Options): Figure[] {
  /** Runs the measured part `f` between two probe readings (when the target counts requests). */
  const measure = (t: Target, ops: number, f: () => number): Measured => {
    t.probe?.counts();
    const value = f();
    const counts = t.probe?.counts();
    const perOp =
      counts === undefined
        ? undefined
        : Object.fromEntries(Object.entries(counts).map(([k, c]) => [k, c / ops]));
    return { value, perOp };
  };
  const withFile = (t: Target, f: (fd: number) => Measured): Measured => {
    const fd = fs.openSync(path.join(t.dir, "seq.bin"), "r");
    try {
      return f(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  const all: Figure[] = [
    {
      name: "seq-write",
      unit: "MB/s",
      sqlite: false,
      run: (t) => measure(t, o.mib, () => seqWrite(t.dir, o.mib)),
    },
    {
      name: "seq-read-cold",
      unit: "MB/s",
      sqlite: false,
      run: (t) => {
        dropCaches();
        return withFile(t, (fd) => measure(t, o.mib, () => seqReadFd(fd, o.mib)));
      },
    },
    {
      name: "seq-read-cached",
      unit: "MB/s",
      sqlite: false,
      run: (t) =>
        withFile(t, (fd) => {
          seqReadFd(fd, o.mib);
          return measure(t, o.mib, () => seqReadFd(fd, o.mib));
        }),
    },
    {
      name: "rand-4k-cold",
      unit: "reads/s",
      sqlite: false,
      run: (t) => {
        dropCaches();
        return withFile(t, (fd) => measure(t, 3000, () => randomReads(fd, o.mib, 3000, 7)));
      },
    },
    {
      name: "rand-4k-cached",
      unit: "reads/s",
      sqlite: false,
      run: (t) =>
        withFile(t, (fd) => {
          seqReadFd(fd, o.mib);
          return measure(t, 200_000, () => randomReads(fd, o.mib, 200_000, 11));
        }),
    },
    { name: "sqlite-wal-write", unit: "tx/s", sqlite: true, run: (t) => sqliteWrites(t, "wal", o.seconds) },
    {
      name: "sqlite-delete-write",
      unit: "tx/s",
      sqlite: true,
      run: (t) => sqliteWrites(t, "delete", o.seconds),
    },
    { name: "sqlite-wal-read", unit: "q/s", sqlite: true, run: (t) => sqliteReads(t, "wal", o.seconds) },
    {
      name: "sqlite-delete-read",
      unit: "q/s",
      sqlite: true,
      run: (t) => sqliteReads(t, "delete", o.seconds),
    },
  ];
  return all.filter((f) => o.only === null || o.only.has(f.name));
}

function fmt(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return "-";
  return x >= 100 ? Math.round(x).toString() : x.toFixed(1);
}

function pct(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined) return "-";
  return `${Math.round((a / b) * 100)} %`;
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows)
    console.log(row.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
}

function describePerOp(perOp: Record<string, number>): string {
  const total = Object.values(perOp).reduce((a, b) => a + b, 0);
  const parts = Object.entries(perOp)
    .filter(([, n]) => n >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n.toFixed(1)}`);
  return parts.length === 0 ? "no requests" : `${total.toFixed(1)} = ${parts.join(", ")}`;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "bench-fuse-"));
  const dir = (d: string): string => {
    const p = path.join(base, d);
    fs.mkdirSync(p);
    return p;
  };
  const targets: Target[] = [];
  if (o.targets.has("direct"))
    targets.push({ name: "direct", dir: dir("direct"), sqliteOnly: false, stop: async () => {} });
  try {
    if (o.targets.has("C")) targets.push(await startC(o.cBinary, dir("c-src"), dir("c-mnt")));
    if (o.targets.has("ours")) targets.push(await startOurs(dir("ours-src"), dir("ours-mnt")));
    if (o.targets.has("ours-kl")) targets.push(await startCounter("ours-kl", dir("kl-src"), dir("kl-mnt")));
    if (o.targets.has("ours-count"))
      targets.push(await startCounter("ours-count", dir("cnt-src"), dir("cnt-mnt")));
    console.log(
      `fuse-passthrough bench: ${o.mib} MiB file, ${o.seconds} s per SQLite figure, median of ${o.repeat}, ` +
        `${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)}, ` +
        `targets ${targets.map((t) => t.name).join(", ")}`,
    );
    const rows: string[][] = [
      ["figure", "unit", "direct", "C", "ours", "ours/C", "C/direct", "goal", "ours-kl", "ours-kl/C"],
    ];
    const perOpLines: string[] = [];
    for (const f of figures(o)) {
      // Interleave targets per figure so that drift (disk, host, other load) hits all alike.
      // Each target runs `repeat` times, interleaved; the median is reported (this VM is noisy).
      const runs = new Map<TargetName, Measured[]>();
      for (let i = 0; i < o.repeat; i++) {
        for (const t of targets) {
          if (!f.sqlite && t.sqliteOnly) continue;
          runs.set(t.name, [...(runs.get(t.name) ?? []), f.run(t)]);
        }
      }
      const r = new Map<TargetName, Measured>();
      for (const [name, ms] of runs) {
        const sorted = ms.slice().sort((a, b) => a.value - b.value);
        r.set(name, { value: sorted[(sorted.length - 1) >> 1].value, perOp: ms[ms.length - 1].perOp });
      }
      const v = (n: TargetName): number | undefined => r.get(n)?.value;
      const oursC = (v("ours") ?? NaN) / (v("C") ?? NaN);
      rows.push([
        f.name,
        f.unit,
        fmt(v("direct")),
        fmt(v("C")),
        fmt(v("ours")),
        pct(v("ours"), v("C")),
        pct(v("C"), v("direct")),
        Number.isNaN(oursC) ? "-" : oursC >= 0.67 ? "ok" : "BELOW",
        fmt(v("ours-kl")),
        pct(v("ours-kl"), v("C")),
      ]);
      console.log(rows[rows.length - 1].join("\t"));
      const count = r.get("ours-count")?.perOp;
      const kl = r.get("ours-kl")?.perOp;
      const per =
        { "MB/s": "MiB", "reads/s": "read", "tx/s": "transaction", "q/s": "query" }[f.unit] ?? f.unit;
      if (count !== undefined)
        perOpLines.push(`${f.name.padEnd(20)} ours     ${describePerOp(count)} per ${per}`);
      if (kl !== undefined) perOpLines.push(`${"".padEnd(20)} ours-kl  ${describePerOp(kl)} per ${per}`);
    }
    console.log("");
    printTable(rows);
    if (perOpLines.length > 0) {
      console.log(
        "\nFUSE requests per operation through our passthrough (ours: POSIX locks answered by the file",
      );
      console.log(
        "system, as LiteFS needs; ours-kl: lock handlers hidden, so the kernel keeps locks as for C):",
      );
      for (const line of perOpLines) console.log(line);
    }
  } finally {
    for (const t of targets) await t.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

await main();
