// FaultProxy with real sockets: an echo server behind it, clients in front. Each fault is checked from
// both ends: what the client sees (bytes held, delayed, a reset) and what the server sees (a reset,
// a FIN, nothing), plus the byte counters.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { test } from "node:test";
import { FaultProxy, FaultProxyError, resetSocket } from "./fault-proxy.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

/** An echo server that remembers how each of its connections ended. */
class EchoServer {
  readonly server: net.Server;
  readonly endings: string[] = [];
  readonly sockets = new Set<net.Socket>();

  private constructor() {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.sockets.add(socket);
      socket.on("data", (chunk) => socket.write(chunk));
      socket.on("end", () => {
        this.endings.push("fin");
        socket.end();
      });
      socket.on("error", (err: NodeJS.ErrnoException) => this.endings.push(err.code ?? "error"));
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  static async listen(where: { port: 0 } | { path: string }): Promise<EchoServer> {
    const echo = new EchoServer();
    await new Promise<void>((resolve) =>
      "path" in where ? echo.server.listen(where.path, resolve) : echo.server.listen(0, "127.0.0.1", resolve),
    );
    return echo;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A client connection that collects what it receives and how it ended. */
class Client {
  readonly socket: net.Socket;
  received = "";
  ending: string | undefined;
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    this.socket.setEncoding("utf8");
    this.socket.on("data", (text: string) => (this.received += text));
    this.socket.on("end", () => (this.ending ??= "fin"));
    this.socket.on("error", (err: NodeJS.ErrnoException) => (this.ending ??= err.code ?? "error"));
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  /** Resolves once `text` has been received in full; rejects after `timeoutMs`. */
  async waitFor(text: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.received.includes(text)) {
      if (Date.now() > deadline) {
        throw new Error(`client: no ${JSON.stringify(text)} within ${timeoutMs} ms (got ${this.received})`);
      }
      await sleep(5);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function setup(t: test.TestContext): Promise<{ echo: EchoServer; proxy: FaultProxy }> {
  const echo = await EchoServer.listen({ port: 0 });
  const proxy = await FaultProxy.start({
    target: { host: "127.0.0.1", port: echo.port },
    label: "test proxy",
  });
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  return { echo, proxy };
}

test("forward: bytes flow both ways and are counted; a FIN travels through", async (t) => {
  const { echo, proxy } = await setup(t);
  const client = new Client(proxy.port);
  client.socket.write("hello ");
  client.socket.write("world");
  await client.waitFor("hello world");
  const counters = proxy.counters();
  assert.deepEqual(counters.clientToTarget, { receivedBytes: 11, forwardedBytes: 11 });
  assert.deepEqual(counters.targetToClient, { receivedBytes: 11, forwardedBytes: 11 });
  assert.equal(counters.accepted, 1);
  assert.equal(counters.open, 1);
  client.socket.end();
  await client.closed;
  assert.equal(client.ending, "fin");
  assert.deepEqual(echo.endings, ["fin"]);
  await waitUntil(() => proxy.counters().open === 0, "the proxied connection to close");
  assert.equal(proxy.counters().reset, 0);
});

test("pause: nothing is delivered, connections stay open, new ones are held; heal delivers in order", async (t) => {
  const { echo, proxy } = await setup(t);
  const early = new Client(proxy.port);
  early.socket.write("a");
  await early.waitFor("a");
  proxy.pause();
  assert.equal(proxy.mode, "paused");
  early.socket.write("b");
  early.socket.write("c");
  const late = new Client(proxy.port);
  late.socket.write("x");
  await sleep(300);
  assert.equal(early.received, "a", "nothing comes back while paused");
  assert.equal(late.received, "");
  assert.equal(early.ending, undefined);
  assert.equal(late.ending, undefined);
  assert.equal(proxy.counters().open, 2, "both connections are held open");
  assert.equal(
    proxy.counters().clientToTarget.forwardedBytes,
    1,
    "only the byte before the pause reached the server",
  );
  // A FIN sent while paused is held too: the server must not see it before heal.
  late.socket.end();
  await sleep(100);
  assert.deepEqual(echo.endings, []);
  proxy.heal();
  await early.waitFor("abc");
  await late.waitFor("x");
  await late.closed;
  assert.equal(late.ending, "fin");
  assert.deepEqual(echo.endings, ["fin"]);
});

test("drop: every connection is reset at both ends, new ones are reset; heal lets new ones through", async (t) => {
  const { echo, proxy } = await setup(t);
  const before = new Client(proxy.port);
  before.socket.write("ping");
  await before.waitFor("ping");
  proxy.drop();
  await before.closed;
  assert.equal(before.ending, "ECONNRESET");
  await waitUntil(() => echo.endings.length === 1, "the server to see its connection end");
  assert.deepEqual(echo.endings, ["ECONNRESET"]);
  const during = new Client(proxy.port);
  during.socket.write("lost");
  await during.closed;
  assert.equal(during.ending, "ECONNRESET");
  assert.equal(during.received, "");
  assert.equal(proxy.counters().reset, 2);
  assert.equal(proxy.counters().accepted, 1, "the connection made while dropped was never forwarded");
  proxy.heal();
  const after = new Client(proxy.port);
  after.socket.write("back");
  await after.waitFor("back");
  after.socket.destroy();
});

test("delay: each direction is late by the delay, order is kept, and delay(0) removes it", async (t) => {
  const { proxy } = await setup(t);
  const delayMs = 120;
  proxy.delay(delayMs);
  const client = new Client(proxy.port);
  const started = performance.now();
  for (let i = 0; i < 50; i++) client.socket.write(`${i},`);
  const expected = Array.from({ length: 50 }, (_, i) => `${i},`).join("");
  await client.waitFor(expected);
  const roundTripMs = performance.now() - started;
  // A lower bound only (timers never fire early by more than a millisecond of rounding).
  assert.ok(roundTripMs >= 2 * delayMs - 2, `round trip ${roundTripMs.toFixed(1)} ms < 2 × ${delayMs} ms`);
  assert.equal(client.received, expected, "chunks arrive in the order they were sent");
  proxy.delay(0);
  client.received = "";
  client.socket.write("now");
  await client.waitFor("now", 2_000);
  client.socket.destroy();
  assert.throws(() => proxy.delay(-1), FaultProxyError);
  assert.throws(() => proxy.delay(120_000), FaultProxyError);
});

test("pause also holds bytes already read and waiting out a delay", async (t) => {
  const { proxy } = await setup(t);
  const client = new Client(proxy.port);
  proxy.delay(100);
  client.socket.write("in flight");
  await waitUntil(() => proxy.counters().clientToTarget.receivedBytes === 9, "the proxy to read the bytes");
  proxy.pause();
  await sleep(300);
  assert.equal(proxy.counters().clientToTarget.forwardedBytes, 0, "held past their due time");
  assert.equal(client.received, "");
  proxy.heal();
  await client.waitFor("in flight");
  client.socket.destroy();
});

test("a fault with forMs heals by itself", async (t) => {
  const { proxy } = await setup(t);
  const client = new Client(proxy.port);
  proxy.pause({ forMs: 150 });
  client.socket.write("later");
  await sleep(60);
  assert.equal(client.received, "");
  await client.waitFor("later", 3_000);
  assert.equal(proxy.mode, "forward");
  client.socket.destroy();
});

test("a target that refuses resets the client; a Unix socket target works", async (t) => {
  const dir = makeTempDir("fault-proxy");
  t.after(() => removeTempDir(dir));
  const socketPath = path.join(dir, "echo.sock");
  const proxy = await FaultProxy.start({ target: { path: socketPath } });
  t.after(() => proxy.close());
  const refused = new Client(proxy.port);
  await refused.closed;
  assert.equal(refused.ending, "ECONNRESET");
  assert.equal(proxy.counters().reset, 1);
  const echo = await EchoServer.listen({ path: socketPath });
  t.after(() => echo.close());
  assert.ok(fs.existsSync(socketPath));
  const client = new Client(proxy.port);
  client.socket.write("over unix");
  await client.waitFor("over unix");
  proxy.drop();
  await client.closed;
  assert.equal(client.ending, "ECONNRESET");
});

test("close() ends every connection and the proxy closes itself after its lifetime", async (t) => {
  const echo = await EchoServer.listen({ port: 0 });
  t.after(() => echo.close());
  const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port: echo.port }, lifetimeMs: 300 });
  const client = new Client(proxy.port);
  client.socket.write("x");
  await client.waitFor("x");
  await client.closed; // the lifetime ends it
  assert.equal(client.ending, "ECONNRESET");
  const refused = new Client(proxy.port);
  await refused.closed;
  assert.equal(refused.ending, "ECONNREFUSED");
  assert.throws(() => proxy.pause(), FaultProxyError);
  await proxy.close(); // idempotent
  await assert.rejects(
    FaultProxy.start({ target: { host: "127.0.0.1", port: echo.port }, listenHost: "0.0.0.0" }),
    (err: unknown) => err instanceof FaultProxyError && err.code === "FAULT_PROXY_ARGUMENT",
  );
});

test("resetSocket resets an open TCP socket, and closes one that has sent its FIN", async (t) => {
  // libuv refuses to reset a socket whose shutdown (end()) is under way, and Node then never closes
  // it: no 'close', and a process that never exits. resetSocket must close such a socket all the same.
  const peerEndings: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("end", () => {
      peerEndings.push("fin");
      socket.destroy();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => peerEndings.push(err.code ?? "error"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as net.AddressInfo).port;
  const connect = async (): Promise<{ socket: net.Socket; closed: Promise<boolean> }> => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    const closed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    return { socket, closed };
  };

  const open = await connect();
  resetSocket(open.socket, true);
  assert.ok(await open.closed, "a reset socket emits 'close'");
  await waitUntil(() => peerEndings.length === 1, "the peer to see the reset");
  assert.deepEqual(peerEndings, ["ECONNRESET"]);

  const ended = await connect();
  ended.socket.end();
  resetSocket(ended.socket, true); // same tick: the shutdown has not been carried out yet
  assert.ok(await ended.closed, "a socket reset right after end() never emitted 'close'");
  await waitUntil(() => peerEndings.length === 2, "the peer to see the FIN");
  assert.equal(peerEndings[1], "fin");
});

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
