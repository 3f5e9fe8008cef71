// Fencing and lease loss of a running node on a real etcd (TTL 2 s):
// - a replica that has seen epoch N (persisted in `<data>/epoch`) refuses a primary at an older epoch,
//   also after a restart;
// - a primary cut off from etcd (a TCP proxy that silently drops everything) stops committing before
//   its lease can expire at etcd: no write succeeds and no LTX file of its node id is written after
//   `cut + TTL`; another candidate takes over, and the old primary keeps running as a replica. Every
//   epoch history line is recorded.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, test } from "node:test";

import { STREAM_CONTENT_TYPE } from "../../src/api/stream-frame.js";
import { CLUSTER_ID_HEADER, formatNodeId, NODE_ID_HEADER } from "../../src/api/stream-request.js";
import { readLtxHeaderAndTrailer } from "../../src/store/ltx-file-reader.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { epochOfTxid, parseEpochHistory } from "../../src/store/epoch-history.js";
import { encodeItems } from "../api/stream-kit.js";
import { TcpBlackholeProxy } from "../lease/tcp-blackhole-proxy.js";
import { EtcdCluster } from "../support/etcd.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import { LitefsNode, litefsNodeConfig, writeLitefsConfig } from "../support/litefs-node.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { sqlite } from "./node-kit.js";
import { nodeStatus, startEtcdNode, TTL_MS, waitConverged, waitFor, waitForPrimary } from "./lease-kit.js";

const DB = "app.db";

test("a replica refuses a primary of an older epoch, also after a restart", { timeout: 90_000 }, async () => {
  const etcd = await EtcdCluster.start({ label: "lease-fencing" });
  const nodes: LitefsNode[] = [];
  const staleDir = makeTempDir("stale-primary");
  after(async () => {
    for (const node of nodes) await node.cleanup().catch(() => undefined);
    removeTempDir(staleDir);
    await etcd.stop();
  });
  const primary = await startEtcdNode("fence-primary", etcd.endpoints, "/litefs/fencing");
  nodes.push(primary);
  const replica = await startEtcdNode("fence-replica", etcd.endpoints, "/litefs/fencing", {
    candidate: false,
  });
  nodes.push(replica);
  // (.timeout: the replica's first catch-up may hold a snapshot's reader locks for a moment.)
  await sqlite(primary.dbPath(DB), ".timeout 5000\nCREATE TABLE t(v); INSERT INTO t VALUES (1);");
  const pos = await waitConverged(primary, [replica], DB);
  const epoch = BigInt((await nodeStatus(primary)).epoch);
  assert.ok(epoch > 1n, `etcd epoch ${epoch} must be above the static lease's 1`);
  assert.equal(fs.readFileSync(path.join(replica.dataDir, "epoch"), "utf8").trim(), epoch.toString());
  // The replica recorded the epoch of the transactions it applied.
  const replicaHistory = parseEpochHistory(
    fs.readFileSync(path.join(replica.storeDir(DB), "epochs"), "utf8"),
    "replica epochs",
  );
  assert.equal(epochOfTxid(replicaHistory, 1n), epoch);
  const primaryHistory = parseEpochHistory(
    fs.readFileSync(path.join(primary.storeDir(DB), "epochs"), "utf8"),
    "primary epochs",
  );
  assert.equal(epochOfTxid(primaryHistory, 1n), epoch);
  const clusterId = fs.readFileSync(path.join(primary.dataDir, "clusterid"), "utf8");
  await replica.stop();
  await primary.stop();

  // A stale primary: static lease, epoch 1, same cluster id.
  fs.mkdirSync(path.join(staleDir, "data"), { recursive: true });
  fs.writeFileSync(path.join(staleDir, "data", "clusterid"), clusterId);
  const stale = await LitefsNode.start({ baseDir: staleDir });
  nodes.push(stale);
  await sqlite(
    stale.dbPath(DB),
    ".timeout 5000\nCREATE TABLE t(v); INSERT INTO t VALUES (666); INSERT INTO t VALUES (667);",
  );

  // The replica restarts as a static replica of the stale primary: it must refuse it.
  const config = litefsNodeConfig({
    fuseDir: replica.fuseDir,
    dataDir: replica.dataDir,
    httpPort: replica.httpPort,
    retention: "24h",
  });
  config.lease = { type: "static", candidate: false, hostname: "stale", "advertise-url": stale.httpUrl };
  writeLitefsConfig(replica.configPath, config);
  await replica.restart();
  const refused = await waitFor("the replica refuses the stale primary", async () => {
    const s = await nodeStatus(replica);
    return /ESTREAMEPOCH/.test(s.replication?.lastError ?? "") ? s : undefined;
  });
  assert.equal(refused.epochSeen, epoch.toString());
  assert.equal(refused.dbs[DB]?.pos, pos);
  assert.match(stale.lastRunLogs(), /replication stream refused/);

  // A stale primary that ignores `epochSeen` and streams anyway: the replica refuses its EPOCH frame.
  await replica.stop();
  const fake = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, {
        "Content-Type": STREAM_CONTENT_TYPE,
        [NODE_ID_HEADER]: formatNodeId(0x5ea1en),
        [CLUSTER_ID_HEADER]: clusterId.trim(),
      });
      res.end(
        encodeItems([
          { kind: "frame", frame: { type: "epoch", epoch: 1n, primaryNodeId: 0x5ea1en } },
          { kind: "frame", frame: { type: "ready" } },
          { kind: "frame", frame: { type: "end", reason: "shutdown" } },
        ]),
      );
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
  after(() => fake.close());
  const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  config.lease = { type: "static", candidate: false, hostname: "fake", "advertise-url": fakeUrl };
  writeLitefsConfig(replica.configPath, config);
  await replica.restart();
  const refusedFrame = await waitFor("the replica refuses the stale EPOCH frame", async () => {
    const s = await nodeStatus(replica);
    return /already seen: a stale primary/.test(s.replication?.lastError ?? "") ? s : undefined;
  });
  assert.equal(refusedFrame.dbs[DB]?.pos, pos);
  assert.equal(refusedFrame.epochSeen, epoch.toString());

  // With the static lease, promote is refused with a clear error.
  const promote = await runLitefsCli(["promote", "--url", replica.httpUrl]);
  assert.equal(promote.code, 1);
  assert.match(promote.stderr, /ELEASENOTSUPPORTED/);
});

