// A handoff's pace step (src/node/handoff-pacer.ts) against what a target answers: a `GET /pos` server
// on loopback standing in for a replica that applies, never gains, or is not there; commits announced
// as the store announces them (the listener), answered when the pacer lets the mount answer them.
// End to end, with a real writer, mount and target: test/node/handoff-backlog.
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { formatPos } from "../../src/ltx/pos.js";
import { HandoffPacer, PACE_WINDOW_TX } from "../../src/node/handoff-pacer.js";
import type { CommitEvent } from "../../src/store/commit-event.js";
import { freeLoopbackPort } from "../support/free-port.js";

const DB = "a.db";

/** A server answering `GET /pos` with `txid()` for DB; counts the requests, keeps the last auth. */
async function posServer(
  t: { after: (fn: () => unknown) => void },
  txid: () => bigint,
  delayMs = 0,
): Promise<{ url: string; requests: () => number; auth: () => string | undefined }> {
  let requests = 0;
  let auth: string | undefined;
  const server = http.createServer((req, res) => {
    requests++;
    auth = req.headers.authorization;
    assert.equal(req.url, "/pos");
    setTimeout(() => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ [DB]: formatPos({ txid: txid(), checksum: 1n }) }));
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests: () => requests, auth: () => auth };
}

/** A local commit of `txid` as the store announces it, then the mount's question before its answer. */
function commit(
  pacer: HandoffPacer,
  txid: bigint,
  source: CommitEvent["source"] = "wal",
): Promise<void> | null {
  pacer.onCommit({ db: DB, pos: { txid, checksum: 1n }, source } as CommitEvent);
  return pacer.afterChange(DB);
}

