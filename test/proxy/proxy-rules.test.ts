// The proxy's pure decisions, exhaustively: routing by method/path/role/mode, path globs, TXID tokens,
// and header rewriting.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import fc from "fast-check";

import { downstreamResponseHeaders, upstreamRequestHeaders } from "../../src/proxy/forwarding-headers.js";
import { PathGlob } from "../../src/proxy/path-glob.js";
import { RequestRouter, requestTarget, type ProxyRoute } from "../../src/proxy/request-route.js";
import {
  BadTxidError,
  formatTxid,
  parseTxid,
  formatToken,
  parseToken,
  requestedToken,
  txidSetCookie,
} from "../../src/proxy/txid-token.js";
import { primaryTarget, appTarget } from "../../src/proxy/upstream-target.js";

describe("RequestRouter", () => {
  const forward = new RequestRouter({
    passthrough: ["/static/*"],
    alwaysForward: ["/admin/*", "/login"],
    mode: "forward",
  });
  const replay = new RequestRouter({ passthrough: [], alwaysForward: ["/login"], mode: "fly-replay" });

  const cases: Array<[RequestRouter, string, string, boolean, boolean, ProxyRoute]> = [
    [forward, "GET", "/litefs/health", false, false, { kind: "health" }],
    [forward, "POST", "/litefs/health", true, false, { kind: "health" }],
    [forward, "POST", "/static/a/b.css", false, false, { kind: "passthrough" }],
    [forward, "GET", "/static/x", false, true, { kind: "passthrough" }],
    [forward, "GET", "/", false, false, { kind: "read", waitForTxid: true }],
    [forward, "HEAD", "/", false, false, { kind: "read", waitForTxid: true }],
    [forward, "GET", "/", true, false, { kind: "read", waitForTxid: false }],
    [forward, "POST", "/", true, false, { kind: "write" }],
    [forward, "POST", "/", true, true, { kind: "write" }],
    [forward, "OPTIONS", "/", false, false, { kind: "forward", write: true }],
    [forward, "DELETE", "/x", false, false, { kind: "forward", write: true }],
    [forward, "POST", "/", false, true, { kind: "loop" }],
    [forward, "GET", "/admin/users", false, false, { kind: "forward", write: false }],
    [forward, "GET", "/admin/users", false, true, { kind: "loop" }],
    [forward, "GET", "/admin/users", true, true, { kind: "read", waitForTxid: false }],
    [forward, "GET", "/login", false, false, { kind: "forward", write: false }],
    [forward, "GET", "/login/x", false, false, { kind: "read", waitForTxid: true }],
    [replay, "POST", "/", false, false, { kind: "replay" }],
    [replay, "GET", "/login", false, false, { kind: "replay" }],
    [replay, "GET", "/", false, false, { kind: "read", waitForTxid: true }],
    [replay, "POST", "/", false, true, { kind: "loop" }],
  ];
  for (const [router, method, path, isPrimary, forwarded, expected] of cases) {
    test(`${router === forward ? "forward" : "fly-replay"}: ${method} ${path} primary=${isPrimary} forwarded=${forwarded}`, () => {
      assert.deepEqual(router.route({ method, path, isPrimary, forwarded }), expected);
    });
  }

  test("upgrades are never writes: local unless always-forward", () => {
    const up = (path: string, isPrimary: boolean, forwarded = false): ProxyRoute =>
      forward.routeUpgrade({ method: "GET", path, isPrimary, forwarded });
    assert.deepEqual(up("/ws", false), { kind: "read", waitForTxid: true });
    assert.deepEqual(up("/ws", true), { kind: "read", waitForTxid: false });
    assert.deepEqual(up("/admin/ws", false), { kind: "forward", write: false });
    assert.deepEqual(up("/admin/ws", false, true), { kind: "loop" });
    assert.deepEqual(up("/admin/ws", true, true), { kind: "read", waitForTxid: false });
    assert.deepEqual(up("/static/ws", false), { kind: "passthrough" });
  });

  test("a replica never routes a forwarded request to the primary again (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        fc.constantFrom("/", "/admin/x", "/login", "/static/y", "/litefs/health", "/other"),
        fc.boolean(),
        (method, path, isPrimary) => {
          for (const router of [forward, replay]) {
            const route = router.route({ method, path, isPrimary, forwarded: true });
            assert.ok(route.kind !== "forward" && route.kind !== "replay");
            if (isPrimary) assert.notEqual(route.kind, "loop");
          }
        },
      ),
    );
  });

  test("requestTarget: decoded path for matching, origin form for forwarding", () => {
    assert.deepEqual(requestTarget("/a%20b/c?q=%20"), { path: "/a b/c", originForm: "/a%20b/c?q=%20" });
    assert.deepEqual(requestTarget("http://host:1/x/y?z"), { path: "/x/y", originForm: "/x/y?z" });
    assert.deepEqual(requestTarget("/bad%zz"), { path: "/bad%zz", originForm: "/bad%zz" });
    assert.deepEqual(requestTarget(undefined), { path: "/", originForm: "/" });
  });
});

