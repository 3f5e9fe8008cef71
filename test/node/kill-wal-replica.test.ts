// A `litefs mount` replica SIGKILLed while it applies a WAL-mode primary's transactions, with a local
// reader connection (whose -shm is mapped) open on its mount, must be gone at once — not hang in the
// kernel. It used to: the node kept `<db>-shm` open through its OWN mount to publish the wal-index
// header; on kill -9 the kernel closed that file on the way out and sent FLUSH to the mount's server,
// the dying process itself, and waited uninterruptibly forever (state D).
//
// Ten times in a row: the reader must have seen new transactions arrive through its open connection
// (the header published behind the kernel reaches a mapped -shm), then the replica is SIGKILLed and
// must be reaped within 5 s; the dead mount is cleared and the node restarted on the same data. A
// node that does not exit is freed by aborting its FUSE connection (fusectl), and the test fails.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { abortFuseConnection } from "../chaos/fuse-abort.js";
import { Cluster, waitForSync } from "../replication/cluster.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { PYTHON3 } from "../support/paths.js";
import { TrackedProcess } from "../support/tracked-process.js";
import { sqlite } from "./node-kit.js";

const DB = "kill.db";
const KILLS = 10;
const EXIT_WITHIN_MS = 5_000;

/** Commits one small row at a time, forever (killed by the test). */
const WRITER = `
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
while True:
    con.execute("INSERT INTO t (v) VALUES (hex(randomblob(300)))")
    time.sleep(0.003)
`;

/** One connection kept open; prints the row count it sees, every few ms, forever (killed by the test). */
const READER = `
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
while True:
    print(con.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
    time.sleep(0.005)
`;

function python(label: string, script: string, dbPath: string): Promise<TrackedProcess> {
  return TrackedProcess.spawn({ label, command: PYTHON3, args: ["-c", script, dbPath] });
}

function counts(reader: TrackedProcess): number[] {
  return reader.stdout
    .split("\n")
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** Waits until the reader's open connection has seen the row count grow `times` times. */
async function waitForGrowth(reader: TrackedProcess, times: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = counts(reader);
    const distinct = new Set(seen).size;
    if (distinct > times) return;
    if (reader.status !== undefined || Date.now() > deadline) {
      throw new Error(
        `the reader saw ${distinct} distinct counts, wanted ${times + 1}\n${reader.describe()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves true once the node's process has been reaped, false after `ms`. */
async function reapedWithin(node: LitefsNode, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (node.running) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** SIGKILLs the node; resolves with how long it took to be reaped, or throws after freeing it. */
async function killAndTime(node: LitefsNode): Promise<number> {
  const pid = node.pid;
  const started = performance.now();
  process.kill(pid, "SIGKILL");
  const reaped = await reapedWithin(node, EXIT_WITHIN_MS);
  const ms = performance.now() - started;
  if (!reaped) {
    const state = procState(pid);
    const aborted = abortFuseConnection(node.fuseDir);
    await reapedWithin(node, 30_000);
    throw new Error(`the killed replica was not reaped within ${EXIT_WITHIN_MS} ms (${state}); ${aborted}`);
  }
  assert.ok(!fs.existsSync(`/proc/${pid}`), `pid ${pid} is still in /proc after it was reaped`);
  return ms;
}

function procState(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const stack = fs.readFileSync(`/proc/${pid}/stack`, "utf8").split("\n").slice(0, 8).join(" < ");
    return `state ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]}, kernel stack ${stack}`;
  } catch (err) {
    return `no /proc entry (${(err as NodeJS.ErrnoException).code})`;
  }
}

test(
  `a WAL replica under apply load, SIGKILLed ${KILLS} times, is gone each time`,
  { timeout: 300_000 },
  async (t) => {
    const cluster = await Cluster.start({ replicas: 1 });
    const extra: TrackedProcess[] = [];
    t.after(async () => {
      for (const p of extra) {
        p.killGroup();
        await p.exit;
      }
      await cluster.cleanup();
    });
    const { primary } = cluster;
    const replica = cluster.replicas[0];
    await sqlite(
      primary.dbPath(DB),
      "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
    );
    const writer = await python("writer", WRITER, primary.dbPath(DB));
    extra.push(writer);
    await waitForSync(primary, [replica], [DB]);

    const times: number[] = [];
    for (let round = 1; round <= KILLS; round++) {
      const reader = await python(`reader ${round}`, READER, replica.dbPath(DB));
      extra.push(reader);
      await waitForGrowth(reader, 3, 30_000).catch((err: Error) => {
        // The replica's side of it (what it applied, recovered, published) for whoever reads the failure.
        const tail = replica.lastRunLogs().split("\n").slice(-40).join("\n");
        throw new Error(`round ${round}: ${err.message}\n--- replica log (last lines) ---\n${tail}`);
      });
      assert.ok(fs.existsSync(path.join(replica.storeDir(DB), "shm")), "the reader's -shm exists");
      assert.equal(writer.status, undefined, `the writer died:\n${writer.describe()}`);

      times.push(await killAndTime(replica));
      reader.killGroup();
      await reader.exit;
      await replica.crash(); // already dead: clears the dead mount
      assert.ok(!fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${replica.fuseDir} `));
      await replica.restart();
    }
    t.diagnostic(`reaped after ${times.map((ms) => Math.round(ms)).join(", ")} ms`);
    writer.killGroup();
    await writer.exit;
    await waitForSync(primary, [replica], [DB]);
  },
);