/** Resolves to true once `p` settled, or false after `ms`. */
async function settledWithin(p: Promise<void>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

test("outside a pace step nothing is held", () => {
  const pacer = new HandoffPacer();
  assert.equal(commit(pacer, 5n), null);
  assert.equal(pacer.afterChange(DB), null);
});

test("a commit the target is too far behind is answered once it applied all but the window", async (t) => {
  let theirs = 10n;
  let head = 40n;
  const target = await posServer(t, () => theirs);
  const pacer = new HandoffPacer();
  const pacing = pacer.pace({
    url: target.url,
    authToken: "secret",
    head: () => new Map([[DB, head]]),
    holdMaxMs: 60_000, // only the target's progress releases it here
  });
  await sleep(50); // the first answers are in
  head = 41n;
  const held = commit(pacer, 41n);
  assert.ok(held !== null, "a commit during the pace step was answered at once");
  await sleep(100);
  assert.equal(await settledWithin(held, 0), false, "released while the target was 31 behind");
  // Not a commit (a page write in the same database): nothing to hold.
  assert.equal(pacer.afterChange(DB), null);
  // Replicated transactions are not the writers' to wait for.
  assert.equal(commit(pacer, 42n, "replication"), null);
  theirs = 41n - BigInt(PACE_WINDOW_TX) - 1n; // one short of the window
  await sleep(100);
  assert.equal(await settledWithin(held, 0), false, "released one transaction short of the window");
  theirs = 41n - BigInt(PACE_WINDOW_TX);
  assert.equal(await settledWithin(held, 5_000), true, "not released within the window");
  // The target within the window of the head (41): the step ends, close.
  const result = await pacing;
  assert.equal(result.close, true, JSON.stringify(result));
  assert.equal(result.behind, PACE_WINDOW_TX);
  assert.equal(result.held, 1);
  assert.ok(result.longestHoldMs >= 200, JSON.stringify(result));
  assert.equal(target.auth(), "Bearer secret");
  // Once the step ended, nothing is held again.
  assert.equal(commit(pacer, 43n), null);
});

test("before the target's first answer nothing is held (a commit would wait blind)", async (t) => {
  const target = await posServer(t, () => 0n, 300);
  const pacer = new HandoffPacer();
  const pacing = pacer.pace({ url: target.url, authToken: null, head: () => new Map([[DB, 100n]]) });
  assert.equal(commit(pacer, 100n), null);
  await sleep(400); // the first answer (0: 100 behind) is in
  const held = commit(pacer, 101n);
  assert.ok(held !== null, "a commit 101 ahead of the target's answer was answered at once");
  await held; // by its bound (50 ms)
  const result = await pacing; // given up: no gain for 500 ms
  assert.equal(result.close, false);
  assert.equal(result.held, 1);
});

test("a commit close enough to the target is answered at once", async (t) => {
  const target = await posServer(t, () => 95n);
  const pacer = new HandoffPacer();
  // The target stays 5 + the window behind the head until this test moves the head back.
  let head = 95n + BigInt(PACE_WINDOW_TX) + 5n;
  const pacing = pacer.pace({ url: target.url, authToken: null, head: () => new Map([[DB, head]]) });
  await sleep(50); // the first answers are in
  assert.equal(commit(pacer, 95n + BigInt(PACE_WINDOW_TX)), null);
  head = 95n + BigInt(PACE_WINDOW_TX);
  const result = await pacing;
  assert.equal(result.close, true);
  assert.equal(result.held, 0);
  assert.equal(target.auth(), undefined);
});

test("no commit waits longer than the bound; a target that does not gain is given up", async (t) => {
  const target = await posServer(t, () => 1n);
  const pacer = new HandoffPacer();
  let ended = false;
  const pacing = pacer
    .pace({
      url: target.url,
      authToken: null,
      head: () => new Map([[DB, 500n]]),
      holdMaxMs: 40,
      stallMs: 400,
    })
    .finally(() => (ended = true));
  await sleep(30); // the first answers are in
  const held = commit(pacer, 500n);
  assert.ok(held !== null);
  await held;
  assert.equal(ended, false, "the commit was released only by the end of the step, not by its bound");
  const result = await pacing;
  assert.equal(result.close, false);
  assert.equal(result.behind, 499);
  assert.equal(result.held, 1);
  assert.ok(target.requests() >= 2, `${target.requests()} requests`);
});

test("an abandoned step ends at once and lets every held commit go", async (t) => {
  const target = await posServer(t, () => 0n);
  const pacer = new HandoffPacer();
  let abandoned = false;
  const pacing = pacer.pace({
    url: target.url,
    authToken: null,
    head: () => new Map([[DB, 50n]]),
    abandoned: () => abandoned,
    holdMaxMs: 60_000,
    stallMs: 60_000,
    maxMs: 60_000,
  });
  await sleep(30); // the first answers are in
  const held = commit(pacer, 50n);
  assert.ok(held !== null);
  await sleep(100);
  assert.equal(await settledWithin(held, 0), false);
  abandoned = true;
  const result = await pacing;
  assert.equal(result.close, false);
  assert.equal(await settledWithin(held, 0), true, "a commit still held after the step ended");
});

test("a target that is not there is given up with the error; no commit waits for it", async () => {
  const port = await freeLoopbackPort();
  const pacer = new HandoffPacer();
  const pacing = pacer.pace({
    url: `http://127.0.0.1:${port}`,
    authToken: null,
    head: () => new Map([[DB, 7n]]),
    stallMs: 300,
  });
  await sleep(50); // several requests refused by now
  assert.equal(commit(pacer, 7n), null);
  const result = await pacing;
  assert.equal(result.close, false);
  assert.equal(result.behind, null);
  assert.match(result.error ?? "", /ECONNREFUSED/);
  assert.equal(result.held, 0);
});

test("one pace step at a time", async (t) => {
  const target = await posServer(t, () => 0n);
  const pacer = new HandoffPacer();
  const first = pacer.pace({ url: target.url, authToken: null, head: () => new Map([[DB, 0n]]) });
  await assert.rejects(
    pacer.pace({ url: target.url, authToken: null, head: () => new Map([[DB, 0n]]) }),
    /already running/,
  );
  assert.equal((await first).close, true);
});
