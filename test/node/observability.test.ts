// A real `litefs mount` process: `GET /metrics` exposes LiteFS's metric names and moves with each
// transaction the sqlite3 shell commits through the mount (TXID, commit count, write counts per file
// kind, LTX files and bytes); `GET /events` streams `init`, then one `tx` event per transaction, in
// order, with the positions `-pos` shows; stopping the node ends an open `/events` response cleanly;
// and the node logs JSON lines when `log.format` is json.

import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";

import { httpRequest } from "../proxy/proxy-test-kit.js";
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
