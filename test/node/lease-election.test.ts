// Choosing among lease candidates: the ranking of replication positions (src/node/candidate-ranking.ts),
// the candidate board on a real etcd (src/lease/etcd-candidate-board.ts: records live with their
// publisher's etcd lease) and the bounded wait of the election (src/node/candidate-election.ts).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { EtcdCandidateBoard } from "../../src/lease/etcd-candidate-board.js";
import type { CandidateRecord } from "../../src/lease/candidate-board.js";
import { CandidateElection, type ElectionDecision } from "../../src/node/candidate-election.js";
import {
  decodePosition,
  electionVerdict,
  encodePosition,
  isStrictlyNewer,
  type ReplicationPosition,
} from "../../src/node/candidate-ranking.js";
import type { StoreLogger } from "../../src/store/store-logger.js";
import { EtcdCluster } from "../support/etcd.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { freshPrefix, pollUntil, rejectsWithCode } from "../lease/lease-test-kit.js";

const TTL_MS = 2000;
const A = "00000000000000aa";
const B = "00000000000000bb";

function pos(entries: Record<string, [number, number]>): ReplicationPosition {
  return new Map(
    Object.entries(entries).map(([db, [epoch, txid]]) => [db, { epoch: BigInt(epoch), txid: BigInt(txid) }]),
  );
}

test("positions: a newer epoch beats higher TXIDs; ahead on one database and behind on none is newer", () => {
  const base = pos({ "a.db": [5, 0x10], "b.db": [5, 0x20] });
  assert.equal(isStrictlyNewer(pos({ "a.db": [5, 0x11], "b.db": [5, 0x20] }), base), true);
  assert.equal(isStrictlyNewer(base, pos({ "a.db": [5, 0x11], "b.db": [5, 0x20] })), false);
  assert.equal(isStrictlyNewer(base, base), false, "equal is not newer");
  // A deposed primary's own TXIDs under an older epoch lose against the newer lease's history.
  assert.equal(
    isStrictlyNewer(
      pos({ "a.db": [7, 0x01], "b.db": [5, 0x20] }),
      pos({ "a.db": [6, 0x99], "b.db": [5, 0x20] }),
    ),
    true,
  );
  // Ahead on one, behind on another: not ordered, either way.
  const mixed = pos({ "a.db": [5, 0x11], "b.db": [5, 0x1f] });
  assert.equal(isStrictlyNewer(mixed, base), false);
  assert.equal(isStrictlyNewer(base, mixed), false);
  // A database the other lacks counts as (0, 0).
  assert.equal(isStrictlyNewer(pos({ "a.db": [5, 0x10], "b.db": [5, 0x20], "c.db": [5, 1] }), base), true);
  assert.equal(isStrictlyNewer(pos({ "a.db": [5, 0x10] }), base), false);
  assert.equal(isStrictlyNewer(pos({}), pos({})), false);
});

test("positions encode the same whatever the order of databases, and decode back; junk decodes to null", () => {
  const one = pos({ "b.db": [3, 0x1234], "a.db": [12, 0xffffffffffff] });
  const two = pos({ "a.db": [12, 0xffffffffffff], "b.db": [3, 0x1234] });
  assert.equal(encodePosition(one), encodePosition(two));
  assert.deepEqual(decodePosition(encodePosition(one)), two);
  const big = new Map([["x", { epoch: 18446744073709551615n, txid: 0xffffffffffffffffn }]]);
  assert.deepEqual(decodePosition(encodePosition(big)), big);
  for (const junk of [
    "",
    "{",
    "null",
    '{"v":2,"dbs":{}}',
    '{"v":1,"dbs":{"a":"1-2"}}',
    '{"v":1,"dbs":{"a":5}}',
  ]) {
    assert.equal(decodePosition(junk), null, junk);
  }
});