test(
  "a primary cut off from etcd stops committing before its lease expires and stays up as a replica",
  { timeout: 90_000 },
  async () => {
    const etcd = await EtcdCluster.start({ label: "lease-loss" });
    const etcdPort = Number(new URL(etcd.endpoints[0]).port);
    const proxy = await TcpBlackholeProxy.start(etcdPort);
    const nodes: LitefsNode[] = [];
    after(async () => {
      for (const node of nodes) await node.cleanup().catch(() => undefined);
      await proxy.close();
      await etcd.stop();
    });
    const a = await startEtcdNode("cut-a", [proxy.url], "/litefs/loss");
    nodes.push(a);
    assert.equal((await nodeStatus(a)).role, "primary");
    const b = await startEtcdNode("cut-b", etcd.endpoints, "/litefs/loss");
    nodes.push(b);
    await sqlite(a.dbPath(DB), "CREATE TABLE t(v);");
    await waitConverged(a, [b], DB);
    const aNodeId = BigInt("0x" + (await nodeStatus(a)).nodeId);

    const writes: { startedMs: number; ok: boolean; error?: string }[] = [];
    let writing = true;
    let i = 0;
    const writer = (async () => {
      while (writing) {
        const startedMs = performance.now();
        try {
          await sqlite(a.dbPath(DB), `INSERT INTO t VALUES (${i++});`);
          writes.push({ startedMs, ok: true });
        } catch (err) {
          writes.push({ startedMs, ok: false, error: (err as Error).message });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await waitFor("a few writes before the cut", () =>
      writes.filter((w) => w.ok).length >= 3 ? true : undefined,
    );
    const cutMs = performance.now();
    const cutWallMs = Date.now();
    proxy.blackhole();
    const next = await waitForPrimary([b], TTL_MS * 6);
    const takeoverMs = performance.now() - cutMs;
    await new Promise((resolve) => setTimeout(resolve, 300));
    writing = false;
    await writer;

    const late = writes.filter((w) => w.ok && w.startedMs > cutMs + TTL_MS);
    assert.deepEqual(late, [], "writes succeeded on the cut-off primary after cut + TTL");
    assert.ok(
      writes.some((w) => !w.ok && w.startedMs > cutMs),
      `no write failed after the cut: ${JSON.stringify(writes.slice(-5))}`,
    );
    const lastOk = Math.max(...writes.filter((w) => w.ok).map((w) => w.startedMs));
    for (const file of listLtxFiles(a.ltxDir(DB))) {
      const { header } = readLtxHeaderAndTrailer(file.path);
      if (header.nodeId !== aNodeId) continue;
      assert.ok(
        header.timestamp <= cutWallMs + TTL_MS,
        `LTX ${path.basename(file.path)} of the cut-off primary written ${header.timestamp - cutWallMs} ms after the cut`,
      );
    }
    // The old primary keeps running, as a replica.
    assert.ok(a.running);
    const aStatus = await nodeStatus(a);
    assert.equal(aStatus.role, "replica");
    assert.match(a.lastRunLogs(), /lease lost; turning replica/);
    // The new primary writes on top of what it had, under a newer epoch.
    await sqlite(next.dbPath(DB), ".timeout 5000\nINSERT INTO t VALUES (-1);");
    assert.ok(BigInt((await nodeStatus(b)).epoch) > BigInt(aStatus.epochSeen));
    console.log(
      `lease loss: last successful write ${Math.round(lastOk - cutMs)} ms after the cut; ` +
        `other node primary ${Math.round(takeoverMs)} ms after the cut`,
    );
  },
);
