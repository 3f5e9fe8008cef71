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
