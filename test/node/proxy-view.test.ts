// The proxy's view over a real store (no mount): TXIDs are the store's positions, and a read waiting for
// a TXID is woken by the store's commit event — only once that TXID is reached, only for its database —
// and leaves no waiter behind when aborted or when the view closes. Plus the primary's proxy URL:
// how a node names its own proxy, and how a replica learns the primary's from a real `/info` server.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";

import Database from "better-sqlite3";

import { advertisedProxyURL, PrimaryProxyDiscovery } from "../../src/node/primary-proxy-url.js";
import { ProxyViewClosedError, StoreProxyView } from "../../src/node/proxy-view.js";
import { importDatabaseFile } from "../../src/store/database-import.js";
import { Store } from "../../src/store/store.js";
import type { LogFields, StoreLogger } from "../../src/store/store-logger.js";

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-proxy-view-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Commits one transaction to `name` by importing a small SQLite file (the store's own commit path). */
async function commit(store: Store, dir: string, name: string, rows: number): Promise<bigint> {
  const file = path.join(dir, `upload-${name}-${rows}.db`);
  const db = new Database(file);
  db.exec("CREATE TABLE t (x INTEGER)");
  for (let i = 0; i < rows; i++) db.prepare("INSERT INTO t VALUES (?)").run(i);
  db.close();
  const target = store.createDatabase(name);
  await importDatabaseFile(target, file);
  return target.pos.txid;
}

function openView(t: { after(fn: () => void): void }): { store: Store; view: StoreProxyView; dir: string } {
  const dir = tempDir(t);
  const store = Store.open({ dataDir: path.join(dir, "data"), noSync: true });
  const view = new StoreProxyView({
    store,
    isPrimary: () => false,
    primaryProxyURL: () => "http://10.0.0.1:8080",
    primaryHostname: () => "primary-1",
    lagMs: () => 42,
  });
  t.after(() => {
    view.close();
    store.close();
  });
  return { store, view, dir };
}

function settled(promise: Promise<unknown>): Promise<"resolved" | "rejected" | "pending"> {
  return Promise.race([
    promise.then(
      () => "resolved" as const,
      () => "rejected" as const,
    ),
    new Promise<"pending">((resolve) => setTimeout(() => resolve("pending"), 20)),
  ]);
}

describe("StoreProxyView", () => {
  test("TXIDs are the store's; a wait resolves on the commit that reaches it, not before", async (t) => {
    const { store, view, dir } = openView(t);
    assert.equal(view.txid("a.db"), 0n);
    assert.equal(view.lagMs(), 42);
    assert.equal(view.primaryProxyURL(), "http://10.0.0.1:8080");
    assert.equal(view.primaryHostname(), "primary-1");

    const never = new AbortController();
    const second = view.waitForTxid("a.db", 2n, never.signal);
    const other = view.waitForTxid("b.db", 1n, never.signal);
    assert.equal(view.waiting, 2);
    assert.equal(await commit(store, dir, "a.db", 1), 1n);
    assert.equal(view.txid("a.db"), 1n);
    assert.equal(await settled(second), "pending", "woken before its TXID");
    assert.equal(await commit(store, dir, "a.db", 2), 2n);
    assert.equal(await settled(second), "resolved");
    assert.equal(await settled(other), "pending", "woken by another database's commit");
    await commit(store, dir, "b.db", 1);
    assert.equal(await settled(other), "resolved");
    assert.equal(view.waiting, 0);

    // Already reached: at once, without joining the waiters.
    assert.equal(await settled(view.waitForTxid("a.db", 1n, never.signal)), "resolved");
    assert.equal(view.waiting, 0);
  });

  test("an aborted wait rejects with the abort reason and leaves no waiter", async (t) => {
    const { view } = openView(t);
    const abort = new AbortController();
    const waiting = view.waitForTxid("a.db", 5n, abort.signal);
    assert.equal(view.waiting, 1);
    abort.abort(new Error("client went away"));
    await assert.rejects(waiting, /client went away/);
    assert.equal(view.waiting, 0);
    await assert.rejects(view.waitForTxid("a.db", 5n, abort.signal), /client went away/);
    assert.equal(view.waiting, 0);
  });

  test("closing ends every wait with ProxyViewClosedError and refuses new ones", async (t) => {
    const { view } = openView(t);
    const never = new AbortController();
    const a = view.waitForTxid("a.db", 1n, never.signal);
    const b = view.waitForTxid("b.db", 3n, never.signal);
    view.close();
    await assert.rejects(a, ProxyViewClosedError);
    await assert.rejects(b, ProxyViewClosedError);
    assert.equal(view.waiting, 0);
    await assert.rejects(view.waitForTxid("a.db", 1n, never.signal), ProxyViewClosedError);
  });

  test("on a primary it names no primary proxy (writes go to the local app)", async (t) => {
    const dir = tempDir(t);
    const store = Store.open({ dataDir: dir, noSync: true });
    t.after(() => store.close());
    const view = new StoreProxyView({
      store,
      isPrimary: () => true,
      primaryProxyURL: () => assert.fail("asked for the primary's URL on the primary"),
      primaryHostname: () => assert.fail("asked for the primary's hostname on the primary"),
      lagMs: () => 0,
    });
    t.after(() => view.close());
    assert.equal(view.isPrimary(), true);
    assert.equal(view.primaryProxyURL(), undefined);
    assert.equal(view.primaryHostname(), undefined);
  });
});

describe("the primary's proxy URL", () => {
  test("a node names its proxy by its bound address, or the advertise URL's host when bound to all", () => {
    const bound = (address: string, family = "IPv4"): AddressInfo => ({ address, family, port: 8080 });
    assert.equal(advertisedProxyURL(bound("10.1.2.3"), "http://node-1:20202"), "http://10.1.2.3:8080");
    assert.equal(advertisedProxyURL(bound("0.0.0.0"), "http://node-1:20202"), "http://node-1:8080");
    assert.equal(advertisedProxyURL(bound("::", "IPv6"), "http://[fd00::7]:20202"), "http://[fd00::7]:8080");
    assert.equal(advertisedProxyURL(bound("fd00::9", "IPv6"), "http://x:1"), "http://[fd00::9]:8080");
    assert.equal(advertisedProxyURL(bound("0.0.0.0"), "not a url"), "http://127.0.0.1:8080");
  });

  test("a replica learns it from the primary's /info, with the token, and keeps it while unreachable", async (t) => {
    const seen: (string | undefined)[] = [];
    let answer: { status: number; body: unknown } = {
      status: 200,
      body: { isPrimary: true, proxyURL: "http://10.0.0.1:8080" },
    };
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const warnings: string[] = [];
    const log: StoreLogger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (msg: string, _fields?: LogFields) => warnings.push(msg),
      error: () => undefined,
    };
    let primary: string | null = `http://127.0.0.1:${port}`;
    const discovery = new PrimaryProxyDiscovery({ primaryApiUrl: () => primary, authToken: "tok", log });
    t.after(() => discovery.stop());

    assert.equal(discovery.url(), undefined);
    await discovery.refresh();
    assert.equal(discovery.url(), "http://10.0.0.1:8080");
    assert.deepEqual(seen, ["Bearer tok"]);

    answer = { status: 500, body: { error: "boom" } };
    await discovery.refresh();
    assert.equal(discovery.url(), "http://10.0.0.1:8080", "a failed refresh forgot the known URL");
    assert.match(warnings.at(-1) ?? "", /cannot ask the primary .*500/);

    answer = { status: 200, body: { isPrimary: true, proxyURL: null } };
    await discovery.refresh();
    assert.equal(discovery.url(), undefined);
    assert.match(warnings.at(-1) ?? "", /runs no proxy/);

    answer = { status: 200, body: { isPrimary: false, proxyURL: "http://10.0.0.2:8080" } };
    await discovery.refresh();
    assert.equal(discovery.url(), undefined, "took the URL of a node that is not the primary");

    answer = { status: 200, body: { isPrimary: true, proxyURL: "http://10.0.0.3:8080/path" } };
    await discovery.refresh();
    assert.equal(discovery.url(), undefined, "took a URL that is not a base URL");

    primary = null;
    await discovery.refresh();
    assert.match(warnings.at(-1) ?? "", /no primary is known/);
  });
});
