// httpRequest against local HTTP servers: answers, refusals, a server that never answers, one that
// never stops answering, an abort — and a kept-alive connection that must not keep a CLI running.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import * as path from "node:path";

import { HttpAnswerTooLargeError, HttpTimeoutError, httpRequest } from "../../src/net/http-request.js";
import { REPO_ROOT } from "../support/paths.js";

async function serve(
  t: { after(fn: () => Promise<void>): void },
  handler: http.RequestListener,
): Promise<string> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000; // idle kept connections stay open: nothing here may wait for them
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("a POST carries its body and headers; the answer comes back whole, on one kept connection", async (t) => {
  const remotePorts = new Set<number>();
  const url = await serve(t, (req, res) => {
    remotePorts.add(req.socket.remotePort!);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(201, { "content-type": "application/json", "x-seen": req.headers["x-token"] ?? "" });
      res.end(JSON.stringify({ method: req.method, path: req.url, body: Buffer.concat(chunks).toString() }));
    });
  });
  for (let i = 0; i < 3; i++) {
    const answer = await httpRequest(`${url}/v3/kv/range?x=${i}`, {
      method: "POST",
      headers: { "x-token": "abc" },
      body: `{"n":${i}}`,
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.headers["x-seen"], "abc");
    assert.deepEqual(JSON.parse(answer.text), {
      method: "POST",
      path: `/v3/kv/range?x=${i}`,
      body: `{"n":${i}}`,
    });
  }
  assert.equal(remotePorts.size, 1, "the three calls should share one kept-alive connection");
});

test("a refused connection rejects with its error code", async () => {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assert.rejects(httpRequest(`http://127.0.0.1:${port}/info`), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, "ECONNREFUSED");
    return true;
  });
});

test("an answer that never comes ends at the timeout; one without end at the size limit", async (t) => {
  const silent = await serve(t, () => undefined);
  const started = performance.now();
  await assert.rejects(httpRequest(`${silent}/info`, { timeoutMs: 200 }), (err: unknown) => {
    assert.ok(err instanceof HttpTimeoutError, String(err));
    assert.match(err.message, /no answer within 200 ms/);
    return true;
  });
  assert.ok(performance.now() - started < 5000);

  let sent = 0;
  const endless = await serve(t, (_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed) res.once("drain", pump);
    };
    pump();
  });
  await assert.rejects(httpRequest(endless, { maxBytes: 1024 * 1024, timeoutMs: 20_000 }), (err: unknown) => {
    assert.ok(err instanceof HttpAnswerTooLargeError, String(err));
    return true;
  });
  assert.ok(sent < 64 * 1024 * 1024, `the server got to send ${sent} bytes`);
});

test("an abort ends the request with the signal's reason", async (t) => {
  const silent = await serve(t, () => undefined);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("stopping")), 50);
  await assert.rejects(httpRequest(`${silent}/info`, { signal: controller.signal }), /stopping/);
  await assert.rejects(httpRequest(`${silent}/info`, { signal: AbortSignal.abort() }), {
    name: "AbortError",
  });
});

test("a kept-alive connection does not hold a process open after its last request", async (t) => {
  const url = await serve(t, (_req, res) => res.end("ok"));
  const module = path.join(REPO_ROOT, "dist", "src", "net", "http-request.js");
  const script =
    `const { httpRequest } = await import(${JSON.stringify(module)});` +
    `const a = await httpRequest(${JSON.stringify(url)}); process.stdout.write(a.text);`;
  // The server keeps the idle connection for a minute: a process that waited for it would be killed
  // by the 30 s limit here (status null).
  // Asynchronously: the server answering it runs in this process.
  const child = await new Promise<{
    status: number | null;
    stdout: string;
    stderr: string;
    error: Error | null;
  }>((resolve) => {
    execFile(
      process.execPath,
      ["--input-type=module", "-e", script],
      { encoding: "utf8", timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({
          status: error === null ? 0 : typeof error.code === "number" ? error.code : null,
          stdout,
          stderr,
          error,
        }),
    );
  });
  assert.equal(
    child.status,
    0,
    `exit status ${child.status} (${child.error?.message ?? ""}) ${child.stderr}`,
  );
  assert.equal(child.stdout, "ok");
});

test("a kept socket the server reset as it was reused is retried once on a new one; a fresh one is not", async (t) => {
  // Raw TCP: the first connection answers one request, then resets at the next (a server closing an
  // idle kept-alive connection just as the client reuses it); later connections answer normally.
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  };
  // Kept-alive sockets stay open: a server's close() would wait for them.
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const server = net.createServer((socket) => {
    track(socket);
    const index = connections++;
    let requests = 0;
    socket.on("data", (data) => {
      for (let i = data.indexOf("\r\n\r\n"); i >= 0; i = data.indexOf("\r\n\r\n", i + 4)) {
        requests++;
        if (index === 0 && requests === 2) {
          socket.resetAndDestroy();
          return;
        }
        const body = `conn${index}`;
        socket.write(
          `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n${body}`,
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  assert.equal((await httpRequest(url)).text, "conn0");
  assert.equal((await httpRequest(url)).text, "conn1", "the reset reused socket should have been retried");
  assert.equal(connections, 2);

  const resetting = net.createServer((socket) => {
    track(socket);
    socket.once("data", () => socket.resetAndDestroy());
  });
  await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => resetting.close(() => resolve())));
  let accepted = 0;
  resetting.on("connection", () => accepted++);
  const reset = `http://127.0.0.1:${(resetting.address() as AddressInfo).port}/x`;
  await assert.rejects(httpRequest(reset), { code: "ECONNRESET" });
  assert.equal(accepted, 1, "a reset on a fresh connection is an answer, not a stale socket");
});
