// The three SQLite clients every mount test drives — the sqlite3 shell, better-sqlite3 and Python's
// sqlite3 — behind one call. Each runs in its own child process, so a FUSE server in the test process
// (or anywhere) never shares a thread with the client blocked on it.
//
// A job opens one connection, runs `pragmas` (per-connection settings such as journal_mode, which in
// the rollback modes is not stored in the file), then each script in order (each a complete
// transaction, or a statement such as VACUUM), then each query, and returns the rows of each query.
// Queries must return only integers, text, reals or NULL (select hex(x) for blobs): the shell's JSON
// output cannot carry blobs, and the same value must look the same whichever client fetched it.
import * as path from "node:path";
import { runCommand } from "./litefs-cli.js";
import { PYTHON3, SQLITE3_CLI, SUPPORT_DIST_DIR } from "./paths.js";

export type SqlClientName = "sqlite3" | "better-sqlite3" | "python";
export const SQL_CLIENTS: readonly SqlClientName[] = ["sqlite3", "better-sqlite3", "python"];

export type SqlValue = number | string | null;
export type SqlRow = Record<string, SqlValue>;

export interface SqlJob {
  dbPath: string;
  pragmas?: readonly string[];
  scripts?: readonly string[];
  queries?: readonly string[];
  /** SQLite busy timeout; default 10 s. */
  busyTimeoutMs?: number;
  /** The whole job is killed after this long; default 120 s. */
  timeoutMs?: number;
}

export interface SqlJobResult {
  /** One array of rows per query, in order. */
  results: SqlRow[][];
}

/** Thrown when a client exits unsuccessfully; carries what it printed. */
export class SqlClientError extends Error {
  readonly code = "ESQLCLIENT";
  constructor(
    readonly client: SqlClientName,
    readonly exitCode: number | null,
    readonly stderr: string,
    message: string,
  ) {
    super(message);
    this.name = "SqlClientError";
  }
}

/** Runs `job` in a fresh process of `client`; rejects with SqlClientError if any statement fails. */
export async function runSqlJob(client: SqlClientName, job: SqlJob): Promise<SqlJobResult> {
  const normalized = {
    db: job.dbPath,
    pragmas: [...(job.pragmas ?? [])],
    scripts: [...(job.scripts ?? [])],
    queries: [...(job.queries ?? [])],
    busyTimeoutMs: job.busyTimeoutMs ?? 10_000,
  };
  const timeoutMs = job.timeoutMs ?? 120_000;
  switch (client) {
    case "sqlite3":
      return runShellJob(normalized, timeoutMs);
    case "better-sqlite3":
      return runJsonChild(
        client,
        process.execPath,
        [path.join(SUPPORT_DIST_DIR, "better-sqlite3-job.js")],
        normalized,
        timeoutMs,
      );
    case "python":
      return runJsonChild(client, PYTHON3, ["-c", PYTHON_JOB], normalized, timeoutMs);
  }
}

/** Convenience: one query, its rows. */
export async function querySql(client: SqlClientName, dbPath: string, sql: string): Promise<SqlRow[]> {
  return (await runSqlJob(client, { dbPath, queries: [sql] })).results[0];
}

interface NormalizedJob {
  db: string;
  pragmas: string[];
  scripts: string[];
  queries: string[];
  busyTimeoutMs: number;
}

async function runJsonChild(
  client: SqlClientName,
  command: string,
  args: string[],
  job: NormalizedJob,
  timeoutMs: number,
): Promise<SqlJobResult> {
  const result = await runCommand(command, args, { input: JSON.stringify(job), timeoutMs });
  if (result.code !== 0) {
    throw new SqlClientError(
      client,
      result.code,
      result.stderr,
      `${client} on ${job.db} failed (exit ${result.code ?? result.signal}): ${lastLines(result.stderr)}`,
    );
  }
  return JSON.parse(result.stdout) as SqlJobResult;
}

const QUERY_END_MARKER = "__litefs_test_query_end__";

async function runShellJob(job: NormalizedJob, timeoutMs: number): Promise<SqlJobResult> {
  // Pragma results (journal_mode prints its new mode) are sent to /dev/null; only query output counts.
  const lines = [`.timeout ${job.busyTimeoutMs}`, ".output /dev/null", ...job.pragmas.map(terminated)];
  lines.push(...job.scripts.map(terminated), ".output", ".mode json");
  for (const query of job.queries) lines.push(terminated(query), `.print ${QUERY_END_MARKER}`);
  const result = await runCommand(SQLITE3_CLI, ["-bail", "-batch", job.db], {
    input: lines.join("\n") + "\n",
    timeoutMs,
  });
  if (result.code !== 0 || result.stderr.trim() !== "") {
    throw new SqlClientError(
      "sqlite3",
      result.code,
      result.stderr,
      `sqlite3 on ${job.db} failed (exit ${result.code ?? result.signal}): ${lastLines(result.stderr)}`,
    );
  }
  const parts = result.stdout.split(`${QUERY_END_MARKER}\n`);
  parts.pop(); // after the last marker: nothing
  if (parts.length !== job.queries.length) {
    throw new Error(
      `sqlite3: expected ${job.queries.length} query outputs, got ${parts.length}: ${result.stdout}`,
    );
  }
  return { results: parts.map((text) => (text.trim() === "" ? [] : (JSON.parse(text) as SqlRow[]))) };
}

function terminated(sql: string): string {
  const trimmed = sql.trim();
  return trimmed.endsWith(";") ? trimmed : trimmed + ";";
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-6).join("\n");
}

/** The Python side of a job: JSON job on stdin, {"results": [...]} on stdout. */
const PYTHON_JOB = `
import json, sqlite3, sys
job = json.load(sys.stdin)
conn = sqlite3.connect(job["db"], timeout=job["busyTimeoutMs"] / 1000, isolation_level=None)
for pragma in job["pragmas"]:
    conn.execute(pragma).fetchall()
for script in job["scripts"]:
    conn.executescript(script)
results = []
for query in job["queries"]:
    cur = conn.execute(query)
    names = [d[0] for d in cur.description] if cur.description else []
    rows = []
    for values in cur.fetchall():
        row = {}
        for name, value in zip(names, values):
            if isinstance(value, bytes):
                raise TypeError("query returned a BLOB in column %s; select hex(...) instead" % name)
            row[name] = value
        rows.append(row)
    results.append(rows)
conn.close()
json.dump({"results": results}, sys.stdout)
`;