describe("PathGlob", () => {
  test("LiteFS semantics: whole path, * spans slashes, everything else literal", () => {
    const glob = new PathGlob("/static/*.css");
    assert.ok(glob.matches("/static/a.css"));
    assert.ok(glob.matches("/static/deep/dir/a.css"));
    assert.ok(!glob.matches("/static/a.cssx"));
    assert.ok(!glob.matches("/x/static/a.css"));
    assert.ok(new PathGlob("/a.b").matches("/a.b"));
    assert.ok(!new PathGlob("/a.b").matches("/aXb"), "a dot is a dot");
    assert.ok(new PathGlob("/q?(x)[y]").matches("/q?(x)[y]"), "regex characters are literal");
    assert.ok(new PathGlob("*").matches(""));
    assert.throws(() => new PathGlob(""), RangeError);
  });

  test("a glob without * matches exactly itself (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((s) => !s.includes("*")),
        fc.string(),
        (pattern, other) => {
          const glob = new PathGlob(pattern);
          assert.ok(glob.matches(pattern));
          assert.equal(glob.matches(other), other === pattern);
        },
      ),
    );
  });
});

describe("TXID tokens", () => {
  test("format and parse round-trip every u64 (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }), (txid) => {
        const text = formatTxid(txid);
        assert.match(text, /^[0-9a-f]{16}$/);
        assert.equal(parseTxid(text), txid);
      }),
    );
    assert.throws(() => formatTxid(-1n), RangeError);
    assert.throws(() => formatTxid(1n << 64n), RangeError);
  });

  test("parse accepts 1–16 hex digits of either case and nothing else", () => {
    assert.equal(parseTxid("A"), 10n);
    assert.equal(parseTxid(" 00ff "), 255n);
    for (const bad of ["", "g", "0x1", "-1", "1".repeat(17), "1 2"])
      assert.equal(parseTxid(bad), undefined, bad);
  });

  test("position tokens: TXID/CHECKSUM round-trips; a bare TXID is still accepted (property)", () => {
    const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
    fc.assert(
      fc.property(u64, u64, (txid, checksum) => {
        const text = formatToken({ txid, checksum });
        assert.match(text, /^[0-9a-f]{16}\/[0-9a-f]{16}$/);
        assert.deepEqual(parseToken(text), { txid, checksum });
        assert.deepEqual(parseToken(text.toUpperCase()), { txid, checksum });
        assert.deepEqual(parseToken(formatTxid(txid)), { txid, checksum: undefined });
      }),
    );
    for (const bad of ["", "1/2", "0000000000000001/", "0000000000000001-0000000000000002", "g/g", "1 2"])
      assert.equal(parseToken(bad), undefined, bad);
    assert.throws(() => formatToken({ txid: 1n, checksum: 1n << 64n }), RangeError);
  });

  test("the request's token is the highest of its cookies and header; malformed ones are errors", () => {
    const pos = (txid: bigint, checksum: bigint): string => formatToken({ txid, checksum });
    assert.equal(requestedToken(undefined, undefined), undefined);
    assert.equal(requestedToken("a=1; b=2", undefined), undefined);
    assert.deepEqual(requestedToken("a=1; __txid=0000000000000005; x=__txid", "3"), {
      txid: 5n,
      checksum: undefined,
    });
    assert.deepEqual(requestedToken("__txid=3", pos(10n, 77n)), { txid: 10n, checksum: 77n });
    assert.deepEqual(requestedToken(`__txid=3; __txid=${pos(7n, 9n)}`, undefined), {
      txid: 7n,
      checksum: 9n,
    });
    assert.deepEqual(requestedToken(undefined, ["4", "9"]), { txid: 9n, checksum: undefined });
    // At the same TXID a position beats a bare TXID, and the header beats the cookie.
    assert.deepEqual(requestedToken(`__txid=${pos(9n, 1n)}`, "9"), { txid: 9n, checksum: 1n });
    assert.deepEqual(requestedToken(`__txid=${pos(9n, 1n)}`, pos(9n, 2n)), { txid: 9n, checksum: 2n });
    assert.throws(
      () => requestedToken("__txid=zz", undefined),
      (err: unknown) => err instanceof BadTxidError && err.fromCookie,
    );
    assert.throws(
      () => requestedToken(undefined, "0000000000000001/zz"),
      (err: unknown) => err instanceof BadTxidError && !err.fromCookie,
    );
  });

  test("the cookie a write sets carries the position", () => {
    assert.equal(
      txidSetCookie({ txid: 18n, checksum: 0xabcn }),
      "__txid=0000000000000012/0000000000000abc; Path=/; Max-Age=300; HttpOnly; SameSite=Lax",
    );
  });
});

