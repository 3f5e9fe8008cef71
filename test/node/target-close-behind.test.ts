// The primary's wait for its SIGTERM handoff target (src/node/target-close-behind.ts) against what a
// target answers: a `GET /pos` server on loopback standing in for a replica that catches up, never
// gains, or is not there. The real thing end to end: test/node/handoff-backlog's SIGTERM test.
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { formatPos } from "../../src/ltx/pos.js";
import { waitTargetCloseBehind } from "../../src/node/target-close-behind.js";
import { freeLoopbackPort } from "../support/free-port.js";

/** A server answering `GET /pos` with `txid()` for database "a.db"; counts the requests. */
async function posServer(
  t: { after: (fn: () => unknown) => void },
  txid: () => bigint,
): Promise<{ url: string; requests: () => number; auth: () => string | undefined }> {
  let requests = 0;
  let auth: string | undefined;
  const server = http.createServer((req, res) => {
    requests++;
    auth = req.headers.authorization;
    assert.equal(req.url, "/pos");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ "a.db": formatPos({ txid: txid(), checksum: 1n }) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests: () => requests, auth: () => auth };
}

test("close behind once the target has what was committed a window before the request", async (t) => {
  let theirs = 10n;
  const target = await posServer(t, () => {
    theirs += 5n; // applies 5 transactions between two requests
    return theirs;
  });
  const result = await waitTargetCloseBehind({
    url: target.url,
    authToken: "s3cret",
    head: () => new Map([["a.db", 40n]]),
    pollMs: 1,
  });
  assert.equal(result.closeBehind, true, JSON.stringify(result));
  assert.equal(result.behind, 0);
  assert.ok(theirs >= 40n);
  assert.equal(target.auth(), "Bearer s3cret", "the node's token goes with the request");
});

test("a target that stops gaining is given up after the stall bound", async (t) => {
  const target = await posServer(t, () => 7n);
  const started = performance.now();
  const result = await waitTargetCloseBehind({
    url: target.url,
    authToken: null,
    head: () => new Map([["a.db", 50n]]),
    stallMs: 150,
    maxMs: 5000,
  });
  const ms = performance.now() - started;
  assert.equal(result.closeBehind, false);
  assert.equal(result.behind, 43);
  assert.ok(ms >= 150 && ms < 4000, `gave up after ${ms} ms`);
  assert.ok(target.requests() >= 2);
});

test("a database the target does not have counts whole; an unreachable target is given up", async (t) => {
  const target = await posServer(t, () => 100n);
  const missing = await waitTargetCloseBehind({
    url: target.url,
    authToken: null,
    head: () =>
      new Map([
        ["a.db", 100n],
        ["b.db", 3n],
      ]),
    stallMs: 60,
  });
  assert.deepEqual([missing.closeBehind, missing.behind], [false, 3]);

  const port = await freeLoopbackPort(); // nobody listens there
  const gone = await waitTargetCloseBehind({
    url: `http://127.0.0.1:${port}`,
    authToken: null,
    head: () => new Map([["a.db", 1n]]),
    stallMs: 60,
  });
  assert.equal(gone.closeBehind, false);
  assert.equal(gone.behind, null);
  assert.match(gone.error ?? "", /ECONNREFUSED/);
});
