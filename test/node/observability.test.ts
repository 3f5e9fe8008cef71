// A real `litefs mount` process: `GET /metrics` exposes LiteFS's metric names and moves with each
// transaction the sqlite3 shell commits through the mount (TXID, commit count, write counts per file
// kind, LTX files and bytes); `GET /events` streams `init`, then one `tx` event per transaction, in
// order, with the positions `-pos` shows; stopping the node ends an open `/events` response cleanly;
// and the node logs JSON lines when `log.format` is json. With a replica: the stream metrics count
// the frames and bytes the primary sent and the replica received, and the two ends agree.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { httpRequest } from "../proxy/proxy-test-kit.js";
import { Cluster, waitForSync } from "../replication/cluster.js";
import { LitefsNode } from "../support/litefs-node.js";
import { EventsReader, sample, scrape, sqlite } from "./node-kit.js";

const DB = "app.db";
const series = (name: string): string => `${name}{db="${DB}"}`;

describe("a running node's /metrics and /events", () => {
  let node: LitefsNode;
  before(async () => {
    node = await LitefsNode.start();
  });
  after(async () => {
    await node.cleanup();
  });

  test("/metrics has LiteFS's names and they move after each commit through the mount", async () => {
    const empty = await scrape(node.httpUrl);
    assert.equal(sample(empty, "litefs_is_primary"), 1);
    assert.equal(sample(empty, "litefs_lag_seconds"), 0);
    assert.equal(sample(empty, "litefs_subscriber_count"), 0);
    assert.equal(sample(empty, "litefs_db_count"), 0);

    await sqlite(node.dbPath(DB), "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('one');");
    const first = await scrape(node.httpUrl);
    const pos1 = node.readPos(DB);
    assert.equal(sample(first, "litefs_db_count"), 1);
    assert.equal(BigInt(sample(first, series("litefs_db_txid"))), pos1.txid);
    assert.equal(sample(first, series("litefs_db_commit_count")), Number(pos1.txid));
    assert.equal(sample(first, series("litefs_db_ltx_count")), fs.readdirSync(node.ltxDir(DB)).length);
    const ltxBytes = fs
      .readdirSync(node.ltxDir(DB))
      .reduce((sum, name) => sum + fs.statSync(`${node.ltxDir(DB)}/${name}`).size, 0);
    assert.equal(sample(first, series("litefs_db_ltx_bytes")), ltxBytes);
    assert.ok(sample(first, series("litefs_db_database_write_count")) > 0);
    assert.ok(sample(first, series("litefs_db_journal_write_count")) > 0);
    assert.equal(sample(first, series("litefs_db_wal_write_count")), 0);
    assert.equal(sample(first, series("litefs_db_commit_duration_seconds_count")), Number(pos1.txid));

    await sqlite(node.dbPath(DB), "INSERT INTO t VALUES ('two');");
    const second = await scrape(node.httpUrl);
    assert.equal(BigInt(sample(second, series("litefs_db_txid"))), pos1.txid + 1n);
    assert.equal(node.readPos(DB).txid, pos1.txid + 1n);
    assert.equal(
      sample(second, series("litefs_db_commit_count")),
      sample(first, series("litefs_db_commit_count")) + 1,
    );
    assert.equal(
      sample(second, series("litefs_db_ltx_count")),
      sample(first, series("litefs_db_ltx_count")) + 1,
    );
    assert.ok(sample(second, series("litefs_db_ltx_bytes")) > sample(first, series("litefs_db_ltx_bytes")));
    assert.ok(
      sample(second, series("litefs_db_journal_write_count")) >
        sample(first, series("litefs_db_journal_write_count")),
    );

    // WAL mode: writes to the WAL are counted under their own name.
    await sqlite(node.dbPath(DB), "PRAGMA journal_mode=wal; INSERT INTO t VALUES ('three');");
    const wal = await scrape(node.httpUrl);
    assert.ok(sample(wal, series("litefs_db_wal_write_count")) > 0);
    assert.equal(BigInt(sample(wal, series("litefs_db_txid"))), node.readPos(DB).txid);

    const head = await httpRequest(`${node.httpUrl}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
  });

  test("/events streams init, then one tx event per transaction the sqlite3 shell commits", async () => {
    const reader = await EventsReader.open(node.httpUrl);
    try {
      assert.equal(reader.status, 200);
      const [init] = await reader.waitForCount(1);
      assert.deepEqual(init, { type: "init", data: { isPrimary: true, hostname: "test-primary" } });

      const before = node.readPos(DB).txid;
      for (const word of ["four", "five", "six"]) {
        await sqlite(node.dbPath(DB), `INSERT INTO t VALUES ('${word}');`);
      }
      const events = await reader.waitForCount(4);
      const txs = events.slice(1);
      assert.equal(txs.length, 3, JSON.stringify(events));
      txs.forEach((event, i) => {
        assert.equal(event.type, "tx");
        assert.equal(event.db, DB);
        const data = event.data as Record<string, unknown>;
        assert.equal(BigInt("0x" + String(data.txID)), before + BigInt(i + 1));
        assert.equal(data.pageSize, 4096);
        assert.ok(typeof data.commit === "number" && data.commit > 0);
        assert.match(String(data.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
        assert.match(String(data.postApplyChecksum), /^[0-9a-f]{16}$/);
      });
      const pos = node.readPos(DB);
      const last = txs[2].data as Record<string, unknown>;
      assert.equal(BigInt("0x" + String(last.txID)), pos.txid);
      assert.equal(last.postApplyChecksum, pos.checksum);
    } finally {
      reader.close();
    }
  });

  test("the node logs one JSON object per line with level and msg (log.format: json)", () => {
    const lines = node
      .lastRunLogs()
      .split("\n")
      .filter((line) => line.startsWith("{"));
    assert.ok(lines.length > 3, node.lastRunLogs());
    for (const line of lines) {
      const record = JSON.parse(line) as Record<string, unknown>;
      assert.equal(typeof record.level, "string", line);
      assert.equal(typeof record.msg, "string", line);
    }
    assert.ok(lines.some((line) => (JSON.parse(line) as { msg: string }).msg === "mount ready"));
  });

  test("stopping the node ends an open /events response cleanly", async () => {
    const reader = await EventsReader.open(node.httpUrl);
    await reader.waitForCount(1);
    const status = await node.stop();
    assert.equal(status.code, 0, node.lastRunLogs());
    assert.equal(await reader.ended, "end");
  });
});

test("the LTX gauges follow retention: the files it removed leave the count and the bytes", async (t) => {
  const node = await LitefsNode.start({
    retention: "1s",
    config: { data: { "retention-monitor-interval": "200ms" } },
  });
  t.after(() => node.cleanup());
  await sqlite(node.dbPath(DB), "CREATE TABLE t (x TEXT);");
  for (let i = 0; i < 5; i++) await sqlite(node.dbPath(DB), `INSERT INTO t VALUES ('${i}');`);
  const before = await scrape(node.httpUrl);
  assert.equal(sample(before, series("litefs_db_ltx_count")), 6);
  // Retention removes every file but the newest once they are older than 1 s.
  const deadline = Date.now() + 10_000;
  while (fs.readdirSync(node.ltxDir(DB)).length > 1) {
    assert.ok(Date.now() < deadline, "retention did not remove the old files");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const [newest] = fs.readdirSync(node.ltxDir(DB));
  const after = await scrape(node.httpUrl);
  assert.equal(sample(after, series("litefs_db_ltx_count")), 1);
  assert.equal(
    sample(after, series("litefs_db_ltx_bytes")),
    fs.statSync(`${node.ltxDir(DB)}/${newest}`).size,
  );
});

test("a replica that joins late counts the snapshot it received once, not the files it replaced", async (t) => {
  const cluster = await Cluster.start({ replicas: 0 });
  t.after(() => cluster.cleanup());
  const { primary } = cluster;
  await sqlite(primary.dbPath(DB), "CREATE TABLE t (x TEXT);");
  for (let i = 0; i < 4; i++) await sqlite(primary.dbPath(DB), `INSERT INTO t VALUES ('${i}');`);
  const replica = await cluster.addReplica();
  await waitForSync(primary, [replica], [DB]);
  const onDisk = (): { count: number; bytes: number } => {
    const names = fs.readdirSync(replica.ltxDir(DB)).filter((n) => n.endsWith(".ltx"));
    return {
      count: names.length,
      bytes: names.reduce((sum, n) => sum + fs.statSync(path.join(replica.ltxDir(DB), n)).size, 0),
    };
  };
  assert.equal(onDisk().count, 1, "the catch-up was one snapshot file");
  let metrics = await scrape(replica.httpUrl);
  assert.equal(sample(metrics, series("litefs_db_ltx_count")), 1);
  assert.equal(sample(metrics, series("litefs_db_ltx_bytes")), onDisk().bytes);
  // Later transactions arrive as files and add to it.
  await sqlite(primary.dbPath(DB), "INSERT INTO t VALUES ('after');");
  await waitForSync(primary, [replica], [DB]);
  metrics = await scrape(replica.httpUrl);
  assert.equal(sample(metrics, series("litefs_db_ltx_count")), onDisk().count);
  assert.equal(sample(metrics, series("litefs_db_ltx_bytes")), onDisk().bytes);
});

describe("stream metrics of a primary and its replica", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start({ replicas: 1 });
  });
  after(async () => {
    await cluster?.cleanup();
  });

  const sent = (type: string): string => `litefs_stream_frames_sent_total{type="${type}"}`;
  const received = (type: string): string => `litefs_stream_frames_received_total{type="${type}"}`;

  test("frames and bytes sent by the primary are those the replica received", async () => {
    const { primary } = cluster;
    const replica = cluster.replicas[0];
    await sqlite(primary.dbPath(DB), "CREATE TABLE t (x TEXT);");
    // Random bytes: LTX files are compressed, and these must not shrink below 2000 bytes a row.
    for (let i = 0; i < 5; i++) await sqlite(primary.dbPath(DB), "INSERT INTO t VALUES (randomblob(2000));");
    await waitForSync(primary, [replica], [DB]);
    const txid = Number(primary.readPos(DB).txid);

    // Heartbeats keep flowing (one a second): read both ends until no frame is in flight between the
    // two scrapes, i.e. the replica has received exactly what the primary has sent.
    let last = "";
    const deadline = Date.now() + 15_000;
    for (;;) {
      const p = await scrape(primary.httpUrl);
      const r = await scrape(replica.httpUrl);
      const p2 = await scrape(primary.httpUrl);
      const sentBytes = sample(p, "litefs_stream_sent_bytes_total");
      const receivedBytes = sample(r, "litefs_stream_received_bytes_total");
      last = `sent ${sentBytes} B, received ${receivedBytes} B`;
      if (sentBytes === receivedBytes && sample(p2, "litefs_stream_sent_bytes_total") === sentBytes) {
        assert.ok(sentBytes > 5 * 2000, last);
        for (const type of ["epoch", "ready", "ltx-begin", "ltx-chunk", "ltx-end", "heartbeat"]) {
          assert.equal(sample(r, received(type), 0), sample(p, sent(type), 0), `${type} frames: ${last}`);
        }
        assert.equal(sample(p, sent("epoch")), 1);
        assert.equal(sample(p, sent("ready")), 1);
        // One LTX file per transaction, each opened and closed (the replica started before the first).
        assert.equal(sample(p, sent("ltx-begin")), txid);
        assert.equal(sample(p, sent("ltx-end")), txid);
        assert.ok(sample(p, sent("ltx-chunk")) >= txid);
        // The primary's own per-stream byte count (`/status`) agrees with the metric: one stream so far.
        const status = (await (await fetch(`${primary.httpUrl}/status`)).json()) as {
          replicas: { bytesSent: number }[];
        };
        assert.equal(status.replicas.length, 1);
        assert.ok(
          Math.abs(status.replicas[0].bytesSent - sentBytes) < 200,
          `${last}; /status ${status.replicas[0].bytesSent}`,
        );
        assert.equal(sample(r, "litefs_stream_primary_connected"), 1);
        assert.equal(sample(p, "litefs_subscriber_count"), 1);
        assert.equal(sample(p, "litefs_stream_errors_total", 0), 0);
        return;
      }
      assert.ok(Date.now() < deadline, `the two ends never agreed: ${last}`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  });
});
