// Two nodes on loopback, each a real guestbook app on its own SQLite file behind a real proxy: writes
// through the replica's proxy are forwarded to the primary; reads through the replica that carry the
// TXID of the client's last write wait until "replication" (SQLite's backup API from the primary's file
// to the replica's, held back by the test) has brought the replica there.

import assert from "node:assert/strict";
import fs from "node:fs";
import type http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { GuestbookDb } from "../../examples/guestbook/guestbook-db.js";
import { createGuestbookServer, listenGuestbook } from "../../examples/guestbook/guestbook-server.js";
import { PROXY_ERROR_HEADER, ProxyCounters, ProxyServer, formatToken } from "../../src/proxy/index.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import {
  TestNodeView,
  branchChecksum,
  closeServer,
  cookieFrom,
  fileChangeCounter,
  hostPort,
  httpRequest,
  proxyConfig,
  replicate,
} from "./proxy-test-kit.js";

interface Entry {
  id: number;
  name: string;
  message: string;
}

describe("proxy: forwarded writes and read-your-writes across two nodes", () => {
  let dir: string;
  let primaryDbPath: string;
  let replicaDbPath: string;
  const dbs: GuestbookDb[] = [];
  const apps: http.Server[] = [];
  const proxies: ProxyServer[] = [];
  let primaryView: TestNodeView;
  let replicaView: TestNodeView;
  let primaryMetrics: ProxyCounters;
  let replicaMetrics: ProxyCounters;
  let primaryProxy: ProxyServer;
  let replicaProxy: ProxyServer;
  let replicaAppTarget: string;

  async function startApp(db: GuestbookDb, name: string): Promise<string> {
    dbs.push(db);
    const app = createGuestbookServer({ db, nodeName: name });
    apps.push(app);
    return hostPort(await listenGuestbook(app, "127.0.0.1", 0));
  }

  async function startProxy(proxy: ProxyServer): Promise<ProxyServer> {
    proxies.push(proxy);
    await proxy.listen();
    return proxy;
  }

  const catchUp = (): Promise<bigint> => replicate(primaryDbPath, replicaDbPath, replicaView);

  before(async () => {
    dir = makeTempDir("proxy-ryw");
    fs.mkdirSync(path.join(dir, "primary"));
    fs.mkdirSync(path.join(dir, "replica"));
    primaryDbPath = path.join(dir, "primary", "guestbook.db");
    replicaDbPath = path.join(dir, "replica", "guestbook.db");

    const primaryTarget = await startApp(
      new GuestbookDb({ path: primaryDbPath, journalMode: "delete" }),
      "primary",
    );
    primaryView = new TestNodeView({
      primary: true,
      db: "guestbook.db",
      readTxid: () => fileChangeCounter(primaryDbPath),
    });
    primaryMetrics = new ProxyCounters();
    primaryProxy = await startProxy(
      new ProxyServer({ config: proxyConfig(primaryTarget), view: primaryView, metrics: primaryMetrics }),
    );

    replicaView = new TestNodeView({ primary: false, db: "guestbook.db", primaryUrl: primaryProxy.url });
    await catchUp(); // a replica's app starts once the node has synced, as under LiteFS
    replicaAppTarget = await startApp(new GuestbookDb({ path: replicaDbPath, readOnly: true }), "replica");
    replicaMetrics = new ProxyCounters();
    replicaProxy = await startProxy(
      new ProxyServer({ config: proxyConfig(replicaAppTarget), view: replicaView, metrics: replicaMetrics }),
    );
  });

  after(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const app of apps) await closeServer(app);
    for (const db of dbs) db.close();
    if (dir !== undefined) removeTempDir(dir);
  });

  test("a form post through the replica is forwarded; the browser's next page waits for it (cookie)", async () => {
    const before = replicaMetrics.snapshot();
    const posted = await httpRequest(replicaProxy.url + "/", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "name=Ada&message=" + encodeURIComponent("hello <from> the replica"),
    });
    assert.equal(posted.status, 303, posted.body);
    assert.equal(posted.headers.location, "/");
    const txid = fileChangeCounter(primaryDbPath);
    assert.ok(
      txid > replicaView.txid("guestbook.db"),
      "the replica must be behind: replication is held back",
    );
    const cookie = cookieFrom(posted, "__txid");
    const token = formatToken({ txid, checksum: branchChecksum("main", txid) });
    assert.equal(cookie, `__txid=${token}`);
    assert.equal(posted.headers["litefs-txid"], token);
    assert.equal(replicaMetrics.snapshot().requests.forwarded, before.requests.forwarded + 1);

    // Without the cookie the replica serves what it has: the entry is not there yet.
    const stale = await httpRequest(replicaProxy.url + "/");
    assert.equal(stale.status, 200);
    assert.doesNotMatch(stale.body, /hello &lt;from&gt; the replica/);

    // With it, the read waits until replication delivers the write.
    const page = httpRequest(replicaProxy.url + "/", { headers: { cookie: `theme=dark; ${cookie}` } });
    await replicaView.untilWaiting(1);
    assert.equal(await catchUp(), txid);
    const fresh = await page;
    assert.equal(fresh.status, 200);
    assert.match(fresh.body, /hello &lt;from&gt; the replica/);
    assert.match(fresh.body, /served by <code>replica<\/code>/);
    const after = replicaMetrics.snapshot();
    assert.equal(after.txidWaits.reached, before.txidWaits.reached + 1);
    assert.equal(replicaView.waiterCount, 0);
  });

  test("a JSON write through the replica; an API read with the Litefs-Txid header waits for it", async () => {
    const posted = await httpRequest(replicaProxy.url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Grace", message: "via the header" }),
    });
    assert.equal(posted.status, 303, posted.body);
    const created = JSON.parse(posted.body) as Entry;
    const txidHex = posted.headers["litefs-txid"];
    assert.equal(typeof txidHex, "string");

    const read = httpRequest(replicaProxy.url + "/entries", { headers: { "litefs-txid": txidHex } });
    await replicaView.untilWaiting(1);
    await catchUp();
    const answer = await read;
    assert.equal(answer.status, 200);
    const entries = JSON.parse(answer.body) as Entry[];
    assert.deepEqual(entries[0], { ...created });
  });

  test("a write straight to the primary's proxy gets its TXID too, and goes to the primary's app", async () => {
    const before = primaryMetrics.snapshot().requests.write;
    const posted = await httpRequest(primaryProxy.url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Edsger", message: "on the primary" }),
    });
    assert.equal(posted.status, 303);
    const token = String(posted.headers["litefs-txid"]);
    assert.equal(BigInt("0x" + token.slice(0, 16)), fileChangeCounter(primaryDbPath));
    assert.equal(primaryMetrics.snapshot().requests.write, before + 1);
    const read = await httpRequest(primaryProxy.url + "/entries", { headers: { "litefs-txid": token } });
    assert.equal(read.status, 200);
    // The primary never waits: a token ahead of it was written on another primary (it may have lost
    // its lease without knowing): 503 at once, nothing served.
    const started = Date.now();
    const ahead = await httpRequest(primaryProxy.url + "/entries", {
      headers: { "litefs-txid": "ffffffffffffffff" },
    });
    assert.equal(ahead.status, 503, ahead.body);
    assert.equal(ahead.headers[PROXY_ERROR_HEADER], "EPROXYTXIDBRANCH");
    assert.match(ahead.body, /behind your last write \(TXID ffffffffffffffff \(bare TXID/);
    assert.ok(Date.now() - started < 2000, "the primary must not wait");
    await catchUp();
  });

  test("a replica on another branch at the token's TXID forwards the read; the primary checks it again", async () => {
    const posted = await httpRequest(replicaProxy.url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Barbara", message: "before the divergence" }),
    });
    assert.equal(posted.status, 303, posted.body);
    const token = String(posted.headers["litefs-txid"]);
    await catchUp();
    const read = (headers: Record<string, string>) =>
      httpRequest(replicaProxy.url + "/", { headers: { ...headers } });
    assert.match((await read({ "litefs-txid": token })).body, /served by <code>replica<\/code>/);

    // The replica's history now holds that TXID with another checksum (a deposed primary's branch).
    replicaView.branch = "deposed";
    try {
      const before = replicaMetrics.snapshot();
      const viaCookie = await read({ cookie: `__txid=${token}` });
      assert.equal(viaCookie.status, 200, viaCookie.body);
      assert.match(viaCookie.body, /served by <code>primary<\/code>/, "the read must not be served here");
      assert.match(viaCookie.body, /before the divergence/);
      assert.equal(replicaMetrics.snapshot().requests.forwarded, before.requests.forwarded + 1);
      // A bare TXID (an older client) cannot tell the branches apart: served here, as documented.
      const bare = await read({ "litefs-txid": token.slice(0, 16) });
      assert.match(bare.body, /served by <code>replica<\/code>/);

      // The primary on yet another branch (the client's write is not in its history): 503, nothing served.
      primaryView.branch = "new-primary";
      const refused = await read({ "litefs-txid": token });
      assert.equal(refused.status, 503, refused.body);
      assert.equal(refused.headers[PROXY_ERROR_HEADER], "EPROXYTXIDBRANCH");
      assert.equal(refused.headers["retry-after"], "1");
      assert.match(refused.body, /another branch of the history/);
      assert.doesNotMatch(refused.body, /before the divergence/);
    } finally {
      replicaView.branch = "main";
      primaryView.branch = "main";
    }
  });

  test("a read whose TXID does not arrive within txid-wait-timeout gets 504 with a clear body", async () => {
    const impatient = await startProxy(
      new ProxyServer({
        config: proxyConfig(replicaAppTarget, { txidWaitTimeoutMs: 150 }),
        view: replicaView,
      }),
    );
    const ahead = (replicaView.txid("guestbook.db") + 5n).toString(16);
    const answer = await httpRequest(impatient.url + "/entries", { headers: { "litefs-txid": ahead } });
    assert.equal(answer.status, 504);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYTXIDTIMEOUT");
    assert.match(
      answer.body,
      /timed out after 150 ms waiting for database "guestbook.db" to reach TXID 0+[0-9a-f]+ \(bare TXID/,
    );
    assert.equal(replicaView.waiterCount, 0, "the timed-out wait must be withdrawn");
  });

  test("a malformed TXID is refused with 400, and a bad cookie is cleared", async () => {
    const byHeader = await httpRequest(replicaProxy.url + "/entries", { headers: { "litefs-txid": "12xz" } });
    assert.equal(byHeader.status, 400);
    assert.equal(byHeader.headers[PROXY_ERROR_HEADER], "EPROXYBADTXID");
    const byCookie = await httpRequest(replicaProxy.url + "/entries", {
      headers: { cookie: "__txid=nonsense" },
    });
    assert.equal(byCookie.status, 400);
    assert.match(byCookie.body, /cookie __txid "nonsense" is not a position \(TXID\/CHECKSUM/);
    assert.equal(cookieFrom(byCookie, "__txid"), "__txid=");
  });

  test("health: 200 within max-lag, 503 with the figures beyond it, always 200 on the primary", async () => {
    const healthy = await httpRequest(replicaProxy.url + "/litefs/health");
    assert.equal(healthy.status, 200);
    assert.equal(healthy.body, "OK\n");
    replicaView.lag = 12_000;
    primaryView.lag = 12_000;
    try {
      const lagging = await httpRequest(replicaProxy.url + "/litefs/health");
      assert.equal(lagging.status, 503);
      assert.equal(
        lagging.body,
        "litefs proxy: unhealthy: replication lag 12000 ms exceeds max-lag 10000 ms\n",
      );
      assert.equal(lagging.headers["litefs-lag-ms"], "12000");
      assert.equal((await httpRequest(primaryProxy.url + "/litefs/health")).status, 200);
      const post = await httpRequest(replicaProxy.url + "/litefs/health", { method: "POST" });
      assert.equal(post.status, 405);
    } finally {
      replicaView.lag = 0;
      primaryView.lag = 0;
    }
  });

  test("passthrough paths go straight to the local app: no TXID wait, no forwarding", async () => {
    const passthrough = await startProxy(
      new ProxyServer({
        config: proxyConfig(replicaAppTarget, { passthrough: ["/entr*"] }),
        view: replicaView,
      }),
    );
    const primaryWrites = primaryMetrics.snapshot().requests.write;
    const read = await httpRequest(passthrough.url + "/entries", {
      headers: { "litefs-txid": "ffffffffffffffff" },
    });
    assert.equal(read.status, 200, "a passthrough read must not wait for any TXID");
    const write = await httpRequest(passthrough.url + "/entries", { method: "POST", body: "x" });
    assert.equal(write.status, 405, "the replica's own app answered");
    assert.equal(write.headers.allow, "GET, HEAD");
    assert.equal(write.headers["litefs-txid"], undefined);
    assert.equal(primaryMetrics.snapshot().requests.write, primaryWrites, "nothing was forwarded");
    // Outside the glob the same proxy forwards as usual.
    const root = await httpRequest(passthrough.url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Barbara", message: "not passthrough" }),
    });
    assert.equal(root.status, 303);
    await catchUp();
  });

  test("the proxy serves no node routes: anything but /litefs/health reaches the app", async () => {
    for (const [method, route] of [
      ["GET", "/info"],
      ["GET", "/pos"],
      ["GET", "/metrics"],
      ["GET", "/events"],
      ["GET", "/export?name=guestbook.db"],
      ["POST", "/stream"],
      ["POST", "/halt"],
      ["POST", "/promote"],
      ["GET", "/litefs/info"],
    ]) {
      const answer = await httpRequest(replicaProxy.url + route, { method, body: "" });
      assert.equal(answer.status, 404, `${method} ${route}: ${answer.body}`);
      assert.match(answer.body, /^not found: /, `${method} ${route} must be answered by the app`);
      assert.equal(answer.headers[PROXY_ERROR_HEADER], undefined);
    }
  });
});