test("electionVerdict: wait for a strictly newer candidate, at most maxWaitMs from the first wait", () => {
  const self = pos({ "a.db": [5, 0x10] });
  const newer = { nodeId: A, hostname: "a", position: pos({ "a.db": [5, 0x11] }) };
  const older = { nodeId: B, hostname: "b", position: pos({ "a.db": [5, 0x0f] }) };
  const unknown = { nodeId: B, hostname: "b", position: null };
  const ctx = { self, others: [older, newer], nowMs: 1000, waitingSinceMs: null, maxWaitMs: 500 };
  const first = electionVerdict(ctx);
  assert.equal(first.kind, "wait");
  assert.ok(first.kind === "wait");
  assert.equal(first.newer.hostname, "a");
  assert.equal(first.waitingSinceMs, 1000);
  assert.equal(first.untilMs, 1500);
  assert.deepEqual(electionVerdict({ ...ctx, nowMs: 1499, waitingSinceMs: 1000 }).kind, "wait");
  assert.deepEqual(electionVerdict({ ...ctx, nowMs: 1500, waitingSinceMs: 1000 }), {
    kind: "acquire",
    reason: "waited-out",
  });
  assert.deepEqual(electionVerdict({ ...ctx, others: [older, unknown] }), {
    kind: "acquire",
    reason: "newest",
  });
  assert.deepEqual(electionVerdict({ ...ctx, others: [] }), { kind: "acquire", reason: "newest" });
  assert.deepEqual(electionVerdict({ ...ctx, maxWaitMs: 0 }), { kind: "acquire", reason: "ranking-off" });
});

let etcd: EtcdCluster;
before(async () => {
  etcd = await EtcdCluster.start({ label: "lease-election" });
});
after(async () => {
  await etcd?.stop();
});

function board(
  nodeId: string,
  key: string,
  endpoints = etcd.endpoints,
  errors: Error[] = [],
): EtcdCandidateBoard {
  return new EtcdCandidateBoard({
    endpoints,
    key,
    nodeId,
    hostname: `host-${nodeId.slice(-2)}`,
    ttlMs: TTL_MS,
    onBackgroundError: (e) => errors.push(e),
  });
}

/** Polls `reader.others()` until `check` accepts it. */
async function othersUntil(
  what: string,
  reader: EtcdCandidateBoard,
  check: (records: CandidateRecord[]) => boolean,
  timeoutMs = 10_000,
): Promise<CandidateRecord[]> {
  return pollUntil(
    what,
    async () => {
      const records = await reader.others();
      return check(records) ? records : undefined;
    },
    timeoutMs,
    25,
  );
}

test("etcd candidate board: publish, update, withdraw, republish and close; a reader never sees itself", async (t) => {
  const key = freshPrefix("board");
  const a = board(A, key);
  const b = board(B, key);
  t.after(() => Promise.all([a.close(), b.close()]));
  a.publish("p1");
  b.publish("q1");
  const seen = await othersUntil("b sees a", b, (r) => r.length === 1);
  assert.deepEqual(seen, [{ nodeId: A, hostname: "host-aa", position: "p1" }]);
  await othersUntil("a sees b only", a, (r) => r.length === 1 && r[0].nodeId === B);
  a.publish("p2");
  a.publish("p3"); // coalesced: the latest value wins
  await othersUntil("b sees p3", b, (r) => r[0]?.position === "p3");
  a.publish(null);
  await othersUntil("a withdrawn", b, (r) => r.length === 0);
  a.publish("p4");
  await othersUntil("a back", b, (r) => r[0]?.position === "p4");
  await a.close();
  assert.deepEqual(await b.others(), [], "close withdraws at once");
  await rejectsWithCode(a.others(), "ELEASECLOSED");
  a.publish("ignored after close");
  assert.deepEqual(await b.others(), []);
});

test("etcd candidate board: a publisher cut off from etcd disappears within about a TTL, and comes back", async (t) => {
  const key = freshPrefix("board-cut");
  const target = new URL(etcd.endpoints[0]);
  const proxy = await FaultProxy.start({
    label: "board → etcd",
    target: { host: target.hostname, port: Number(target.port) },
  });
  t.after(() => proxy.close());
  const errors: Error[] = [];
  const cut = board(A, key, [`http://${proxy.address}`], errors);
  const reader = board(B, key);
  t.after(() => Promise.all([cut.close(), reader.close()]));
  cut.publish("alive");
  await othersUntil("published", reader, (r) => r.length === 1);
  // Outlives several keep-alives (every TTL/3).
  await new Promise((resolve) => setTimeout(resolve, TTL_MS * 1.5));
  assert.equal((await reader.others()).length, 1, "kept alive past its TTL");
  proxy.pause();
  const cutAt = Date.now();
  await othersUntil("expired", reader, (r) => r.length === 0, TTL_MS + 8_000);
  t.diagnostic(
    `a cut-off candidate's record disappeared ${Date.now() - cutAt} ms after the cut (TTL ${TTL_MS})`,
  );
  proxy.heal();
  await othersUntil("republished after the heal", reader, (r) => r[0]?.position === "alive", 15_000);
  assert.ok(errors.length > 0, "the failed keep-alives were reported");
});

