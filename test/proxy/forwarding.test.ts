// The proxy's plumbing with real servers on loopback: loop protection, no primary, fly-replay, an app
// that is down or still starting, client disconnects, streamed bodies, slow requests next to fast ones,
// the write timeout, and the headers the app and the client see.

import assert from "node:assert/strict";
import http from "node:http";
import { after, describe, test } from "node:test";

import { PROXY_ERROR_HEADER, ProxyCounters, ProxyServer } from "../../src/proxy/index.js";
import type { ProxyConfig } from "../../src/config/config.js";
import { freeLoopbackPort } from "../support/free-port.js";
import { TestNodeView, closeServer, hostPort, httpRequest, proxyConfig } from "./proxy-test-kit.js";
import { startTestApp, type TestApp } from "./test-app.js";

const servers: http.Server[] = [];
const proxies: ProxyServer[] = [];

after(async () => {
  for (const proxy of proxies) await proxy.close();
  for (const server of servers) await closeServer(server);
});

async function app(tag: string, port?: number): Promise<TestApp> {
  const started = await startTestApp(tag, port);
  servers.push(started.server);
  return started;
}

async function proxy(
  target: string,
  view: TestNodeView,
  overrides: Partial<ProxyConfig> = {},
  extra: { connectRetryMs?: number; metrics?: ProxyCounters; forwardedWaitMs?: number } = {},
): Promise<ProxyServer> {
  const server = new ProxyServer({ config: proxyConfig(target, overrides), view, ...extra });
  proxies.push(server);
  await server.listen();
  return server;
}

function primaryView(): TestNodeView {
  return new TestNodeView({ primary: true, db: "guestbook.db" });
}

function replicaView(primaryUrl?: string): TestNodeView {
  return new TestNodeView({ primary: false, db: "guestbook.db", primaryUrl });
}

/** A primary node (app + proxy) and a replica node (app + proxy) forwarding to it. */
async function pair(replicaOverrides: Partial<ProxyConfig> = {}): Promise<{
  primaryApp: TestApp;
  replicaApp: TestApp;
  primary: ProxyServer;
  replica: ProxyServer;
  replicaMetrics: ProxyCounters;
}> {
  const primaryApp = await app("primary");
  const replicaApp = await app("replica");
  const primary = await proxy(hostPort(primaryApp.address), primaryView());
  const replicaMetrics = new ProxyCounters();
  const replica = await proxy(hostPort(replicaApp.address), replicaView(primary.url), replicaOverrides, {
    metrics: replicaMetrics,
  });
  return { primaryApp, replicaApp, primary, replica, replicaMetrics };
}

