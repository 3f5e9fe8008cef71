// Handoffs to a replica that is still applying a backlog from the old primary, on a real etcd: the
// target is frozen (SIGSTOP) while the primary commits 200 transactions of ~100 KiB each (more than
// the target reads ahead plus what the sockets hold), the handoff is asked for while it is still
// frozen, and it is continued.
//
// Every handoff first paces the old primary's commits until the target is close behind (its pace
// step, src/node/handoff-pacer.ts: the target's position from its `GET /pos`, at the URL it told the
// stream), so that the backlog is applied while the old primary still takes writes, not inside the
// write gap:
// 1. Asked of the primary (`POST /handoff?to=`), the target frozen for longer than the pace step
//    waits for an answer: the step gives up, and the old primary's etcd transaction goes out while a
//    backlog is still in flight to the target, so the target's lease watch reports "no holder" — and
//    its acquire through the reservation succeeds — before it reads the HANDOFF frame behind them. The
//    target must keep the stream that carries them (src/node/litefs-node.ts `awaitingHandoffFrom`):
//    reconnecting threw away what it had not read yet and had the old primary read it all back from
//    its LTX files (session 17: a 306 ms handoff in bench/failover.ts). It ends primary with every
//    transaction, on one connection.
// 2. Asked of the target (`POST /promote`, `litefs promote`) and 3. SIGTERM to the primary (a
//    deploy): the target thawed after 300 ms, the pace step waits until it applied the backlog.
// 4. A writer that goes on through the handoff (WAL and DELETE; a backlog of 60 transactions): its
//    commits are answered at the pace the target applies them, and the commits stop with the target
//    within the pace's window.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import Database from "better-sqlite3";

import { type HttpAnswer, httpRequest } from "../../src/net/http-request.js";
import { PACE_WINDOW_TX } from "../../src/node/handoff-pacer.js";
import { ACK_WRITER_CONSISTENCY_QUERIES, ACK_WRITER_SCHEMA, AckWriter } from "../support/ack-writer.js";
import { EtcdCluster } from "../support/etcd.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { nodeStatus, startEtcdNode, waitConverged, waitFor, waitFollowing } from "./lease-kit.js";

const DB = "backlog.db";
const TRANSACTIONS = 200;
const ROWS = 100;

function count(logs: string, msg: string): number {
  return logs.split("\n").filter((line) => line.includes(`"msg":"${msg}"`)).length;
}

