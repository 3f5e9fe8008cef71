// The etcd gateway client against a local HTTP server that misbehaves the ways a broken member or a
// hostile endpoint can: an answer without end, the headers of an error and then silence, mangled
// base64 and int64 fields. Each must end in a LeaseError within the request timeout, never a hang or a
// process filling its memory.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { LeaseError } from "../../src/lease/lease-error.js";
import { EtcdGatewayClient, fromBase64, int64Field } from "../../src/lease/etcd-gateway-client.js";
import { keyValuesByName } from "../../src/lease/etcd-lease-keys.js";

async function serve(
  t: { after(fn: () => Promise<void>): void },
  handler: http.RequestListener,
): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function isLeaseError(code: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof LeaseError, `expected a LeaseError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

test("a unary answer without end is refused at the size limit, not read until the timeout", async (t) => {
  let sent = 0;
  const url = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed) res.once("drain", pump);
    };
    res.write("{");
    pump();
  });
  const client = new EtcdGatewayClient({ endpoints: [url], requestTimeoutMs: 20_000 });
  const started = Date.now();
  await assert.rejects(client.call("/v3/kv/range", {}), isLeaseError("ELEASEPROTOCOL"));
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 15_000, `refused after ${elapsed} ms (the timeout is 20 s)`);
  assert.ok(sent < 64 * 1024 * 1024, `the server got to send ${sent} bytes`);
});

test("a stream refused with error headers and then silence fails within the request timeout", async (t) => {
  const url = await serve(t, (_req, res) => {
    res.writeHead(503, { "content-type": "application/json" });
    res.write('{"error":"etcdserver: no leader"'); // ...and never the rest
  });
  const client = new EtcdGatewayClient({ endpoints: [url], requestTimeoutMs: 500 });
  const never = new AbortController().signal;
  const iterate = async (): Promise<void> => {
    for await (const _ of client.stream("/v3/watch", {}, never)) {
      assert.fail("no result expected");
    }
  };
  const outcome = await Promise.race([
    iterate().then(
      () => "ended",
      (err: unknown) => err,
    ),
    new Promise((resolve) => setTimeout(() => resolve("still waiting after 10 s"), 10_000).unref()),
  ]);
  isLeaseError("ELEASEUNAVAILABLE")(outcome);
});

test("base64 and int64 fields are parsed strictly", () => {
  assert.equal(fromBase64("aGVsbG8="), "hello");
  assert.equal(fromBase64(undefined), "");
  for (const bad of ["aGVsbG8", "aGV sbG8=", "a!b=", "aGVsbG8=="]) {
    assert.throws(() => fromBase64(bad), isLeaseError("ELEASEPROTOCOL"), bad);
  }
  assert.equal(int64Field("9223372036854775807", "w"), 9223372036854775807n);
  assert.equal(int64Field(undefined, "w"), 0n);
  for (const bad of [12, "1.5", "0x10", "", " 1"]) {
    assert.throws(() => int64Field(bad, "w"), isLeaseError("ELEASEPROTOCOL"), String(bad));
  }
  // A key that is not base64 is an error, not a silently different name; a lease id is an int64.
  assert.throws(() => keyValuesByName({ kvs: [{ key: "bm9kZQ==!" }] }, "w"), isLeaseError("ELEASEPROTOCOL"));
  assert.throws(
    () => keyValuesByName({ kvs: [{ key: "bm9kZQ==", lease: 7 }] }, "w"),
    isLeaseError("ELEASEPROTOCOL"),
  );
  const kv = keyValuesByName({ kvs: [{ key: "bm9kZQ==", value: "dg==", create_revision: "5" }] }, "w");
  assert.deepEqual(kv.get("node"), { value: "v", createRevision: 5n, modRevision: 0n, lease: "0" });
});

/** A port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Answers 200 with `body` after `delayMs`; never, if delayMs is Infinity. Counts requests and aborts. */
function slowAnswer(delayMs: number, body: unknown, seen: { requests: number; closedEarly: number }) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    seen.requests++;
    req.resume();
    let answered = false;
    res.on("close", () => {
      if (!answered) seen.closedEarly++;
    });
    if (delayMs === Infinity) return;
    setTimeout(() => {
      answered = true;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    }, delayMs);
  };
}

test("one call tries every endpoint once, even when another call moves the preferred one meanwhile", async (t) => {
  const dead = await closedPort();
  // b holds writes (txn) until the timeout but answers puts at once; c answers everything.
  const b = await serve(t, (req, res) => {
    req.resume();
    if (req.url === "/v3/kv/put") res.writeHead(200).end("{}");
  });
  const cSeen: string[] = [];
  const c = await serve(t, (req, res) => {
    cSeen.push(req.url ?? "");
    req.resume();
    res.writeHead(200).end('{"from":"c"}');
  });
  const client = new EtcdGatewayClient({ endpoints: [dead, b, c], requestTimeoutMs: 400 });
  const write = client.call("/v3/kv/txn", {});
  // While the txn waits on b, a put succeeds on b: b becomes the preferred endpoint.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(await client.call("/v3/kv/put", {}), {});
  // The txn goes on to c, the one endpoint it has not tried (not back to the dead one).
  assert.deepEqual(await write, { from: "c" });
  assert.deepEqual(cSeen, ["/v3/kv/txn"]);
});

test("a read or keep-alive waits for a slow member while asking the next one; the first answer wins", async (t) => {
  // a: a member whose leader just died, answering once a new one is elected (after the request timeout,
  // within the 2 × 300 ms a one-by-one pass over two endpoints may take); b: a member that never answers.
  const aSeen = { requests: 0, closedEarly: 0 };
  const bSeen = { requests: 0, closedEarly: 0 };
  const a = await serve(t, slowAnswer(500, { result: { TTL: "3" } }, aSeen));
  const b = await serve(t, slowAnswer(Infinity, {}, bSeen));
  const client = new EtcdGatewayClient({ endpoints: [a, b], requestTimeoutMs: 300 });
  for (const path of ["/v3/lease/keepalive", "/v3/kv/range"]) {
    assert.deepEqual(await client.call(path, {}), { result: { TTL: "3" } }, path);
  }
  assert.equal(aSeen.requests, 2);
  assert.equal(aSeen.closedEarly, 0, "a's requests were cut before their answers");
  // b was asked once a was late, and let go once a answered.
  assert.equal(bSeen.requests, 2);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(bSeen.closedEarly, 2);
  // A write is never left running on one member while it is sent to another: it is cut at the timeout.
  await assert.rejects(client.call("/v3/kv/txn", {}), isLeaseError("ELEASEUNAVAILABLE"));
  assert.equal(aSeen.closedEarly, 1);
});

test("a hedged call ends when every endpoint failed, no later than a one-by-one pass would", async (t) => {
  const dead = await closedPort();
  const seen = { requests: 0, closedEarly: 0 };
  const hung = await serve(t, slowAnswer(Infinity, {}, seen));
  const fiveHundred = await serve(t, (req, res) => {
    req.resume();
    res.writeHead(503).end('{"error":"etcdserver: no leader","code":14}');
  });
  const client = new EtcdGatewayClient({ endpoints: [dead, fiveHundred, hung], requestTimeoutMs: 300 });
  const started = Date.now();
  const error = await client.call("/v3/kv/range", {}).then(
    () => assert.fail("no endpoint can answer"),
    (err: unknown) => err,
  );
  isLeaseError("ELEASEUNAVAILABLE")(error);
  const message = (error as Error).message;
  assert.match(message, /ECONNREFUSED/);
  assert.match(message, /HTTP 503/);
  assert.match(message, /300 ms|timed out|no answer/i);
  // The refusal and the 503 move on at once, so the hung one is asked at once and cut after 3 × 300 ms.
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 5_000, `failed after ${elapsed} ms`);
  // An aborted call ends at once, with the signal's reason, and lets go of its requests.
  const controller = new AbortController();
  const call = client.call("/v3/lease/keepalive", {}, controller.signal);
  setTimeout(() => controller.abort(new Error("caller gave up")), 50);
  await assert.rejects(call, /caller gave up/);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(seen.closedEarly, seen.requests);
});
