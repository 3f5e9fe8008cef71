// `GET /metrics` over a real loopback server on port 0 and a node:http client.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import { EXPOSITION_CONTENT_TYPE, Registry, handleMetricsRequest } from "../../src/metrics/index.js";

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: "/metrics" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("metrics over HTTP", () => {
  const registry = new Registry();
  let failing = false;
  let server: http.Server;
  let port: number;

  before(async () => {
    registry.counter({ name: "requests_total", help: "h" }).inc(5);
    registry.gauge({
      name: "source",
      help: "h",
      read: () => {
        if (failing) throw new Error("source unavailable");
        return 1;
      },
    });
    server = http.createServer((req, res) => handleMetricsRequest(req, res, registry));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test("GET returns the exposition with the 0.0.4 content type", async () => {
    const reply = await request(port, "GET");
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["content-type"], EXPOSITION_CONTENT_TYPE);
    assert.equal(reply.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(
      reply.body,
      "# HELP requests_total h\n# TYPE requests_total counter\nrequests_total 5\n# HELP source h\n# TYPE source gauge\nsource 1\n",
    );
    assert.equal(Number(reply.headers["content-length"]), Buffer.byteLength(reply.body));
  });

  test("HEAD has the headers and no body; other methods get 405", async () => {
    const head = await request(port, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    const post = await request(port, "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  test("a failing collect callback gives a 500 naming the metric, not half an exposition", async () => {
    failing = true;
    try {
      const reply = await request(port, "GET");
      assert.equal(reply.status, 500);
      assert.match(
        reply.body,
        /metric source: collect callback failed: Error: source unavailable \(EMETRICCOLLECT\)/,
      );
      assert.doesNotMatch(reply.body, /requests_total/);
    } finally {
      failing = false;
    }
  });
});