/** The log records of `node`'s current run whose msg is `msg`. */
function records(node: LitefsNode, msg: string): Record<string, unknown>[] {
  return node
    .lastRunLogs()
    .split("\n")
    .filter((line) => line.includes(`"msg":"${msg}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

interface Backlog {
  readonly old: LitefsNode;
  readonly target: LitefsNode;
  readonly writer: Database.Database;
  readonly rows: number;
  /** The target's connections to a primary before the freeze. */
  readonly connectsBefore: number;
  /** The writer that went on through the handoff (`ackWriter`), exited. */
  readonly ackWriter?: AckWriter;
}

interface BacklogOptions {
  /** How long after the ask the target is continued (ms). Default 300. */
  readonly thawAfterMs?: number;
  readonly journalMode?: "wal" | "delete";
  /** A writer on the old primary from before the freeze until the handoff refuses its commit. */
  readonly ackWriter?: boolean;
  /** Transactions of the backlog. Default TRANSACTIONS. */
  readonly transactions?: number;
}

/** The pace step's log record on the old primary. */
interface PaceRecord {
  readonly url?: string;
  readonly close?: boolean;
  readonly behind?: number | null;
  readonly held?: number;
  readonly longestHoldMs?: number;
}

function paceOf(old: LitefsNode): PaceRecord | undefined {
  return records(old, "handoff: the pace step ended")[0];
}

/**
 * Two etcd nodes; the target frozen while the old primary commits the backlog; `ask` sent while it is
 * frozen (its request waits in a socket and is served as soon as the node it goes to runs — a CLI
 * process started after the thaw gave the target the half second it needed to catch up, once on a
 * fresh machine's CI run); the target continued. Resolves once `ask` resolved (it checks its own
 * answer) and the target is primary.
 */
async function handoffWithBacklog(
  t: { after: (fn: () => unknown) => void },
  label: string,
  ask: (old: LitefsNode, target: LitefsNode, targetNodeId: string) => Promise<void>,
  options: BacklogOptions = {},
): Promise<Backlog> {
  const etcd = await EtcdCluster.start({ label });
  const nodes: LitefsNode[] = [];
  after(async () => {
    for (const node of nodes) await node.cleanup().catch(() => undefined);
    await etcd.stop();
  });
  const key = `/litefs/${label}`;
  const old = await startEtcdNode("old", etcd.endpoints, key);
  nodes.push(old);
  const target = await startEtcdNode("target", etcd.endpoints, key);
  nodes.push(target);
  assert.equal((await nodeStatus(old)).role, "primary", old.logs());
  const info = (await (await fetch(`${target.httpUrl}/info`)).json()) as { nodeId: string };

  const writer = new Database(old.dbPath(DB));
  t.after(() => writer.close());
  writer.pragma(`journal_mode = ${options.journalMode ?? "wal"}`);
  writer.pragma("busy_timeout = 10000");
  writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  let ackWriter: AckWriter | undefined;
  if (options.ackWriter === true) {
    writer.exec(ACK_WRITER_SCHEMA);
    ackWriter = await AckWriter.start({
      client: "python",
      dbPath: old.dbPath(DB),
      journalMode: options.journalMode === "delete" ? "DELETE" : "WAL",
      firstBatchId: 1,
      seed: 7,
      payloadBytesMax: 2000,
    });
    const started = ackWriter;
    t.after(() => started.finish(0));
    await ackWriter.waitForAcks(5, 20_000);
  }
  await waitConverged(old, [target], DB);
  const connectsBefore = count(target.lastRunLogs(), "connected to the primary");

  process.kill(target.pid, "SIGSTOP");
  let frozen = true;
  const thaw = (): void => {
    if (frozen && target.running) process.kill(target.pid, "SIGCONT");
    frozen = false;
  };
  t.after(thaw);
  const insert = writer.prepare("INSERT INTO t (v) VALUES (randomblob(1000))");
  const tx = writer.transaction(() => {
    for (let i = 0; i < ROWS; i++) insert.run();
  });
  const transactions = options.transactions ?? TRANSACTIONS;
  for (let i = 0; i < transactions; i++) tx();
  const asking = ask(old, target, info.nodeId);
  asking.catch(() => undefined); // awaited below: a failure while the target is frozen is reported there
  await sleep(options.thawAfterMs ?? 300);
  thaw();
  await asking;
  await waitFor("the target is primary", async () =>
    (await nodeStatus(target)).role === "primary" ? true : undefined,
  );
  // The writer's next commit on the old primary is refused: it exits (its acknowledged batches count).
  await ackWriter?.finish(10_000);
  const rows = Number((writer.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n);
  assert.equal(rows, transactions * ROWS);
  return { old, target, writer, rows, connectsBefore, ...(ackWriter === undefined ? {} : { ackWriter }) };
}

/**
 * POSTs `url` (with the nodes' own client: a kept-alive socket the server closed just as it is reused
 * is retried on a new one — the global fetch failed such a POST with "other side closed" once the
 * writer's synchronous backlog had blocked this process for about the server's keep-alive timeout)
 * and checks that it was answered 200.
 */
async function answered200(url: string, old: LitefsNode, target: LitefsNode): Promise<void> {
  let answer: HttpAnswer;
  try {
    answer = await httpRequest(url, { method: "POST" });
  } catch (err) {
    throw new Error(
      `POST ${url} failed: ${(err as Error).message}\n` +
        `target: ${target.lastRunLogs().slice(-6000)}\nold: ${old.lastRunLogs().slice(-6000)}`,
    );
  }
  assert.equal(answer.status, 200, answer.text + target.lastRunLogs() + old.lastRunLogs());
}

/** The backlog's last TXID (the old primary's last commit) and its line's index in `target`'s log. */
function backlogEnd(old: LitefsNode, target: LitefsNode): { lastTxid: string; appliedAt: number } {
  const lastTxid = (
    records(old, "commit")
      .filter((r) => r.db === DB)
      .at(-1) as { txid: string } | undefined
  )?.txid;
  assert.ok(lastTxid !== undefined, "no commit logged on the old primary");
  const appliedAt = target
    .lastRunLogs()
    .split("\n")
    .findIndex(
      (line) =>
        line.includes('"msg":"replicated transaction applied"') && line.includes(`"txid":"${lastTxid}"`),
    );
  return { lastTxid, appliedAt };
}

/** Every transaction is on the new primary; the old one follows it and gets its next write. */
async function assertConverged({ old, target, writer, rows }: Backlog): Promise<void> {
  const reader = new Database(target.dbPath(DB), { readonly: true, fileMustExist: true });
  try {
    assert.equal((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, rows);
  } finally {
    reader.close();
  }
  writer.close();
  await waitFollowing(old, target, "the old primary follows the target");
  const next = new Database(target.dbPath(DB));
  try {
    next.pragma("busy_timeout = 5000");
    next.exec("INSERT INTO t (v) VALUES (randomblob(100))");
  } finally {
    next.close();
  }
  await waitConverged(target, [old], DB);
}

test(
  "a handoff target applying a backlog keeps its stream to the old primary until the HANDOFF frame",
  { timeout: 90_000 },
  async (t) => {
    // Frozen past the pace step's whole bound (2 s; its first request times out after 1 s and the
    // step is given up, 500 ms without gain): the handoff goes on with the backlog in flight.
    const backlog = await handoffWithBacklog(
      t,
      "handoff-backlog",
      (old, target, to) => answered200(`${old.httpUrl}/handoff?to=${to}`, old, target),
      { thawAfterMs: 2500 },
    );
    const { old, target, connectsBefore } = backlog;
    assert.equal(paceOf(old)?.close, false, JSON.stringify(paceOf(old)));

    // The scenario happened: the target took the lease before it read the frame (else this test
    // checks nothing).
    const targetLogs = target.lastRunLogs();
    assert.equal(
      count(targetLogs, "lease handed over; waiting for the old primary's last transactions"),
      1,
      `the target read HANDOFF before its acquire; no backlog to keep:\n${targetLogs.slice(-4000)}`,
    );
    // …and it kept the stream: no new connection, nothing served again from the old primary's files.
    assert.equal(
      count(targetLogs, "connected to the primary"),
      connectsBefore,
      `the target reconnected during the handoff:\n${targetLogs.slice(-4000)}`,
    );
    assert.equal(
      count(
        old.lastRunLogs(),
        "the replica this node handed its lease to reconnected: sending the handoff target what it missed, then HANDOFF",
      ),
      0,
    );
    await assertConverged(backlog);
  },
);

test(
  "litefs promote on a target with a backlog: the old primary lets it apply the backlog first",
  { timeout: 90_000 },
  async (t) => {
    const backlog = await handoffWithBacklog(t, "promote-backlog", (old, target) =>
      answered200(`${target.httpUrl}/promote`, old, target),
    );
    const { old, target } = backlog;
    const pace = paceOf(old);
    assert.deepEqual([pace?.url, pace?.close], [target.httpUrl, true], JSON.stringify(pace));
    assert.ok((pace?.behind ?? Infinity) <= PACE_WINDOW_TX, JSON.stringify(pace));
    // The old primary found (nearly) everything sent when it stopped its commits: its wait for the
    // target's stream (catchUpMs) had nothing left to push (before session 20, megabytes of the
    // backlog; session 20 and 21 had the target wait on its own side: 0 ms too).
    const [pause] = records(old, "handing the lease off");
    assert.ok(
      typeof pause?.catchUpMs === "number" && pause.catchUpMs <= 40,
      `the old primary still pushed the backlog after it stopped its commits: ${JSON.stringify(pause)}`,
    );
    const { lastTxid, appliedAt } = backlogEnd(old, target);
    assert.ok(
      appliedAt >= 0,
      `${lastTxid} never applied on the target: ${target.lastRunLogs().slice(-3000)}`,
    );
    await assertConverged(backlog);
  },
);

test(
  "a primary stopped with SIGTERM lets a target with a backlog apply it before it stops its commits",
  { timeout: 90_000 },
  async (t) => {
    const backlog = await handoffWithBacklog(t, "sigterm-backlog", async (old) => {
      process.kill(old.pid, "SIGTERM");
    });
    const { old, target, rows } = backlog;
    await waitFor("the old primary exited", async () => (old.running ? undefined : true));
    const pace = paceOf(old);
    assert.equal(pace?.close, true, `the primary did not wait for its target: ${JSON.stringify(pace)}`);
    assert.equal(pace?.url, target.httpUrl, "the URL the target told the stream");
    // The target had applied the backlog's end when the primary stopped its commits: the primary's
    // wait for its stream (catchUpMs) found nothing left to push. Checked (session 21): 1,025 and
    // 478 ms with no wait at all, 0 and 0 with one.
    const [pause] = records(old, "handing the lease off");
    assert.ok(
      typeof pause?.catchUpMs === "number" && pause.catchUpMs <= 40,
      `the old primary still pushed the backlog after it stopped its commits: ${JSON.stringify(pause)}`,
    );
    const { lastTxid, appliedAt } = backlogEnd(old, target);
    assert.ok(
      appliedAt >= 0,
      `${lastTxid} never applied on the target: ${target.lastRunLogs().slice(-3000)}`,
    );
    const reader = new Database(target.dbPath(DB), { readonly: true, fileMustExist: true });
    try {
      assert.equal((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, rows);
    } finally {
      reader.close();
    }
  },
);

for (const journalMode of ["wal", "delete"] as const) {
  test(
    `a writer during a handoff (${journalMode}): its commits wait for the target, which ends close behind`,
    { timeout: 90_000 },
    async (t) => {
      const backlog = await handoffWithBacklog(
        t,
        `paced-writer-${journalMode}`,
        (old, target, to) => answered200(`${old.httpUrl}/handoff?to=${to}`, old, target),
        // 60 transactions (6 MiB), not 200: enough for the target to be behind when the step starts,
        // little enough that it is close within the step's 2 s on a loaded machine (with 200 a CI run
        // needed 1.77 s, and two busy loops beside it made the step give up 22 behind).
        { journalMode, ackWriter: true, transactions: 60 },
      );
      const { old, target, ackWriter } = backlog;
      const pace = paceOf(old);
      // The writer committed during the step while the target, thawed, applied the backlog (nothing
      // is held before the target's first answer, which waited for the thaw): those commits were
      // answered late — each at most PACE_HOLD_MAX_MS — and the step ended close.
      assert.equal(pace?.close, true, JSON.stringify(pace));
      assert.ok((pace?.held ?? 0) >= 1, `no commit was held: ${JSON.stringify(pace)}`);
      assert.ok((pace?.behind ?? Infinity) <= PACE_WINDOW_TX, JSON.stringify(pace));
      const [pause] = records(old, "handing the lease off");
      assert.ok(
        typeof pause?.catchUpMs === "number" && pause.catchUpMs <= 40,
        `the old primary still pushed a backlog after it stopped its commits: ${JSON.stringify(pause)}`,
      );
      // Every batch the writer was told committed is on the new primary, whole.
      assert.ok(ackWriter !== undefined && ackWriter.acked.length > 5, `${ackWriter?.acked.length} acks`);
      const reader = new Database(target.dbPath(DB), { readonly: true, fileMustExist: true });
      try {
        const ids = new Set(
          (reader.prepare("SELECT id FROM batches").all() as { id: number }[]).map((r) => r.id),
        );
        const missing = ackWriter.acked.filter((id) => !ids.has(id));
        assert.deepEqual(missing, [], "acknowledged batches missing on the new primary");
        for (const { name, sql } of ACK_WRITER_CONSISTENCY_QUERIES) {
          assert.equal((reader.prepare(sql).get() as { bad: number }).bad, 0, name);
        }
      } finally {
        reader.close();
      }
      console.log(
        `paced writer (${journalMode}): ${ackWriter.acked.length} batches acknowledged; pace ${JSON.stringify(pace)}; ` +
          `catchUpMs ${String(pause.catchUpMs)}`,
      );
      await assertConverged(backlog);
    },
  );
}
