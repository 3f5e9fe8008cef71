// The rolling-back-writer load (issue #4): one DELETE-mode writer that rolls back transactions it
// holds only RESERVED for, and read-only connections of three clients querying the same database in a
// loop. A read-only connection that meets SQLite's hot-journal race (the rollback deleted the journal
// and then dropped RESERVED while the reader was between "the journal exists" and "open the journal")
// fails with SQLITE_READONLY_ROLLBACK ("attempt to write a readonly database"). Used on the mount in
// kernel-locks mode (rollback-race.test.ts) and, for reference, on a plain directory.
import * as path from "node:path";
import Database from "better-sqlite3";

import { SUPPORT_DIST_DIR } from "../support/paths.js";
import { TrackedProcess } from "../support/tracked-process.js";

export interface ReaderResult {
  readonly client: "better-sqlite3" | "python" | "sqlite3";
  readonly ok: number;
  /** SQLITE_READONLY_ROLLBACK ("attempt to write a readonly database"): the race. */
  readonly readonlyRollback: number;
  /** Any other failed query, by code (SQLITE_BUSY past the busy timeout would land here). */
  readonly otherErrors: Record<string, number>;
  readonly samples: readonly string[];
}

export interface RaceResult {
  readonly rollbacks: number;
  readonly commits: number;
  readonly writerErrors: Record<string, number>;
  readonly readers: readonly ReaderResult[];
}

const CHILD = path.join(SUPPORT_DIST_DIR, "..", "mountfs", "rollback-race-child.js");
const READONLY_ROLLBACK = "SQLITE_READONLY_ROLLBACK";

/** Python's read-only reader (`?mode=ro`); errors counted by SQLite's error name (Python ≥ 3.11). */
const PYTHON_READER = `
import json, sqlite3, sys, time
db, duration = sys.argv[1], float(sys.argv[2]) / 1000
def connect():
    return sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10, isolation_level=None)
conn = connect()
ok, errors, samples = 0, {}, []
print("started", flush=True)
end = time.monotonic() + duration
while time.monotonic() < end:
    try:
        conn.execute("SELECT count(*) FROM t").fetchall()
        ok += 1
    except sqlite3.Error as e:
        code = getattr(e, "sqlite_errorname", "UNKNOWN")
        errors[code] = errors.get(code, 0) + 1
        if len(samples) < 5: samples.append("%s: %s at %d" % (code, e, time.time() * 1000))
        conn.close()
        conn = connect()
conn.close()
print(json.dumps({"ok": ok, "errors": errors, "samples": samples}), flush=True)
`;

/** Creates `dbPath` (DELETE mode) with the table the load uses. */
export function createRaceDatabase(dbPath: string): void {
  const db = new Database(dbPath);
  try {
    db.pragma("journal_mode = DELETE");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t (v) VALUES (randomblob(64));");
  } finally {
    db.close();
  }
}

/**
 * Runs the load on `dbPath` (created by `createRaceDatabase`) for `durationMs`: the writer, two
 * better-sqlite3 readers, one Python reader and one `sqlite3 -readonly` CLI. Every process it starts
 * has exited when it resolves (or is killed if it rejects).
 */
