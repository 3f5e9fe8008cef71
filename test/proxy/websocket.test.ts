// WebSockets through the proxy: to the local app by default (on a replica after the read-your-writes
// wait), to the primary when the path is always-forward, refusals relayed, and tunnels that end when
// either side ends them or the proxy closes.

import assert from "node:assert/strict";
import http from "node:http";
import { after, describe, test } from "node:test";

import { PROXY_ERROR_HEADER, ProxyCounters, ProxyServer } from "../../src/proxy/index.js";
import { TestNodeView, closeServer, hostPort, proxyConfig } from "./proxy-test-kit.js";
import { openWebSocket, startEchoServer, type EchoServer } from "./websocket-kit.js";

const servers: http.Server[] = [];
const proxies: ProxyServer[] = [];

after(async () => {
  for (const proxy of proxies) await proxy.close();
  for (const server of servers) await closeServer(server);
});

async function echo(tag: string): Promise<EchoServer> {
  const server = await startEchoServer(tag);
  servers.push(server.server);
  return server;
}

async function start(proxy: ProxyServer): Promise<ProxyServer> {
  proxies.push(proxy);
  await proxy.listen();
  return proxy;
}

async function cluster(): Promise<{
  primaryEcho: EchoServer;
  replicaEcho: EchoServer;
  primary: ProxyServer;
  replica: ProxyServer;
  replicaView: TestNodeView;
  replicaMetrics: ProxyCounters;
}> {
  const primaryEcho = await echo("primary");
  const replicaEcho = await echo("replica");
  const primary = await start(
    new ProxyServer({
      config: proxyConfig(hostPort(primaryEcho.address)),
      view: new TestNodeView({ primary: true, db: "guestbook.db" }),
    }),
  );
  const replicaView = new TestNodeView({ primary: false, db: "guestbook.db", primaryUrl: primary.url });
  const replicaMetrics = new ProxyCounters();
  const replica = await start(
    new ProxyServer({
      config: proxyConfig(hostPort(replicaEcho.address), {
        alwaysForward: ["/live/*"],
        txidWaitTimeoutMs: 200,
      }),
      view: replicaView,
      metrics: replicaMetrics,
    }),
  );
  return { primaryEcho, replicaEcho, primary, replica, replicaView, replicaMetrics };
}

describe("proxy: WebSocket upgrades", () => {
  test("echo through a replica's proxy to its local app", async () => {
    const { replica, replicaEcho, replicaMetrics } = await cluster();
    const ws = await openWebSocket(replica.url, "/chat");
    assert.equal(ws.status, 101);
    assert.equal(ws.headers["x-echo-tag"], "replica");
    for (const text of ["hello", "x".repeat(5000), "ünïcødé"]) {
      ws.sendText(text);
      assert.equal(await ws.receiveText(), `replica: ${text}`);
    }
    assert.equal(replicaEcho.upgrades[0].headers["x-forwarded-for"], "127.0.0.1");
    await ws.close();
    assert.equal(replicaMetrics.snapshot().requests.websocket, 1);
  });

  test("an always-forward path goes to the primary's app, marked once and never re-forwarded", async () => {
    const { replica, primaryEcho, replicaEcho } = await cluster();
    const ws = await openWebSocket(replica.url, "/live/feed?x=1");
    assert.equal(ws.status, 101);
    ws.sendText("to the primary");
    assert.equal(await ws.receiveText(), "primary: to the primary");
    assert.equal(primaryEcho.upgrades[0].url, "/live/feed?x=1");
    assert.equal(primaryEcho.upgrades[0].headers["litefs-proxy-hop"], undefined);
    assert.deepEqual(replicaEcho.upgrades, []);
    await ws.close();
  });

  test("a socket opened with the client's TXID waits for it like a read; 504 when it does not come", async () => {
    const { replica, replicaView } = await cluster();
    const pending = openWebSocket(replica.url, "/chat", { "Litefs-Txid": "0000000000000007" });
    await replicaView.untilWaiting(1);
    replicaView.advance(7n);
    const ws = await pending;
    assert.equal(ws.status, 101);
    await ws.close();

    const late = await openWebSocket(replica.url, "/chat", { "Litefs-Txid": "0000000000000009" });
    assert.equal(late.status, 504);
    assert.equal(late.headers[PROXY_ERROR_HEADER], "EPROXYTXIDTIMEOUT");
    assert.match(late.refusalBody, /waiting for database "guestbook.db" to reach TXID 0000000000000009/);
  });

  test("a refused upgrade is relayed with its status and body", async () => {
    const { replica } = await cluster();
    const ws = await openWebSocket(replica.url, "/refuse");
    assert.equal(ws.status, 403);
    assert.equal(ws.refusalBody, "no, ta.");
  });

  test("the tunnel ends when the app closes it, and closing the proxy ends open tunnels", async () => {
    const { replica, replicaEcho } = await cluster();
    const first = await openWebSocket(replica.url, "/chat");
    await first.close(); // the echo server answers the close frame and ends its socket
    const second = await openWebSocket(replica.url, "/chat");
    second.sendText("ping");
    assert.equal(await second.receiveText(), "replica: ping");
    const closed = new Promise<void>((resolve) => second.socket.once("close", () => resolve()));
    await replica.close();
    await closed;
    const deadline = Date.now() + 2000;
    while (replicaEcho.open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(replicaEcho.open.size, 0, "the app's side of each tunnel was closed too");
  });
});
