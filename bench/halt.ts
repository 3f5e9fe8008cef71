// HALT-lock writes from a replica beside direct writes on the primary, same run, real `litefs mount`
// processes on loopback (one primary, one replica).
//
// For each journal mode a Python writer commits one small row per transaction (autocommit INSERTs on
// one connection) for --seconds: first directly through the primary's mount, then through the
// replica's mount while holding the database's HALT lock (F_SETLKW on byte 72 of `<db>-lock`, taken
// once for the whole run). Printed: transactions/s and commit latency p50/p99 of each, and the ratio.
//
// What bounds a HALT commit: everything a direct commit costs on the replica's own mount (the LTX file
// made durable), plus one HTTP round trip to the primary (`POST /tx`) during which the primary verifies
// the file, makes it durable in its LTX directory (fsync + directory fsync), takes a writer's locks,
// writes the pages into its database file (in WAL mode after folding its WAL into it), fsyncs it and
// publishes a new wal-index header through its own mount (FUSE round trips) — i.e. about two commits'
// worth of fsyncs in series plus the round trip.
//
//   node dist/bench/halt.js [--seconds N] [--modes DELETE,WAL]

import { spawn } from "node:child_process";
import * as path from "node:path";
import { parseArgs } from "node:util";

import { replicaConfig, waitForSync } from "../test/replication/cluster.js";
import { LitefsNode } from "../test/support/litefs-node.js";
import { PYTHON3 } from "../test/support/paths.js";

const WRITER = String.raw`
import fcntl, json, os, sqlite3, struct, sys, time
db, lock_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
fd = None
if lock_path != "-":
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.fcntl(fd, fcntl.F_SETLKW, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 72, 1, 0))
con = sqlite3.connect(db, isolation_level=None, timeout=10)
lat = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    t = time.monotonic()
    con.execute("INSERT INTO t(v) VALUES (?)", ("x" * 100,))
    lat.append(time.monotonic() - t)
con.close()
if fd is not None:
    fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqi", fcntl.F_UNLCK, os.SEEK_SET, 72, 1, 0))
    os.close(fd)
lat.sort()
print(json.dumps({"n": len(lat), "seconds": seconds, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}))
`;

interface Run {
  readonly n: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
}

function runWriter(db: string, lockPath: string, seconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON3, ["-c", WRITER, db, lockPath, String(seconds)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.once("close", (code) => {
      if (code !== 0) reject(new Error(`writer exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as Run);
    });
  });
}

function sql(db: string, statements: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/sqlite3", [db, statements], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`sqlite3: ${err}`))));
  });
}

const countMatches = (text: string, pattern: RegExp): number => text.match(pattern)?.length ?? 0;

const ms = (s: number): string => (s * 1000).toFixed(2);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "5" }, modes: { type: "string", default: "DELETE,WAL" } },
  });
  const seconds = Number(values.seconds);
  const modes = values.modes.split(",").map((m) => m.trim().toUpperCase());
  const primary = await LitefsNode.start();
  let replica: LitefsNode | undefined;
  try {
    replica = await LitefsNode.start({ config: replicaConfig(primary) });
    const rows: string[] = [];
    for (const mode of modes) {
      const db = `bench-${mode.toLowerCase()}.db`;
      await sql(
        primary.dbPath(db),
        `PRAGMA journal_mode=${mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);`,
      );
      await waitForSync(primary, [replica], [db]);
      const direct = await runWriter(primary.dbPath(db), "-", seconds);
      await waitForSync(primary, [replica], [db], 60_000);
      const halt = await runWriter(replica.dbPath(db), path.join(replica.fuseDir, `${db}-lock`), seconds);
      await waitForSync(primary, [replica], [db], 60_000);
      const directRate = direct.n / direct.seconds;
      const haltRate = halt.n / halt.seconds;
      rows.push(
        `| ${mode} | ${directRate.toFixed(0)} | ${ms(direct.p50)} / ${ms(direct.p99)} | ${haltRate.toFixed(0)} | ` +
          `${ms(halt.p50)} / ${ms(halt.p99)} | ${((haltRate / directRate) * 100).toFixed(0)} % |`,
      );
    }
    process.stdout.write(
      [
        `HALT-lock writes from a replica vs direct writes on the primary (${seconds} s each, loopback)`,
        "",
        "| mode | direct tx/s | direct p50 / p99 ms | HALT tx/s | HALT p50 / p99 ms | HALT / direct |",
        "|---|---|---|---|---|---|",
        ...rows,
        "",
        // Side effects worth knowing: the primary streams each applied HALT transaction back to the
        // replica that sent it, which already has it (see the report / docs/node-api.md).
        `replica stream errors: ${countMatches(replica.logs(), /ESTREAMTXID/g)} × ESTREAMTXID (own transaction ` +
          `streamed back), quarantines: ${countMatches(replica.logs(), /quarantined transactions/g)}, ` +
          `refused HALT commits: ${countMatches(replica.logs(), /HALT commit not confirmed/g)}`,
        "",
      ].join("\n"),
    );
  } finally {
    await replica?.cleanup();
    await primary.cleanup();
  }
}

await main();
