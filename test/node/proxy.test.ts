// The proxy wired into `litefs mount`, in front of the example guestbook app run by the mount
// (`-- node main.js`):
//   - one primary, node API and proxy on separate addresses: a write through the proxy answers with
//     the TXID it committed (header and cookie), the next read sees it; node routes sent to the proxy
//     reach the app, never the node; each address serves only its own side; text logs;
//   - one primary and one replica, both with an auth token: a write through the replica's proxy is
//     forwarded to the primary's (found through the primary's /info), and the next read through the
//     replica's proxy — cookie or header — sees it at once; metrics and events on both sides. The
//     replica reaches the primary's API through a fault proxy, which then delays the stream by a
//     second: a read carrying the TXID waits for it (and sees the write), one without does not.

import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { after, before, describe, test } from "node:test";

import { FaultProxy } from "../support/fault-proxy.js";

import { cookieFrom, httpRequest, type HttpAnswer } from "../proxy/proxy-test-kit.js";
import {
  bearer,
  EventsReader,
  GUESTBOOK_DB,
  sample,
  scrape,
  startGuestbookNode,
  waitForOk,
  type GuestbookNode,
} from "./node-kit.js";

interface Entry {
  id: number;
  name: string;
  message: string;
}

function post(proxyUrl: string, name: string, message: string): Promise<HttpAnswer> {
  return httpRequest(`${proxyUrl}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, message }),
  });
}

function txidOf(answer: HttpAnswer): string {
  const header = answer.headers["litefs-txid"];
  // The position after the write: TXID/CHECKSUM.
  assert.ok(
    typeof header === "string" && /^[0-9a-f]{16}\/[0-9a-f]{16}$/.test(header),
    JSON.stringify(answer.headers),
  );
  assert.equal(cookieFrom(answer, "__txid"), `__txid=${header}`);
  return header;
}

function connectRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

describe("the proxy of a single primary, in front of the guestbook", () => {
  let gb: GuestbookNode;
  before(async () => {
    gb = await startGuestbookNode({ proxyHost: "127.0.0.2", config: { log: { format: "text" } } });
    await waitForOk(`${gb.proxyUrl}/entries`);
  });
  after(async () => {
    await gb.cleanup();
  });

  test("a POST through the proxy answers with the TXID it committed; a GET then sees the entry", async () => {
    const written = await post(gb.proxyUrl, "Ada", "hello through the proxy");
    assert.equal(written.status, 303, written.body);
    const txid = txidOf(written);
    const pos = gb.node.readPos(GUESTBOOK_DB);
    assert.equal(txid, `${pos.txid.toString(16).padStart(16, "0")}/${pos.checksum}`);

    const read = await httpRequest(`${gb.proxyUrl}/entries`, { headers: { cookie: `__txid=${txid}` } });
    assert.equal(read.status, 200);
    const entries = JSON.parse(read.body) as Entry[];
    assert.equal(entries[0].message, "hello through the proxy");

    const metrics = await scrape(gb.node.httpUrl);
    assert.ok(sample(metrics, 'litefs_proxy_requests_total{kind="write"}') >= 1);
    assert.ok(sample(metrics, 'litefs_proxy_requests_total{kind="read"}') >= 1);
    const info = JSON.parse((await httpRequest(`${gb.node.httpUrl}/info`)).body) as { proxyURL: string };
    assert.equal(info.proxyURL, gb.proxyUrl);
  });

  test("node routes sent to the proxy reach the app, never the node", async () => {
    const before = fs.readdirSync(`${gb.node.dataDir}/dbs`).sort();
    const routes: [string, string][] = [
      ["GET", "/info"],
      ["GET", "/pos"],
      ["GET", "/status"],
      ["GET", "/metrics"],
      ["GET", "/events"],
      ["GET", `/export?name=${GUESTBOOK_DB}`],
      ["POST", "/import?name=stolen.db"],
      ["POST", "/stream"],
    ];
    for (const [method, path] of routes) {
      const answer = await httpRequest(gb.proxyUrl + path, {
        method,
        body: method === "POST" ? "x" : undefined,
      });
      const what = `${method} ${path} through the proxy`;
      assert.ok(answer.status === 404 || answer.status === 405, `${what}: ${answer.status} ${answer.body}`);
      assert.match(answer.body, /^(not found|method \w+ not allowed)/, `${what} was not the app's answer`);
      assert.doesNotMatch(answer.body, /nodeId|litefs_|"type":"init"/, what);
    }
    assert.deepEqual(fs.readdirSync(`${gb.node.dataDir}/dbs`).sort(), before);
  });

  test("the node API and the proxy listen on separate addresses, each serving only its side", async () => {
    assert.equal(
      await connectRefused("127.0.0.2", gb.node.httpPort),
      true,
      "node API on the proxy's address",
    );
    assert.equal(await connectRefused("127.0.0.1", gb.proxyPort), true, "proxy on the node API's address");
    assert.equal((await httpRequest(`${gb.node.httpUrl}/info`)).status, 200);
    assert.equal((await httpRequest(`${gb.proxyUrl}/litefs/health`)).status, 200);
  });

  test("log.format text: one `msg key=value` line per event, no JSON", () => {
    const logs = gb.node.lastRunLogs();
    assert.match(
      logs,
      /^mount ready dir=\S+ http=:\d+ role=primary proxy=http:\/\/127\.0\.0\.2:\d+ compile=(eager|lazy)$/m,
    );
    assert.match(logs, /^proxy listening addr=http:\/\/127\.0\.0\.2:\d+ /m);
    assert.match(logs, /^DEBUG commit db=guestbook\.db txid=[0-9a-f]{16} /m); // test nodes log at debug
    const jsonLines = logs.split("\n").filter((line) => line.startsWith("{"));
    assert.deepEqual(jsonLines, []);
  });
});

