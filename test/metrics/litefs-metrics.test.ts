// The LiteFS metric set: LiteFS's names and types where LiteFS has them (golden blocks of the
// exposition), what each typed method moves, and that the proxy's metrics seam accepts `proxy`.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { LitefsMetrics, Registry } from "../../src/metrics/index.js";
import type { ProxyMetrics } from "../../src/proxy/index.js";

/** The HELP, TYPE and sample lines of one metric in an exposition, or "" when it is absent. */
function block(exposition: string, name: string): string {
  const lines = exposition.split("\n");
  const start = lines.indexOf(lines.find((l) => l.startsWith(`# HELP ${name} `)) ?? "\0");
  if (start < 0) return "";
  let end = start + 2;
  while (end < lines.length && lines[end] !== "" && !lines[end].startsWith("# HELP ")) end++;
  return lines.slice(start, end).join("\n");
}

function typeOf(exposition: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, "m").exec(exposition)?.[1];
}

describe("LiteFS metric set", () => {
  test("LiteFS's metric names with LiteFS's types", () => {
    const m = new LitefsMetrics(new Registry());
    for (const db of ["a.db"]) {
      m.databaseWrite(db);
      m.journalWrite(db);
      m.walWrite(db);
      m.commit(db, 100, 1);
      m.setTxid(db, 1n);
    }
    const text = m.registry.exposition();
    const want: Record<string, string> = {
      litefs_db_count: "gauge",
      litefs_is_primary: "gauge",
      litefs_subscriber_count: "gauge",
      litefs_lag_seconds: "gauge",
      litefs_db_txid: "gauge",
      litefs_db_database_write_count: "counter",
      litefs_db_journal_write_count: "counter",
      litefs_db_wal_write_count: "counter",
      litefs_db_commit_count: "counter",
      litefs_db_ltx_count: "gauge",
      litefs_db_ltx_bytes: "gauge",
      litefs_db_lag_seconds: "gauge",
    };
    for (const [name, type] of Object.entries(want)) assert.equal(typeOf(text, name), type, name);
  });

  test("a primary's commits and writes (golden blocks)", () => {
    const m = new LitefsMetrics(new Registry(), { commitBuckets: [0.001, 0.01] });
    m.setPrimary(true);
    m.setDatabaseCount(2);
    m.setLtxFiles("app.db", 3, 12288);
    for (let i = 0; i < 3; i++) m.databaseWrite("app.db");
    m.walWrite("other.db");
    m.commit("app.db", 4096, 0.5);
    m.commit("app.db", 8192, 20);
    m.setTxid("app.db", 0x27n);
    const text = m.registry.exposition();

    assert.equal(
      block(text, "litefs_is_primary"),
      "# HELP litefs_is_primary 1 while this node is the primary, else 0.\n# TYPE litefs_is_primary gauge\nlitefs_is_primary 1",
    );
    assert.equal(block(text, "litefs_db_count").split("\n")[2], "litefs_db_count 2");
    assert.equal(block(text, "litefs_lag_seconds").split("\n")[2], "litefs_lag_seconds 0");
    assert.equal(
      block(text, "litefs_db_database_write_count"),
      [
        "# HELP litefs_db_database_write_count Writes to the database file through the mount.",
        "# TYPE litefs_db_database_write_count counter",
        'litefs_db_database_write_count{db="app.db"} 3',
        // A database touched by any method has all its per-db series, at 0 where nothing happened.
        'litefs_db_database_write_count{db="other.db"} 0',
      ].join("\n"),
    );
    assert.equal(
      block(text, "litefs_db_wal_write_count").split("\n").slice(2).join("\n"),
      'litefs_db_wal_write_count{db="app.db"} 0\nlitefs_db_wal_write_count{db="other.db"} 1',
    );
    assert.equal(
      block(text, "litefs_db_commit_count").split("\n")[2],
      'litefs_db_commit_count{db="app.db"} 2',
    );
    // Counted files plus those written since: 3 + 2 files, 12288 + 4096 + 8192 bytes.
    assert.equal(block(text, "litefs_db_ltx_count").split("\n")[2], 'litefs_db_ltx_count{db="app.db"} 5');
    assert.equal(block(text, "litefs_db_ltx_bytes").split("\n")[2], 'litefs_db_ltx_bytes{db="app.db"} 24576');
    assert.equal(block(text, "litefs_db_txid").split("\n")[2], 'litefs_db_txid{db="app.db"} 39');
    assert.equal(
      block(text, "litefs_db_commit_duration_seconds"),
      [
        "# HELP litefs_db_commit_duration_seconds Seconds from detecting a commit to its LTX file being durable.",
        "# TYPE litefs_db_commit_duration_seconds histogram",
        'litefs_db_commit_duration_seconds_bucket{db="app.db",le="0.001"} 1',
        'litefs_db_commit_duration_seconds_bucket{db="app.db",le="0.01"} 1',
        'litefs_db_commit_duration_seconds_bucket{db="app.db",le="+Inf"} 2',
        'litefs_db_commit_duration_seconds_sum{db="app.db"} 0.0205',
        'litefs_db_commit_duration_seconds_count{db="app.db"} 2',
        'litefs_db_commit_duration_seconds_bucket{db="other.db",le="0.001"} 0',
        'litefs_db_commit_duration_seconds_bucket{db="other.db",le="0.01"} 0',
        'litefs_db_commit_duration_seconds_bucket{db="other.db",le="+Inf"} 0',
        'litefs_db_commit_duration_seconds_sum{db="other.db"} 0',
        'litefs_db_commit_duration_seconds_count{db="other.db"} 0',
      ].join("\n"),
    );
  });

  test("a replica: applied LTX files, lag read at scrape time, stream and quarantine", () => {
    const m = new LitefsMetrics(new Registry());
    let lag = 0.25;
    m.setLagSource(() => lag);
    m.ltxApplied("app.db", 4096, 1500);
    m.ltxApplied("app.db", 4096, -3); // clock skew: never a negative lag
    m.stream.setPrimaryConnected(true);
    m.stream.frameReceived("ltx-begin", 64);
    m.stream.frameReceived("heartbeat", 16);
    m.stream.frameReceived("heartbeat", 16);
    m.stream.snapshotReceived("app.db");
    m.stream.error("ESTREAMCHECKSUM");
    m.stream.reconnect();
    m.quarantined("app.db", 7);
    let text = m.registry.exposition();
    assert.match(text, /^litefs_lag_seconds 0\.25$/m);
    assert.match(text, /^litefs_db_ltx_applied_total\{db="app\.db"\} 2$/m);
    assert.match(text, /^litefs_db_lag_seconds\{db="app\.db"\} 0$/m);
    assert.match(text, /^litefs_stream_primary_connected 1$/m);
    assert.equal(
      block(text, "litefs_stream_frames_received_total").split("\n").slice(1).join("\n"),
      '# TYPE litefs_stream_frames_received_total counter\nlitefs_stream_frames_received_total{type="heartbeat"} 2\nlitefs_stream_frames_received_total{type="ltx-begin"} 1',
    );
    assert.match(text, /^litefs_stream_received_bytes_total 96$/m);
    assert.match(text, /^litefs_stream_snapshots_received_total\{db="app\.db"\} 1$/m);
    assert.match(text, /^litefs_stream_errors_total\{code="ESTREAMCHECKSUM"\} 1$/m);
    assert.match(text, /^litefs_stream_reconnects_total 1$/m);
    assert.match(text, /^litefs_db_quarantines_total\{db="app\.db"\} 1$/m);
    assert.match(text, /^litefs_db_quarantined_transactions_total\{db="app\.db"\} 7$/m);
    lag = 4;
    m.ltxApplied("app.db", 1, 1500);
    text = m.registry.exposition();
    assert.match(text, /^litefs_lag_seconds 4$/m);
    assert.match(text, /^litefs_db_lag_seconds\{db="app\.db"\} 1\.5$/m);
  });

  test("a primary's stream: subscribers come and go, frames and snapshots sent", () => {
    const m = new LitefsMetrics(new Registry());
    m.stream.replicaConnected();
    m.stream.replicaConnected();
    m.stream.replicaDisconnected();
    m.stream.frameSent("ltx-begin", 100);
    m.stream.frameSent("ltx-data", 4000);
    m.stream.snapshotSent("app.db");
    const text = m.registry.exposition();
    assert.match(text, /^litefs_subscriber_count 1$/m);
    assert.match(text, /^litefs_stream_replica_connections_total 2$/m);
    assert.match(text, /^litefs_stream_sent_bytes_total 4100$/m);
    assert.match(text, /^litefs_stream_frames_sent_total\{type="ltx-data"\} 1$/m);
    assert.match(text, /^litefs_stream_snapshots_sent_total\{db="app\.db"\} 1$/m);
  });

  test("lease metrics", () => {
    const m = new LitefsMetrics(new Registry());
    m.lease.acquired(41n);
    m.lease.renewFailed();
    m.lease.renewFailed();
    m.lease.lost();
    m.lease.setEpoch(42n);
    m.lease.paced(0.012, 0);
    m.lease.paced(0.3, 5);
    const text = m.registry.exposition();
    assert.match(text, /^litefs_handoff_pace_seconds_count 2$/m);
    assert.match(text, /^litefs_handoff_pace_seconds_bucket\{le="0\.025"\} 1$/m);
    assert.match(text, /^litefs_handoff_pace_seconds_bucket\{le="0\.5"\} 2$/m);
    assert.match(text, /^litefs_handoff_paced_commits_total 5$/m);
    assert.match(text, /^litefs_lease_acquired_total 1$/m);
    assert.match(text, /^litefs_lease_renew_failures_total 2$/m);
    assert.match(text, /^litefs_lease_lost_total 1$/m);
    assert.match(text, /^litefs_lease_epoch 42$/m);
  });

  test("`proxy` is the proxy's metrics seam", () => {
    const m = new LitefsMetrics(new Registry());
    const seam: ProxyMetrics = m.proxy; // compile-time check of the shapes
    seam.countRequest("read");
    seam.countRequest("forwarded");
    seam.countRequest("forwarded");
    seam.countTxidWait("reached", 250);
    seam.countTxidWait("timed-out", 5000);
    seam.countError("EPROXYTXIDTIMEOUT");
    const text = m.registry.exposition();
    assert.equal(
      block(text, "litefs_proxy_requests_total").split("\n").slice(2).join("\n"),
      'litefs_proxy_requests_total{kind="forwarded"} 2\nlitefs_proxy_requests_total{kind="read"} 1',
    );
    assert.match(text, /^litefs_proxy_txid_waits_total\{outcome="reached"\} 1$/m);
    assert.match(text, /^litefs_proxy_txid_waits_total\{outcome="timed-out"\} 1$/m);
    assert.match(text, /^litefs_proxy_txid_wait_seconds_total 5\.25$/m);
    assert.match(text, /^litefs_proxy_errors_total\{code="EPROXYTXIDTIMEOUT"\} 1$/m);
  });

  test("dropDatabase forgets every series of that database only", () => {
    const m = new LitefsMetrics(new Registry());
    m.commit("gone.db", 1, 1);
    m.quarantined("gone.db", 1);
    m.stream.snapshotSent("gone.db");
    m.commit("kept.db", 1, 1);
    m.dropDatabase("gone.db");
    const text = m.registry.exposition();
    assert.doesNotMatch(text, /gone\.db/);
    assert.match(text, /^litefs_db_commit_count\{db="kept\.db"\} 1$/m);
    m.databaseWrite("gone.db"); // a database that comes back starts from zero
    assert.match(m.registry.exposition(), /^litefs_db_commit_count\{db="gone\.db"\} 0$/m);
  });

  test("two nodes in one process keep separate registries", () => {
    const a = new LitefsMetrics(new Registry());
    const b = new LitefsMetrics(new Registry());
    a.setPrimary(true);
    assert.match(a.registry.exposition(), /^litefs_is_primary 1$/m);
    assert.match(b.registry.exposition(), /^litefs_is_primary 0$/m);
  });
});
