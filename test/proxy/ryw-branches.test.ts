// Read-your-writes tokens against real nodes whose histories diverged: `litefs mount` processes with
// the guestbook behind their proxies. Node A and node B are two primaries of separate clusters (what a
// deposed primary and its successor look like from the outside: each with its own history, both past
// the same TXID with different contents); node C is a replica of B. A client that wrote on A carries
// A's position (TXID/CHECKSUM); B and C hold that TXID with another checksum and must not serve its
// read — B (a primary) answers 503 at once, C forwards it to B, which answers 503. A bare TXID (older
// clients) cannot tell the branches apart and is served (the documented weaker guarantee), and B's own
// clients' tokens are served by C as usual.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { PROXY_ERROR_HEADER } from "../../src/proxy/index.js";
import { PRIMARY_HOSTNAME } from "../replication/cluster.js";
import { GUESTBOOK_DB, startGuestbookNode, waitForOk, type GuestbookNode } from "../node/node-kit.js";
import { cookieFrom, httpRequest, type HttpAnswer } from "./proxy-test-kit.js";

interface Entry {
  readonly message: string;
}

async function post(node: GuestbookNode, message: string): Promise<HttpAnswer> {
  const answer = await httpRequest(`${node.proxyUrl}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "client", message }),
  });
  assert.equal(answer.status, 303, answer.body);
  return answer;
}

function tokenOf(answer: HttpAnswer): string {
  const token = String(answer.headers["litefs-txid"]);
  assert.match(token, /^[0-9a-f]{16}\/[0-9a-f]{16}$/);
  assert.equal(cookieFrom(answer, "__txid"), `__txid=${token}`);
  return token;
}

function posText(node: GuestbookNode): string {
  const pos = node.node.readPos(GUESTBOOK_DB);
  return `${pos.txid.toString(16).padStart(16, "0")}/${pos.checksum}`;
}

async function waitForTxid(node: GuestbookNode, txid: bigint): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (node.node.readPos(GUESTBOOK_DB).txid < txid) {
    assert.ok(Date.now() < deadline, `node did not reach TXID ${txid}: ${posText(node)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function messages(answer: HttpAnswer): string[] {
  return (JSON.parse(answer.body) as Entry[]).map((e) => e.message);
}

describe("read-your-writes tokens across diverged histories (real nodes)", { timeout: 120_000 }, () => {
  let a: GuestbookNode;
  let b: GuestbookNode;
  let c: GuestbookNode;
  /** A's position after the client's write on A, and its TXID alone. */
  let tokenA: string;
  let txidA: string;

  before(async () => {
    a = await startGuestbookNode();
    b = await startGuestbookNode();
    await Promise.all([waitForOk(`${a.proxyUrl}/entries`), waitForOk(`${b.proxyUrl}/entries`)]);
    c = await startGuestbookNode({
      appArgs: ["--readonly"],
      config: {
        lease: {
          type: "static",
          candidate: false,
          hostname: PRIMARY_HOSTNAME,
          "advertise-url": b.node.httpUrl,
        },
      },
    });
    await waitForOk(`${c.proxyUrl}/entries`);

    tokenA = tokenOf(await post(a, "the client's write, on A"));
    txidA = tokenA.slice(0, 16);
    // B's own history reaches (and passes) that TXID with other contents.
    for (let i = 0; b.node.readPos(GUESTBOOK_DB).txid <= BigInt("0x" + txidA); i++) {
      await post(b, `B's own history ${i}`);
    }
    await waitForTxid(c, b.node.readPos(GUESTBOOK_DB).txid);
  });

  after(async () => {
    await c?.cleanup();
    await b?.cleanup();
    await a?.cleanup();
  });

  test("the histories really differ at the token's TXID", async () => {
    const onA = await httpRequest(`${a.proxyUrl}/entries`, { headers: { "litefs-txid": tokenA } });
    assert.equal(onA.status, 200, onA.body);
    assert.ok(messages(onA).includes("the client's write, on A"));
    const onB = await httpRequest(`${b.proxyUrl}/entries`);
    assert.ok(!messages(onB).includes("the client's write, on A"));
    assert.ok(b.node.readPos(GUESTBOOK_DB).txid > BigInt("0x" + txidA));
  });

  test("a primary on another branch refuses the read: 503, never its own state", async () => {
    for (const headers of [{ cookie: `__txid=${tokenA}` }, { "litefs-txid": tokenA }]) {
      const answer = await httpRequest(`${b.proxyUrl}/entries`, { headers });
      assert.equal(answer.status, 503, answer.body);
      assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYTXIDBRANCH");
      assert.equal(answer.headers["retry-after"], "1");
      assert.match(
        answer.body,
        new RegExp(`holds TXID ${txidA} with checksum [0-9a-f]{16}, not your last write`),
      );
      assert.doesNotMatch(answer.body, /B's own history/);
    }
  });

  test("a replica on that branch forwards the read to its primary, which refuses it", async () => {
    const answer = await httpRequest(`${c.proxyUrl}/entries`, { headers: { cookie: `__txid=${tokenA}` } });
    assert.equal(answer.status, 503, answer.body);
    assert.equal(answer.headers[PROXY_ERROR_HEADER], "EPROXYTXIDBRANCH");
    // The refusal is the primary's (B's): the replica forwarded the read rather than answer it.
    assert.match(answer.body, /on this node \(the primary as far as it knows\) holds TXID/);
    const metrics = await (await fetch(`${c.node.httpUrl}/metrics`)).text();
    assert.match(metrics, /^litefs_proxy_requests_total\{kind="forwarded"\} [1-9]\d*$/m);
  });

  test("a primary behind the token refuses at once; tokens of its own history are served", async () => {
    const ahead = BigInt("0x" + posText(b).slice(0, 16)) + 100n;
    const started = Date.now();
    const refused = await httpRequest(`${b.proxyUrl}/entries`, {
      headers: { "litefs-txid": ahead.toString(16) },
    });
    assert.equal(refused.status, 503, refused.body);
    assert.match(refused.body, /behind your last write/);
    assert.ok(Date.now() - started < 5000, "a primary must not wait for a TXID it cannot get");

    const mine = tokenOf(await post(c, "written through the replica, on B"));
    const read = await httpRequest(`${c.proxyUrl}/entries`, { headers: { cookie: `__txid=${mine}` } });
    assert.equal(read.status, 200, read.body);
    assert.ok(messages(read).includes("written through the replica, on B"));
  });

  test("a bare TXID (older clients) is satisfied by any history at that TXID: the weaker guarantee", async () => {
    for (const node of [b, c]) {
      const answer = await httpRequest(`${node.proxyUrl}/entries`, { headers: { "litefs-txid": txidA } });
      assert.equal(answer.status, 200, answer.body);
      assert.ok(!messages(answer).includes("the client's write, on A"));
    }
  });
});