describe("a write through a replica's proxy, with an auth token on both nodes", () => {
  const TOKEN = "cluster-token-abcdef";
  let primary: GuestbookNode;
  let replica: GuestbookNode;
  let link: FaultProxy;
  before(async () => {
    primary = await startGuestbookNode({ config: { http: { "auth-token": TOKEN } } });
    await waitForOk(`${primary.proxyUrl}/entries`);
    link = await FaultProxy.start({
      target: { host: "127.0.0.1", port: primary.node.httpPort },
      label: "replica → primary API",
    });
    replica = await startGuestbookNode({
      appArgs: ["--readonly"],
      config: {
        http: { "auth-token": TOKEN },
        lease: {
          type: "static",
          candidate: false,
          hostname: "test-primary",
          "advertise-url": `http://${link.address}`,
        },
      },
    });
    await waitForOk(`${replica.proxyUrl}/entries`);
  });
  after(async () => {
    await replica?.cleanup();
    await link?.close();
    await primary?.cleanup();
  });

  test("is forwarded to the primary, and the next read through the replica sees it at once", async () => {
    const events = await EventsReader.open(replica.node.httpUrl, TOKEN);
    try {
      await events.waitForCount(1);
      assert.deepEqual(events.events[0], {
        type: "init",
        data: { isPrimary: false, hostname: "test-primary" },
      });

      for (let i = 0; i < 5; i++) {
        const written = await post(replica.proxyUrl, "Grace", `forwarded ${i}`);
        assert.equal(written.status, 303, `${written.status} ${written.body}`);
        const txid = txidOf(written);
        assert.equal(
          BigInt("0x" + txid.slice(0, 16)),
          primary.node.readPos(GUESTBOOK_DB).txid,
          "the primary committed it",
        );
        // Alternately the cookie (browsers) and the header (API clients).
        const headers = i % 2 === 0 ? { cookie: `__txid=${txid}` } : { "litefs-txid": txid };
        const read = await httpRequest(`${replica.proxyUrl}/entries`, { headers });
        assert.equal(read.status, 200, read.body);
        const entries = JSON.parse(read.body) as Entry[];
        assert.equal(entries[0]?.message, `forwarded ${i}`, "the read did not see the write");
        assert.ok(replica.node.readPos(GUESTBOOK_DB).txid >= BigInt("0x" + txid.slice(0, 16)));
      }

      const last = primary.node.readPos(GUESTBOOK_DB).txid;
      const txs = await waitForTx(events, last);
      assert.ok(txs.length >= 5, JSON.stringify(events.events));
    } finally {
      events.close();
    }

    const replicaMetrics = await scrape(replica.node.httpUrl, TOKEN);
    assert.equal(sample(replicaMetrics, "litefs_is_primary"), 0);
    assert.ok(sample(replicaMetrics, 'litefs_proxy_requests_total{kind="forwarded"}') >= 5);
    assert.ok(sample(replicaMetrics, `litefs_db_ltx_applied_total{db="${GUESTBOOK_DB}"}`) >= 5);
    assert.equal(sample(replicaMetrics, "litefs_stream_primary_connected"), 1);
    assert.equal(
      BigInt(sample(replicaMetrics, `litefs_db_txid{db="${GUESTBOOK_DB}"}`)),
      replica.node.readPos(GUESTBOOK_DB).txid,
    );
    const primaryMetrics = await scrape(primary.node.httpUrl, TOKEN);
    assert.equal(sample(primaryMetrics, "litefs_subscriber_count"), 1);
    assert.equal(sample(primaryMetrics, 'litefs_proxy_requests_total{kind="write"}'), 5);

    // The stream a second late: the read carrying the TXID waits for it; a read without sees the past.
    link.delay(1000);
    const waitsBefore = sample(replicaMetrics, 'litefs_proxy_txid_waits_total{outcome="reached"}', 0);
    const late = await post(replica.proxyUrl, "Linus", "a second late");
    assert.equal(late.status, 303, late.body);
    const lateTxid = txidOf(late);
    const blind = await httpRequest(`${replica.proxyUrl}/entries`);
    assert.notEqual(
      (JSON.parse(blind.body) as Entry[])[0]?.message,
      "a second late",
      "the stream was not late",
    );
    const started = Date.now();
    const seen = await httpRequest(`${replica.proxyUrl}/entries`, {
      headers: { cookie: `__txid=${lateTxid}` },
    });
    assert.equal(seen.status, 200, seen.body);
    assert.equal((JSON.parse(seen.body) as Entry[])[0]?.message, "a second late");
    assert.ok(Date.now() - started >= 500, `the read did not wait (${Date.now() - started} ms)`);
    const afterLate = await scrape(replica.node.httpUrl, TOKEN);
    assert.equal(sample(afterLate, 'litefs_proxy_txid_waits_total{outcome="reached"}'), waitsBefore + 1);
    link.heal();

    const info = await httpRequest(`${primary.node.httpUrl}/info`, { headers: bearer(TOKEN) });
    assert.equal((JSON.parse(info.body) as { proxyURL: string }).proxyURL, primary.proxyUrl);
    assert.match(replica.node.lastRunLogs(), /primary's proxy found/);
  });
});

/** Waits for the tx event of `txid` on `events`; returns every tx event so far. */
async function waitForTx(events: EventsReader, txid: bigint): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const txs = events.events.filter((e) => e.type === "tx");
    const reached = txs.some((e) => BigInt("0x" + String((e.data as { txID: string }).txID)) >= txid);
    if (reached) return txs;
    assert.ok(Date.now() < deadline, `no tx event for ${txid}: ${JSON.stringify(events.events)}`);
    await events
      .waitForCount(events.events.length + 1, Math.max(1, deadline - Date.now()))
      .catch(() => undefined);
  }
}
