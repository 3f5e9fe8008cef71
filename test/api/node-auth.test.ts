// The node API's gate (src/api/auth.ts) on a real loopback server: no token → everything passes; with a
// token only the exact `Bearer <token>` passes; a refusal is a 401 JSON answer sent before the handler
// runs, its body is dropped so a keep-alive connection carries the next request, an endless body is
// cut at the limit, and refusals are logged at most once a minute per client address.

import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { describe, test } from "node:test";

import { authRefusal, DISCARD_LIMIT_BYTES, NodeAuthenticator } from "../../src/api/auth.js";
import type { LogFields, StoreLogger } from "../../src/store/store-logger.js";

interface Logged {
  msg: string;
  fields: LogFields;
}

async function serve(
  t: { after(fn: () => void): void },
  auth: NodeAuthenticator,
): Promise<{ url: string; handled: string[] }> {
  const handled: string[] = [];
  const server = http.createServer((req, res) => {
    if (!auth.admit(req, res)) return;
    handled.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => res.end("handled\n"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, handled };
}

function send(
  url: string,
  opts: { method?: string; authorization?: string; body?: Buffer; agent?: http.Agent },
): Promise<{ status: number; body: string; socketPort: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: opts.method ?? "GET",
      headers: opts.authorization === undefined ? {} : { Authorization: opts.authorization },
      agent: opts.agent ?? false,
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, socketPort: res.socket?.localPort }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

function recorder(): { log: StoreLogger; lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (msg: string, fields: LogFields = {}): void => {
    lines.push({ msg, fields });
  };
  return { log: { debug: at, info: at, warn: at, error: at }, lines };
}

describe("NodeAuthenticator", () => {
  test("the check itself: only the exact Bearer token passes; no token configured passes all", () => {
    assert.equal(authRefusal(undefined, null), null);
    assert.equal(authRefusal("Bearer anything", null), null);
    assert.equal(authRefusal("Bearer tok", "tok"), null);
    assert.equal(authRefusal("bearer tok", "tok"), null, "the scheme is case-insensitive (RFC 7235)");
    for (const bad of [
      undefined,
      "",
      "Bearer",
      "Bearer tok2",
      "Bearer to",
      "Basic dG9r",
      "tok",
      "Bearer tok x",
    ]) {
      assert.notEqual(authRefusal(bad, "tok"), null, `${bad} passed`);
    }
    assert.throws(() => new NodeAuthenticator("", recorder().log), RangeError);
  });

  test("a refusal answers 401 before the handler; the body is dropped and the connection reused", async (t) => {
    const { log } = recorder();
    const { url, handled } = await serve(t, new NodeAuthenticator("tok", log));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());

    const refused = await send(`${url}/import?name=x`, {
      method: "POST",
      authorization: "Bearer nope",
      body: Buffer.alloc(2 << 20, 7),
      agent,
    });
    assert.equal(refused.status, 401);
    assert.deepEqual(JSON.parse(refused.body), {
      error: "unauthorized: wrong bearer token; this node requires Authorization: Bearer <http.auth-token>",
      code: "EAUTH",
    });
    assert.deepEqual(handled, []);
    const stream = await send(`${url}/stream`, { method: "POST", body: Buffer.from("x"), agent });
    assert.equal(stream.status, 401);
    assert.equal((JSON.parse(stream.body) as { code: string }).code, "ESTREAMAUTH");

    const ok = await send(`${url}/import?name=x`, { method: "POST", authorization: "Bearer tok", agent });
    assert.equal(ok.status, 200);
    assert.equal(ok.socketPort, refused.socketPort, "the keep-alive connection was not reused");
    assert.deepEqual(handled, ["POST /import?name=x"]);
  });

  test("an endless refused body on a keep-alive connection is cut past the discard limit", async (t) => {
    const { url } = await serve(t, new NodeAuthenticator("tok", recorder().log));
    // A raw client: keeps sending chunks whatever the answer says, until the server cuts it.
    const { answer, sent } = await new Promise<{ answer: string; sent: number }>((resolve) => {
      const socket = net.connect(Number(new URL(url).port), "127.0.0.1");
      let answer = "";
      let sent = 0;
      const chunk = Buffer.concat([Buffer.from("100000\r\n"), Buffer.alloc(1 << 20), Buffer.from("\r\n")]);
      const pump = (): void => {
        while (!socket.destroyed && socket.write(chunk)) sent += 1 << 20;
      };
      socket.on("connect", () => {
        socket.write("POST /import HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\n");
        pump();
      });
      socket.on("drain", () => {
        sent += 1 << 20;
        pump();
      });
      socket.setEncoding("latin1");
      socket.on("data", (data: string) => (answer += data));
      socket.on("error", () => undefined); // the cut: EPIPE or ECONNRESET
      socket.on("close", () => resolve({ answer, sent }));
    });
    assert.match(answer, /^HTTP\/1\.1 401 /);
    assert.ok(sent > DISCARD_LIMIT_BYTES - (8 << 20), `cut after ${sent} bytes`);
    assert.ok(sent < DISCARD_LIMIT_BYTES + (64 << 20), `cut only after ${sent} bytes`);
  });

  test("refusals are logged at most once a minute per client address, counting the others", async (t) => {
    const { log, lines } = recorder();
    let now = 1_000_000;
    const { url } = await serve(t, new NodeAuthenticator("tok", log, () => now));
    for (let i = 0; i < 3; i++) assert.equal((await send(`${url}/info`, {})).status, 401);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].msg, "node API request refused: unauthorized");
    assert.deepEqual(lines[0].fields, {
      remote: "127.0.0.1",
      method: "GET",
      path: "/info",
      reason: "missing or malformed Authorization: Bearer header",
    });
    now += 60_000;
    assert.equal((await send(`${url}/pos?x=1`, { authorization: "Bearer bad" })).status, 401);
    assert.equal(lines.length, 2);
    assert.equal(lines[1].fields.notLoggedSince, 2);
    assert.equal(lines[1].fields.path, "/pos");
  });
});