interface CapturedLog extends StoreLogger {
  lines: string[];
}

function capturedLog(): CapturedLog {
  const lines: string[] = [];
  const push =
    (level: string) =>
    (msg: string): void => {
      lines.push(`${level} ${msg}`);
    };
  return { lines, debug: push("debug"), info: push("info"), warn: push("warn"), error: push("error") };
}

/** Asks `election.verdict()` until it says acquire; returns how long that took. */
async function untilAcquire(election: CandidateElection, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const decision: ElectionDecision = await election.verdict();
    if (decision.acquire) return performance.now() - started;
    assert.ok(decision.retryInMs > 0 && decision.retryInMs <= 100, `retryInMs ${decision.retryInMs}`);
    assert.ok(performance.now() - started < timeoutMs, "still waiting");
    await new Promise((resolve) => setTimeout(resolve, decision.retryInMs));
  }
}

test("election: a lagging candidate waits for a live newer one, at most maxWaitMs per vacancy", async (t) => {
  const key = freshPrefix("election");
  let newerPos = pos({ "x.db": [9, 0x40] });
  let lagPos = pos({ "x.db": [9, 0x10] });
  let newerEligible = true;
  const newer = new CandidateElection({
    board: board(A, key),
    position: () => newerPos,
    maxWaitMs: 1000,
    publishIntervalMs: 20,
    log: capturedLog(),
  });
  const log = capturedLog();
  const lagging = new CandidateElection({
    board: board(B, key),
    position: () => lagPos,
    maxWaitMs: 1000,
    log,
  });
  t.after(() => Promise.all([newer.close(), lagging.close()]));
  newer.start(() => newerEligible);
  lagging.start(() => true);
  const reader = board("00000000000000cc", key);
  t.after(() => reader.close());
  await othersUntil("both published", reader, (r) => r.length === 2);

  // The newer one is alive: the lagging one waits out the bound, then goes ahead.
  const waited = await untilAcquire(lagging, 10_000);
  assert.ok(waited >= 1000, `acquired after ${waited} ms, before the 1000 ms bound`);
  assert.match(log.lines.join("\n"), /info a more up-to-date candidate is alive/);
  assert.match(log.lines.join("\n"), /warn the more up-to-date candidate did not take the lease in time/);
  // The window is per vacancy: still "acquire" until a holder ends the vacancy, then a new wait.
  assert.deepEqual(await lagging.verdict(), { acquire: true });
  lagging.vacancyEnded();
  assert.equal((await lagging.verdict()).acquire, false);

  // Caught up (equal positions): nobody waits for anybody.
  lagPos = newerPos;
  await othersUntil("lagging caught up", reader, (r) => new Set(r.map((x) => x.position)).size === 1);
  assert.deepEqual(await lagging.verdict(), { acquire: true });
  assert.deepEqual(await newer.verdict(), { acquire: true });

  // Behind again, and the newer one stops being eligible (e.g. it became primary): no wait.
  lagPos = pos({ "x.db": [9, 0x3f] });
  lagging.vacancyEnded();
  assert.equal((await lagging.verdict()).acquire, false);
  newerEligible = false;
  const afterWithdraw = await untilAcquire(lagging, 5_000);
  assert.ok(afterWithdraw < 1000, `the withdrawn record still held it back ${afterWithdraw} ms`);
  // A newer epoch with a lower TXID outranks: the ranking follows the epoch first.
  newerEligible = true;
  newerPos = pos({ "x.db": [10, 0x01] });
  lagging.vacancyEnded();
  await othersUntil("epoch 10 published", reader, (r) => r.some((x) => x.position.includes('"10/1"')));
  assert.equal((await lagging.verdict()).acquire, false);
});

test("election: an unreachable coordinator never blocks the verdict", async (t) => {
  const proxy = await FaultProxy.start({ label: "nowhere", target: { host: "127.0.0.1", port: 1 } });
  t.after(() => proxy.close());
  proxy.drop();
  const log = capturedLog();
  const election = new CandidateElection({
    board: board(B, freshPrefix("election-down"), [`http://${proxy.address}`]),
    position: () => pos({ "x.db": [1, 1] }),
    maxWaitMs: 60_000,
    log,
  });
  t.after(() => election.close());
  assert.deepEqual(await election.verdict(), { acquire: true });
  assert.match(log.lines.join("\n"), /debug cannot rank the candidates/);
});
