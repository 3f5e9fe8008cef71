// A write's answer and the end of the lease it ran under (proxy-server.ts `#toApp`, LeaseRole
// `mayAcknowledge`). The app behind the primary's LiteFS proxy commits a row through the mount and
// then holds its answer while the test:
//   - freezes the primary (SIGSTOP) until another node holds the lease, then continues it: the proxy
//     reads the app's "stored" only then, when the row may not be on the new primary (replication is
//     asynchronous) — it must answer 503 EPROXYLEASELOST, never a success (the chaos bench once counted
//     a write acknowledged 80 ms after such a freeze and lost);
//   - hands the lease off (`litefs promote`): the target took over with every transaction committed
//     on the old primary, so the app's answer, relayed after the handoff, is a success and the row is
//     on the new primary.
// Real etcd, two `litefs mount` processes with a proxy each, the app in this process.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import Database from "better-sqlite3";

import { runLitefsCli } from "../support/litefs-cli.js";
import { LeasedCluster, type LeasedNode } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";

const DB = "answers.db";

/** An app per node: POST /hold?v=… inserts v through that node's mount, then answers when released. */
class HoldingApp {
  readonly server: http.Server;
  node: LeasedNode | undefined;
  #held: { committed: () => void; release: Promise<void> } | undefined;

  constructor() {
    this.server = http.createServer((req, res) => {
      req.resume();
      const held = this.#held;
      const v = new URL(req.url ?? "/", "http://app").searchParams.get("v") ?? "";
      try {
        const db = new Database(this.node!.node.dbPath(DB));
        try {
          db.pragma("busy_timeout = 5000");
          db.prepare("INSERT INTO t (v) VALUES (?)").run(v);
        } finally {
          db.close(); // nothing of the mount stays open while the node may be frozen
        }
      } catch (err) {
        res.statusCode = 500;
        res.end(`app: ${(err as Error).message}\n`);
        return;
      }
      held?.committed();
      void (held?.release ?? Promise.resolve()).then(() => res.end("stored\n"));
    });
  }

  /** The next write commits, then waits for `release()`; resolves once it has committed. */
  holdNext(): { committed: Promise<void>; release: () => void } {
    let committed!: () => void;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (committed = resolve));
    this.#held = { committed, release: new Promise<void>((resolve) => (release = resolve)) };
    return { committed: done, release };
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

interface Answer {
  status: number;
  proxyError: string | undefined;
  body: string;
}

function post(node: LeasedNode, v: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: node.proxyPort!, method: "POST", path: `/hold?v=${v}`, timeout: 60_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          const proxyError = res.headers["litefs-proxy-error"];
          resolve({ status: res.statusCode ?? 0, proxyError: proxyError as string | undefined, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 60 s")));
    req.on("error", reject);
    req.end("x");
  });
}

async function values(node: LeasedNode): Promise<string[]> {
  const { results } = await runSqlJob("better-sqlite3", {
    dbPath: node.node.dbPath(DB),
    queries: ["SELECT v FROM t ORDER BY id"],
  });
  return results[0].map((r) => String(r.v));
}

/** Two nodes with a proxy and an app each, the table created and replicated; `app` is the primary's. */
async function startCluster(t: { after: (fn: () => unknown) => void }): Promise<{
  cluster: LeasedCluster;
  old: LeasedNode;
  app: HoldingApp;
}> {
  const apps = [new HoldingApp(), new HoldingApp()];
  const targets = await Promise.all(apps.map((app) => app.listen()));
  t.after(() => Promise.all(apps.map((app) => new Promise((resolve) => app.server.close(resolve)))));
  const cluster = await LeasedCluster.start({
    nodes: 2,
    ttl: "2s",
    proxy: { target: (i) => targets[i], db: DB },
  });
  t.after(() => cluster.cleanup());
  for (const n of cluster.nodes) apps[n.index].node = n;
  const primary = await cluster.primary();
  await runSqlJob("better-sqlite3", {
    dbPath: primary.node.dbPath(DB),
    pragmas: ["PRAGMA journal_mode=delete"],
    scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"],
  });
  await cluster.waitForReplicasConnected(primary);
  await cluster.waitConverged([DB]);
  return { cluster, old: primary, app: apps[primary.index] };
}

test(
  "a write answered after its primary was frozen past the lease's TTL is refused, not acknowledged",
  { timeout: 120_000 },
  async (t) => {
    const { cluster, old, app } = await startCluster(t);
    const plain = await post(old, "before");
    assert.equal(plain.status, 200, `${plain.body}\n${cluster.logs()}`);

    const held = app.holdNext();
    const answer = post(old, "frozen");
    await held.committed;
    const thaw = cluster.freeze(old, t);
    held.release(); // the app answers now; the frozen proxy reads it when it runs again
    const next = await cluster.waitForPrimary({ not: old, timeoutMs: 30_000 });
    thaw();
    const refused = await answer;
    assert.equal(refused.status, 503, `the answer after the freeze: ${refused.status} ${refused.body}`);
    assert.equal(refused.proxyError, "EPROXYLEASELOST");
    assert.match(refused.body, /outcome is unknown/);
    t.diagnostic(`new primary ${next.name}; answer: ${refused.body.trim()}`);

    // The node went on as a replica of the new primary; the cluster converges.
    await cluster.waitForReplicasConnected(next);
    await cluster.waitConverged([DB]);
    assert.ok(old.node.running, `${old.name} exited`);
  },
);

test(
  "a write answered after a handoff is acknowledged: the target took over with it",
  { timeout: 120_000 },
  async (t) => {
    const { cluster, old, app } = await startCluster(t);
    const [target] = cluster.others(old);

    const held = app.holdNext();
    const answer = post(old, "handed");
    await held.committed;
    // The handoff waits for writes at the app (lease-role.ts drain, 1 s), then goes on without this one.
    const promoted = await runLitefsCli(["promote", "--url", target.node.httpUrl], { timeoutMs: 30_000 });
    assert.equal(promoted.code, 0, promoted.stderr + promoted.stdout);
    assert.equal((await cluster.primary()).name, target.name);
    held.release();
    const acknowledged = await answer;
    assert.equal(acknowledged.status, 200, `${acknowledged.proxyError}: ${acknowledged.body}`);
    assert.equal(acknowledged.body, "stored\n");
    assert.deepEqual(await values(target), ["handed"], "the row is on the new primary");
  },
);