export async function runRollbackRace(
  dbPath: string,
  opts: { durationMs: number; commitEvery?: number },
): Promise<RaceResult> {
  const job = (role: "writer" | "reader"): string =>
    JSON.stringify({ role, db: dbPath, durationMs: opts.durationMs, commitEvery: opts.commitEvery ?? 20 });
  const node = (label: string, role: "writer" | "reader"): Promise<TrackedProcess> =>
    TrackedProcess.spawn({ label, command: process.execPath, args: [CHILD, job(role)] });
  const started: TrackedProcess[] = [];
  let cli: CliReader | undefined;
  try {
    const readers = [
      await node("better-sqlite3 reader 1", "reader"),
      await node("better-sqlite3 reader 2", "reader"),
    ];
    started.push(...readers);
    const python = await TrackedProcess.spawn({
      label: "python reader",
      command: "python3",
      args: ["-c", PYTHON_READER, dbPath, String(opts.durationMs)],
    });
    started.push(python);
    for (const p of started) await p.waitForLine(/^started$/, 20_000);
    cli = await CliReader.start(dbPath, opts.durationMs);
    started.push(cli.process);
    const writer = await node("writer", "writer");
    started.push(writer);

    const summary = async (p: TrackedProcess): Promise<Record<string, unknown>> => {
      const status = await p.exit;
      const line = p.stdout
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .at(-1);
      if (status.code !== 0 || line === undefined) throw new Error(`${p.label} failed\n${p.describe()}`);
      return JSON.parse(line) as Record<string, unknown>;
    };
    const asReader = (client: ReaderResult["client"], s: Record<string, unknown>): ReaderResult => {
      const errors = { ...(s.errors as Record<string, number>) };
      const readonlyRollback = errors[READONLY_ROLLBACK] ?? 0;
      delete errors[READONLY_ROLLBACK];
      return {
        client,
        ok: s.ok as number,
        readonlyRollback,
        otherErrors: errors,
        samples: s.samples as string[],
      };
    };
    const w = await summary(writer);
    const results: ReaderResult[] = [];
    for (const r of readers) results.push(asReader("better-sqlite3", await summary(r)));
    results.push(asReader("python", await summary(python)));
    results.push(await cli.result());
    return {
      rollbacks: w.rollbacks as number,
      commits: w.commits as number,
      writerErrors: w.errors as Record<string, number>,
      readers: results,
    };
  } finally {
    cli?.stopFeeding();
    for (const p of started) if (p.status === undefined) p.killGroup();
    await Promise.all(started.map((p) => p.exit));
  }
}

/**
 * `sqlite3 -readonly` fed one query at a time over stdin (a new query once the last one's row came
 * back, so the CLI is always busy but never far behind), until `durationMs` has passed. Its errors go
 * to stderr ("Runtime error near line N: attempt to write a readonly database (8)").
 */
class CliReader {
  readonly process: TrackedProcess;
  readonly #end: number;
  #sent = 0;
  #answered = 0;
  #feeding = true;

  private constructor(process: TrackedProcess, durationMs: number) {
    this.process = process;
    this.#end = Date.now() + durationMs;
  }

  static async start(dbPath: string, durationMs: number): Promise<CliReader> {
    const process = await TrackedProcess.spawn({
      label: "sqlite3 -readonly reader",
      command: "sqlite3",
      args: ["-readonly", "-batch", "-cmd", ".timeout 10000", dbPath],
      stdin: "pipe",
    });
    const reader = new CliReader(process, durationMs);
    process.child.stdout!.on("data", (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : chunk.toString("latin1");
      for (const c of text) if (c === "\n") reader.#answered++;
      reader.#feed();
    });
    process.child.stderr!.on("data", () => reader.#feed());
    process.child.stdin!.on("error", () => undefined);
    reader.#feed();
    return reader;
  }

  stopFeeding(): void {
    if (!this.#feeding) return;
    this.#feeding = false;
    this.process.child.stdin!.end();
  }

  /** Keeps a few queries in flight until the duration has passed (an error answers no row: time out). */
  #feed(): void {
    if (!this.#feeding) return;
    if (Date.now() >= this.#end) {
      this.stopFeeding();
      return;
    }
    const failed = this.#errorLines().length;
    while (this.#sent - this.#answered - failed < 4) {
      this.process.child.stdin!.write("SELECT count(*) FROM t;\n");
      this.#sent++;
    }
  }

  #errorLines(): string[] {
    return this.process.stderr.split("\n").filter((l) => l.trim() !== "");
  }

  async result(): Promise<ReaderResult> {
    // The feed also runs on a timer: a stream of errors alone must not stop it.
    const timer = setInterval(() => this.#feed(), 50);
    try {
      await this.process.exit;
    } finally {
      clearInterval(timer);
    }
    const errors = this.#errorLines();
    const readonly = errors.filter((l) => l.includes("attempt to write a readonly database"));
    const other: Record<string, number> = {};
    for (const l of errors) if (!readonly.includes(l)) other[l] = (other[l] ?? 0) + 1;
    return {
      client: "sqlite3",
      ok: this.#answered,
      readonlyRollback: readonly.length,
      otherErrors: other,
      samples: errors.slice(0, 5),
    };
  }
}