describe("header rewriting", () => {
  test("upstream: hop-by-hop and Connection-named headers dropped, X-Forwarded-* set, marker added/stripped", () => {
    const incoming = {
      host: "example.org",
      connection: "close, X-Secret",
      "x-secret": "s",
      te: "trailers",
      "proxy-authorization": "Basic x",
      expect: "100-continue",
      "litefs-proxy-hop": "1",
      cookie: "a=b",
    };
    const toPrimary = upstreamRequestHeaders(incoming, {
      clientAddress: "::ffff:10.0.0.9",
      hopMarker: "add",
      upgrade: false,
    });
    assert.deepEqual(toPrimary, {
      host: "example.org",
      cookie: "a=b",
      "litefs-proxy-hop": "1",
      "x-forwarded-for": "10.0.0.9",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "example.org",
    });
    const toApp = upstreamRequestHeaders(
      {
        ...incoming,
        "x-forwarded-proto": "https",
        "x-forwarded-host": "edge.example",
        "x-forwarded-for": "1.2.3.4",
      },
      { clientAddress: "10.0.0.9", hopMarker: "strip", upgrade: false },
    );
    assert.equal(toApp["litefs-proxy-hop"], undefined);
    assert.equal(toApp["x-forwarded-proto"], "https");
    assert.equal(toApp["x-forwarded-host"], "edge.example");
    assert.equal(toApp["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
  });

  test("upstream upgrade keeps Connection: upgrade and Upgrade", () => {
    const headers = upstreamRequestHeaders(
      { connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" },
      { clientAddress: undefined, hopMarker: "strip", upgrade: true },
    );
    assert.equal(headers.connection, "upgrade");
    assert.equal(headers.upgrade, "websocket");
    assert.equal(headers["sec-websocket-key"], "k");
  });

  test("downstream: raw order, case and repeated Set-Cookie kept; hop-by-hop dropped", () => {
    const raw = [
      "Set-Cookie",
      "a=1",
      "Connection",
      "keep-alive, X-Hop",
      "X-Hop",
      "gone",
      "Keep-Alive",
      "timeout=5",
      "Transfer-Encoding",
      "chunked",
      "Set-Cookie",
      "b=2",
      "Litefs-Txid",
      "00",
    ];
    assert.deepEqual(downstreamResponseHeaders(raw), [
      "Set-Cookie",
      "a=1",
      "Set-Cookie",
      "b=2",
      "Litefs-Txid",
      "00",
    ]);
    assert.deepEqual(downstreamResponseHeaders(raw, { drop: new Set(["litefs-txid"]) }), [
      "Set-Cookie",
      "a=1",
      "Set-Cookie",
      "b=2",
    ]);
  });
});

describe("upstream targets", () => {
  test("the app from proxy.target, the primary from its URL", () => {
    assert.deepEqual(
      { ...appTarget(":8081") },
      { host: "127.0.0.1", port: 8081, description: "the app at :8081", downCode: "EPROXYAPPDOWN" },
    );
    assert.equal(appTarget("[::1]:3000").host, "::1");
    assert.throws(() => appTarget("nope"), RangeError);
    const primary = primaryTarget("http://[fd00::2]:8080/");
    assert.equal(primary.host, "fd00::2");
    assert.equal(primary.port, 8080);
    assert.equal(primaryTarget("http://node-1").port, 80);
    assert.throws(() => primaryTarget("https://node-1"), /must be http:/);
    assert.throws(() => primaryTarget("::"), /is not a URL/);
  });
});