describe("proxy: forwarding", () => {
  test("writes on a replica reach the primary's app, reads the local app; always-forward reads the primary", async () => {
    const { primaryApp, replica } = await pair({ alwaysForward: ["/admin/*"] });
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      const answer = await httpRequest(replica.url + "/things?id=1", { method, body: "" });
      assert.equal(answer.body, `app primary: ${method} /things?id=1`);
      assert.match(String(answer.headers["litefs-txid"]), /^[0-9a-f]{16}\/[0-9a-f]{16}$/);
    }
    assert.equal((await httpRequest(replica.url + "/things")).body, "app replica: GET /things");
    assert.equal((await httpRequest(replica.url + "/admin/x")).body, "app primary: GET /admin/x");
    assert.equal((await httpRequest(replica.url + "/admin/x", { method: "HEAD" })).status, 200);
    assert.ok(primaryApp.seen.includes("HEAD /admin/x"));
  });

  test("headers: X-Forwarded-* added, hop-by-hop and the hop marker never reach the app, Host kept", async () => {
    const { replica } = await pair();
    const answer = await httpRequest(replica.url + "/headers", {
      method: "POST",
      headers: {
        host: "guestbook.example",
        connection: "keep-alive, x-private",
        "x-private": "dropped",
        "keep-alive": "timeout=5",
        "x-forwarded-for": "203.0.113.7",
        "x-custom": "kept",
      },
      body: "",
    });
    const seen = JSON.parse(answer.body) as { headers: http.IncomingHttpHeaders };
    assert.equal(seen.headers.host, "guestbook.example");
    assert.equal(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1, 127.0.0.1");
    assert.equal(seen.headers["x-forwarded-proto"], "http");
    assert.equal(seen.headers["x-forwarded-host"], "guestbook.example");
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["x-private"], undefined);
    assert.equal(seen.headers["keep-alive"], undefined);
    assert.equal(seen.headers["litefs-proxy-hop"], undefined);
    // The app's own Litefs-Txid header on a write is replaced by the primary's TXID.
    assert.equal(answer.headers["litefs-txid"], "0000000000000000/0000000000000000");
  });

  test("loop protection: two replicas that take each other for the primary forward once, then refuse", async () => {
    const appA = await app("a");
    const appB = await app("b");
    const viewA = replicaView();
    const viewB = replicaView();
    const metricsA = new ProxyCounters();
    const metricsB = new ProxyCounters();
    const a = await proxy(hostPort(appA.address), viewA, {}, { metrics: metricsA, forwardedWaitMs: 100 });
    const b = await proxy(hostPort(appB.address), viewB, {}, { metrics: metricsB, forwardedWaitMs: 100 });
    viewA.primaryUrl = b.url;
    viewB.primaryUrl = a.url;
    const answer = await httpRequest(a.url + "/", { method: "POST", body: "x" });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYLOOP");
    assert.match(answer.body, /already forwarded by another LiteFS proxy/);
    assert.equal(metricsA.snapshot().requests.forwarded, 1);
    assert.equal(metricsB.snapshot().requests.forwarded, 0);
    assert.equal(metricsB.snapshot().errors.EPROXYLOOP, 1);
    assert.deepEqual([...appA.seen, ...appB.seen], []);
  });

  test("a forwarded write waits for the node it reached to become primary (a handoff's target)", async () => {
    const targetApp = await app("target");
    const targetView = replicaView();
    const target = await proxy(hostPort(targetApp.address), targetView, {}, { forwardedWaitMs: 5000 });
    const replicaApp = await app("replica");
    const replica = await proxy(hostPort(replicaApp.address), replicaView(target.url));
    const pending = httpRequest(replica.url + "/early", { method: "POST", body: "x" });
    setTimeout(() => (targetView.primary = true), 100);
    const answer = await pending;
    assert.equal(answer.body, "app target: POST /early");
    assert.deepEqual(replicaApp.seen, []);
  });

  test("a write a stale replica forwards to a deposed primary goes on to the primary it knows; never back to the sender", async () => {
    const newApp = await app("new");
    const current = await proxy(hostPort(newApp.address), primaryView());
    const oldApp = await app("deposed");
    const oldView = replicaView(current.url);
    const deposed = await proxy(hostPort(oldApp.address), oldView);
    const staleApp = await app("stale");
    const stale = await proxy(hostPort(staleApp.address), replicaView(deposed.url));
    const answer = await httpRequest(stale.url + "/stale", { method: "POST", body: "x" });
    assert.equal(answer.body, "app new: POST /stale");
    assert.deepEqual([...oldApp.seen, ...staleApp.seen], []);
    // The deposed primary does not know the new one's proxy yet (it is asking): the write waits for it.
    oldView.primaryUrl = undefined;
    const later = httpRequest(stale.url + "/later", { method: "POST", body: "x" });
    setTimeout(() => (oldView.primaryUrl = current.url), 100);
    assert.equal((await later).body, "app new: POST /later");

    // A handoff's target that still takes the sender for the primary waits to become primary itself.
    const targetApp = await app("target");
    const targetView = replicaView(deposed.url);
    const target = await proxy(hostPort(targetApp.address), targetView, {}, { forwardedWaitMs: 5000 });
    oldView.primaryUrl = target.url;
    const pending = httpRequest(deposed.url + "/handed", { method: "POST", body: "x" });
    setTimeout(() => (targetView.primary = true), 100);
    assert.equal((await pending).body, "app target: POST /handed");
    assert.deepEqual(oldApp.seen, []);
  });

  test("a write the handoff's target forwarded to the primary handing off goes back to it, now primary", async () => {
    // The target takes the old primary for the primary until it holds the lease, so writes sent through
    // its proxy reach the old primary and wait there for the handoff; the old primary then knows the
    // target as the primary, which is where they came from. Before, they waited forwardedWaitMs there
    // and failed with EPROXYLOOP.
    const oldApp = await app("old");
    const oldView = primaryView();
    const old = await proxy(hostPort(oldApp.address), oldView, {}, { forwardedWaitMs: 5000 });
    const targetApp = await app("target");
    const targetView = replicaView(old.url);
    const target = await proxy(hostPort(targetApp.address), targetView, {}, { forwardedWaitMs: 5000 });
    oldView.handingOffNow = true;
    const pending = httpRequest(target.url + "/during", { method: "POST", body: "x" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(oldApp.seen, [], "a write reached the app of a primary handing off");
    oldView.primary = false;
    oldView.handingOffNow = false;
    oldView.primaryUrl = target.url;
    setTimeout(() => {
      targetView.primary = true;
      targetView.primaryUrl = undefined;
    }, 50);
    const answer = await pending;
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, "app target: POST /during");
    assert.deepEqual(oldApp.seen, []);
  });

  test("a write reaching a primary that hands off waits, then goes to the next primary", async () => {
    const nextApp = await app("next");
    const next = await proxy(hostPort(nextApp.address), primaryView());
    const oldApp = await app("old");
    const oldView = primaryView();
    const old = await proxy(hostPort(oldApp.address), oldView, {}, { forwardedWaitMs: 100 });
    const replicaApp = await app("third");
    const replica = await proxy(hostPort(replicaApp.address), replicaView(old.url));
    oldView.handingOffNow = true;
    // From a client of the old primary, and forwarded to it by a replica's proxy (a second hop later).
    const direct = httpRequest(old.url + "/direct", { method: "POST", body: "x" });
    const viaReplica = httpRequest(replica.url + "/forwarded", { method: "POST", body: "x" });
    // A request already forwarded twice is never forwarded a third time.
    const twice = httpRequest(old.url + "/twice", {
      method: "POST",
      body: "x",
      headers: { "litefs-proxy-hop": "2" },
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(oldApp.seen, [], "a write reached the app of a primary handing off");
    oldView.primary = false;
    oldView.handingOffNow = false;
    oldView.primaryUrl = next.url;
    assert.equal((await direct).body, "app next: POST /direct");
    assert.equal((await viaReplica).body, "app next: POST /forwarded");
    const refused = await twice;
    assert.equal(refused.status, 503);
    assert.equal(refused.headers[PROXY_ERROR_HEADER], "EPROXYLOOP");
    assert.deepEqual(oldApp.seen, []);
    assert.deepEqual(replicaApp.seen, []);
  });

  test("a handoff that fails: the held write goes to the app of the primary it reached", async () => {
    const localApp = await app("kept");
    const view = primaryView();
    const primary = await proxy(hostPort(localApp.address), view);
    view.handingOffNow = true;
    const pending = httpRequest(primary.url + "/kept", { method: "POST", body: "x" });
    const read = await httpRequest(primary.url + "/read");
    assert.equal(read.body, "app kept: GET /read", "a read waited for the handoff");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(localApp.seen, ["GET /read"]);
    view.handingOffNow = false;
    const answer = await pending;
    assert.equal(answer.body, "app kept: POST /kept");
    assert.match(String(answer.headers["litefs-txid"]), /^[0-9a-f]{16}\/[0-9a-f]{16}$/);
  });

  test("a write the app answers after its term ended without a handoff is refused as of unknown outcome", async () => {
    const local = await app("term");
    const view = primaryView();
    view.epoch = 7n;
    const primary = await proxy(hostPort(local.address), view);
    // Answered while the term lasts: relayed, with the TXID after it.
    const kept = httpRequest(primary.url + "/slow", { method: "POST", body: "x" });
    (await local.nextSlow()).release("stored");
    assert.equal((await kept).body, "stored");

    // The term ends (the lease expired, or was taken) while the app holds its answer; the node has a
    // newer term by the time the answer comes: the write is judged by the term it ran in.
    const lost = httpRequest(primary.url + "/slow", { method: "POST", body: "x" });
    const slow = await local.nextSlow();
    view.unacknowledgeable.add(7n);
    view.epoch = 9n;
    slow.release("stored");
    const refused = await lost;
    assert.equal(refused.status, 503, refused.body);
    assert.equal(refused.headers[PROXY_ERROR_HEADER], "EPROXYLEASELOST");
    assert.match(refused.body, /epoch 7\b.*outcome is unknown/s);
    assert.equal(refused.headers["litefs-txid"], undefined, "no position for a write not acknowledged");
    assert.deepEqual(view.acknowledgeAsked, [7n, 7n]);

    // The app's own failure is its answer; a read is not a write: both relayed as they are.
    view.epoch = 7n;
    const failing = httpRequest(primary.url + "/slow", { method: "POST", body: "x" });
    (await local.nextSlow()).release("constraint failed", 409);
    const failed = await failing;
    assert.equal(failed.status, 409);
    assert.equal(failed.body, "constraint failed");
    const read = httpRequest(primary.url + "/slow");
    (await local.nextSlow()).release("rows");
    assert.equal((await read).body, "rows");
    assert.deepEqual(view.acknowledgeAsked, [7n, 7n], "asked about neither");
  });

  test("close with a grace period lets an exchange in progress finish; without one it is cut", async () => {
    const local = await app("closing");
    const graceful = new ProxyServer({ config: proxyConfig(hostPort(local.address)), view: primaryView() });
    await graceful.listen();
    const answer = httpRequest(graceful.url + "/slow", { method: "POST", body: "x" });
    const slow = await local.nextSlow();
    assert.equal(graceful.localWritesInFlight, 1, "a write at the app is counted (a handoff waits for it)");
    const closing = graceful.close({ graceMs: 5_000 });
    setTimeout(() => slow.release("finished"), 100);
    assert.equal((await answer).body, "finished");
    assert.equal(graceful.localWritesInFlight, 0);
    await closing;

    const abrupt = new ProxyServer({ config: proxyConfig(hostPort(local.address)), view: primaryView() });
    await abrupt.listen();
    const cut = httpRequest(abrupt.url + "/slow", { method: "POST", body: "x" }).then(
      () => "answered",
      () => "cut",
    );
    const slowToo = await local.nextSlow();
    await abrupt.close();
    assert.equal(await cut, "cut");
    await slowToo.closed;
  });

  test("no primary known: a write waits primary-redirect-timeout, then 503", async () => {
    const local = await app("lonely");
    const replica = await proxy(hostPort(local.address), replicaView(), { primaryRedirectTimeoutMs: 150 });
    const started = Date.now();
    const answer = await httpRequest(replica.url + "/", { method: "POST", body: "x" });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYNOPRIMARY");
    assert.equal(answer.headers["retry-after"], "1");
    assert.match(answer.body, /no primary is known after waiting 150 ms/);
    assert.ok(Date.now() - started >= 140, "it waited for a primary first");
    assert.deepEqual(local.seen, []);
  });

  test("a primary elected during the wait gets the write; becoming primary meanwhile serves it locally", async () => {
    const primaryApp = await app("primary");
    const primary = await proxy(hostPort(primaryApp.address), primaryView());
    const localApp = await app("local");
    const view = replicaView();
    const replica = await proxy(hostPort(localApp.address), view, { primaryRedirectTimeoutMs: 5000 });
    const pending = httpRequest(replica.url + "/elected", { method: "POST", body: "x" });
    setTimeout(() => (view.primaryUrl = primary.url), 100);
    assert.equal((await pending).body, "app primary: POST /elected");

    view.primaryUrl = undefined;
    const promoted = httpRequest(replica.url + "/promoted", { method: "POST", body: "x" });
    setTimeout(() => (view.primary = true), 100);
    const answer = await promoted;
    assert.equal(answer.body, "app local: POST /promoted");
    assert.match(String(answer.headers["litefs-txid"]), /^[0-9a-f]{16}\/[0-9a-f]{16}$/);
  });

  test("fly-replay mode answers writes with fly-replay: instance=<primary> instead of forwarding", async () => {
    const local = await app("fly");
    const view = replicaView();
    view.primaryHost = "machine-1";
    const metrics = new ProxyCounters();
    const replica = await proxy(hostPort(local.address), view, { mode: "fly-replay" }, { metrics });
    const answer = await httpRequest(replica.url + "/", { method: "POST", body: "x" });
    assert.equal(answer.status, 409);
    assert.equal(answer.headers["fly-replay"], "instance=machine-1");
    assert.equal(metrics.snapshot().requests.replayed, 1);
    assert.equal((await httpRequest(replica.url + "/")).body, "app fly: GET /");
    assert.deepEqual(local.seen, ["GET /"]);
  });

  test("an app that is not up: retried for connect-retry, then 502 with a clear body", async () => {
    const port = await freeLoopbackPort();
    const metrics = new ProxyCounters();
    const front = await proxy(`127.0.0.1:${port}`, primaryView(), {}, { connectRetryMs: 300, metrics });
    const started = Date.now();
    const answer = await httpRequest(front.url + "/");
    assert.equal(answer.status, 502);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYAPPDOWN");
    assert.match(
      answer.body,
      new RegExp(
        `the app at 127\\.0\\.0\\.1:${port} is not accepting connections \\(ECONNREFUSED\\) after \\d+ attempts over 300 ms`,
      ),
    );
    assert.ok(Date.now() - started >= 290);
    assert.equal(metrics.snapshot().errors.EPROXYAPPDOWN, 1);
  });

  test("an app that starts late: the request (body included) is retried until it is up", async () => {
    const port = await freeLoopbackPort();
    const front = await proxy(`127.0.0.1:${port}`, primaryView(), {}, { connectRetryMs: 5000 });
    const pending = httpRequest(front.url + "/echo", { method: "POST", body: "early body" });
    await new Promise((r) => setTimeout(r, 200));
    await app("late", port);
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.body, "early body");
  });

  test("a client that disconnects aborts the upstream request (local app, and across a forward)", async () => {
    const { primaryApp, replicaApp, replica } = await pair();
    for (const [method, target] of [
      ["GET", replicaApp],
      ["POST", primaryApp],
    ] as const) {
      const controller = new AbortController();
      const pending = httpRequest(replica.url + "/slow", { method, body: "", signal: controller.signal });
      pending.catch(() => undefined);
      const slow = await target.nextSlow();
      controller.abort();
      await slow.closed; // the app saw the connection go: it would hang here otherwise
      await assert.rejects(pending);
    }
  });

  test("a slow request does not hold up others, and is answered when the app answers", async () => {
    const { primaryApp, replica } = await pair();
    const slowAnswer = httpRequest(replica.url + "/slow", { method: "POST", body: "" });
    const slow = await primaryApp.nextSlow();
    const fast = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        httpRequest(replica.url + `/fast${i}`, { method: i % 2 ? "POST" : "GET" }),
      ),
    );
    assert.deepEqual(
      fast.map((a) => a.status),
      fast.map(() => 200),
    );
    slow.release("finally");
    assert.equal((await slowAnswer).body, "finally");
  });

  test("bodies stream both ways through a forward: 8 MiB up and back, a dripping answer chunk by chunk", async () => {
    const { replica } = await pair();
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 12)) & 0xff;
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request(replica.url + "/echo", { method: "PUT", agent: false });
      req.on("error", reject);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks)));
      });
      // Written in pieces with chunked encoding: nothing has the whole body up front.
      for (let offset = 0; offset < payload.length; offset += 256 * 1024) {
        req.write(payload.subarray(offset, offset + 256 * 1024));
      }
      req.end();
    });
    assert.ok(echoed.equals(payload));

    const firstChunkFirst = await new Promise<boolean>((resolve, reject) => {
      const req = http.get(replica.url + "/drip?n=10", { agent: false }, (res) => {
        let first: string | undefined;
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          // The first chunk arrives alone: the proxy does not buffer the answer.
          first ??= c;
        });
        res.on("end", () => resolve(first === "chunk 0\n"));
      });
      req.on("error", reject);
    });
    assert.ok(firstChunkFirst);
  });

  test("write-timeout: an exchange still without an answer after it gets 504", async () => {
    const slowApp = await app("slow");
    const front = await proxy(hostPort(slowApp.address), primaryView(), { writeTimeoutMs: 150 });
    const pending = httpRequest(front.url + "/slow");
    const slow = await slowApp.nextSlow();
    const answer = await pending;
    assert.equal(answer.status, 504);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYWRITETIMEOUT");
    await slow.closed;
  });

  test("debug: one log line per request; errors the proxy answers itself logged as warnings", async () => {
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> = [];
    const record =
      (level: string) =>
      (msg: string, fields?: Record<string, unknown>): void => {
        lines.push({ level, msg, fields });
      };
    const local = await app("logged");
    const front = new ProxyServer({
      config: proxyConfig(hostPort(local.address), { debug: true, primaryRedirectTimeoutMs: 50 }),
      view: replicaView(),
      log: { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") },
    });
    proxies.push(front);
    await front.listen();
    assert.equal((await httpRequest(front.url + "/page")).status, 200);
    assert.equal((await httpRequest(front.url + "/page", { method: "POST", body: "x" })).status, 503);
    // The line is written when the exchange closes, which may come just after the client has the answer.
    const deadline = Date.now() + 2000;
    while (lines.filter((l) => l.level === "info").length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const info = lines.filter((l) => l.level === "info");
    assert.deepEqual(
      info.map((l) => [l.msg, l.fields?.method, l.fields?.path, l.fields?.status]),
      [
        ["proxy: request", "GET", "/page", 200],
        ["proxy: request", "POST", "/page", 503],
      ],
    );
    const warnings = lines.filter((l) => l.level === "warn");
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].fields?.code, "EPROXYNOPRIMARY");
  });
});
