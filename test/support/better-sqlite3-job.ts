// Child-process side of runSqlJob for better-sqlite3: reads a JSON job on stdin, runs it, prints
// {"results": [...]} on stdout. Runs in its own process so that the client never shares a thread with
// a FUSE server. Exit code 1 with the error on stderr when any statement fails.
import Database from "better-sqlite3";

interface Job {
  db: string;
  pragmas: string[];
  scripts: string[];
  queries: string[];
  busyTimeoutMs: number;
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk: string) => (text += chunk));
    process.stdin.on("end", () => resolve(text));
    process.stdin.on("error", reject);
  });
}

function run(job: Job): { results: unknown[][] } {
  const db = new Database(job.db, { timeout: job.busyTimeoutMs });
  try {
    for (const pragma of job.pragmas) db.exec(pragma);
    for (const script of job.scripts) db.exec(script);
    const results: unknown[][] = [];
    for (const query of job.queries) {
      const statement = db.prepare(query);
      if (!statement.reader) {
        statement.run();
        results.push([]);
        continue;
      }
      const rows = statement.all() as Array<Record<string, unknown>>;
      for (const row of rows) {
        for (const [name, value] of Object.entries(row)) {
          if (Buffer.isBuffer(value))
            throw new Error(`query returned a BLOB in column ${name}; select hex(...) instead`);
        }
      }
      results.push(rows);
    }
    return { results };
  } finally {
    db.close();
  }
}

readStdin()
  .then((text) => {
    process.stdout.write(JSON.stringify(run(JSON.parse(text) as Job)));
  })
  .catch((err: unknown) => {
    process.stderr.write(
      `better-sqlite3 job failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  });
