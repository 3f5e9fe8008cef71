// A replica follows a new primary at once (docs/lease.md, "The node"): its proxy forgets the old
// primary's proxy URL the moment the node follows another primary and learns the new one right away
// (primary-proxy-url.ts); its stream client is told to reconnect as soon as the new primary serves
// streams, not after its exponential backoff (replica-reconnect-nudge.ts). Real HTTP servers stand
// in for the primaries' node APIs (`GET /info`).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { PrimaryProxyDiscovery } from "../../src/node/primary-proxy-url.js";
import { ReplicaReconnectNudge } from "../../src/node/replica-reconnect-nudge.js";
import { quietLog } from "../lease/lease-test-kit.js";

interface FakeApi {
  url: string;
  /** What `/info` answers now. */
  info: { isPrimary: boolean; proxyURL: string | null };
  requests: number;
}

async function fakeApi(t: { after: (fn: () => Promise<void>) => void }, proxyURL: string): Promise<FakeApi> {
  const api: FakeApi = { url: "", info: { isPrimary: true, proxyURL }, requests: 0 };
  const server = http.createServer((req, res) => {
    api.requests++;
    const body = JSON.stringify(api.info);
    res.writeHead(req.url === "/info" ? 200 : 404, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - started;
}

test("the proxy's primary URL follows a change of primary at once", async (t) => {
  const a = await fakeApi(t, "http://10.0.0.1:8080");
  const b = await fakeApi(t, "http://10.0.0.2:8080");
  let following: string | null = a.url;
  // Long refresh and retry pauses: only the change of primary can make it ask again in this test.
  const discovery = new PrimaryProxyDiscovery({
    primaryApiUrl: () => following,
    authToken: null,
    log: quietLog,
    refreshMs: 600_000,
    retryMs: 600_000,
  });
  t.after(() => discovery.stop());
  discovery.start();
  await waitUntil("A's proxy URL", () => discovery.url() !== undefined, 5_000);
  assert.equal(discovery.url(), "http://10.0.0.1:8080");

  // The lease moved to B, which has not taken over yet (its /info says replica).
  b.info = { isPrimary: false, proxyURL: "http://10.0.0.2:8080" };
  following = b.url;
  assert.equal(discovery.url(), undefined, "still forwards to the old primary's proxy");
  discovery.primaryChanged();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(discovery.url(), undefined, "took the URL of a node that is not the primary yet");
  assert.ok(b.requests >= 2, `asked B only ${b.requests} time(s) while it was not primary yet`);

  b.info = { isPrimary: true, proxyURL: "http://10.0.0.2:8080" };
  const ms = await waitUntil("B's proxy URL", () => discovery.url() !== undefined, 5_000);
  assert.equal(discovery.url(), "http://10.0.0.2:8080");
  t.diagnostic(`B's proxy URL known ${Math.round(ms)} ms after B said it is the primary`);

  // No primary (an election): nothing to forward to.
  following = null;
  assert.equal(discovery.url(), undefined);
});

test("the replica is told to reconnect once the new primary serves streams", async (t) => {
  const b = await fakeApi(t, "http://10.0.0.2:8080");
  b.info = { isPrimary: false, proxyURL: null };
  let connected = false;
  let reconnects = 0;
  const nudge = new ReplicaReconnectNudge({
    replica: () => ({ connected: () => connected, reconnect: () => reconnects++ }),
    authToken: null,
    log: quietLog,
    intervalMs: 20,
    settleMs: 200,
  });
  t.after(() => nudge.stop());
  nudge.follow(b.url);
  await waitUntil("a few polls of B", () => b.requests >= 3, 5_000);
  assert.equal(reconnects, 0, "reconnected while the new primary still refuses streams");

  b.info = { isPrimary: true, proxyURL: null };
  await waitUntil("a reconnect", () => reconnects > 0, 5_000);
  assert.equal(reconnects, 1, "a nudge per poll would cut a slow attempt short over and over");
  // The attempt did not connect: after settleMs it is nudged again; once connected, never again.
  await waitUntil("a second reconnect", () => reconnects > 1, 5_000);
  connected = true;
  const after = reconnects;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(reconnects, after, "nudged a connected replica");
});

test("a connection attempt under way is left to answer, unless it is older than settleMs", async (t) => {
  const b = await fakeApi(t, "http://10.0.0.2:8080");
  b.info = { isPrimary: true, proxyURL: null };
  let attemptStartedAt: number | null = performance.now();
  let reconnects = 0;
  const nudge = new ReplicaReconnectNudge({
    replica: () => ({
      connected: () => false,
      reconnect: () => reconnects++,
      attemptAgeMs: () => (attemptStartedAt === null ? null : performance.now() - attemptStartedAt),
    }),
    authToken: null,
    log: quietLog,
    intervalMs: 20,
    settleMs: 400,
  });
  t.after(() => nudge.stop());
  nudge.follow(b.url);
  await waitUntil("a few polls of B", () => b.requests >= 3, 5_000);
  assert.equal(reconnects, 0, "cut short an attempt that had just begun");
  // The attempt hangs past settleMs: it is cut and replaced.
  await waitUntil("a reconnect of the old attempt", () => reconnects > 0, 5_000);
  assert.ok(performance.now() - attemptStartedAt >= 400);
  // Waiting between attempts (no attempt under way): nudged at the next poll.
  attemptStartedAt = null;
  const before = reconnects;
  await waitUntil("a reconnect of a waiting client", () => reconnects > before, 5_000);
});
