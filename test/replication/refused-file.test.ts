// A replica that cannot apply one of the primary's LTX files — here a file damaged on the primary's
// disk while the replica was down — does not retry it forever: after the same file was refused twice
// it asks for a snapshot of that database (Litefs-Snapshot-Wanted), the primary sends one built from
// its database and says which of its files was refused, and the replica converges byte for byte.
// Before, the replica reconnected and was sent the same file again, never catching up.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { isDeepStrictEqual as isDeepEqual } from "node:util";

import Database from "better-sqlite3";

import type { RefusedFileStatus } from "../../src/api/replica-client.js";
import { assertSameDatabase, Cluster, logRecords, waitForRecords, waitForSync } from "./cluster.js";

const DB = "refused.db";

test("a replica refused the same LTX file twice: it asks for a snapshot and converges", async (t) => {
  const cluster = await Cluster.start({ replicas: 1 });
  t.after(() => cluster.cleanup());
  const { primary } = cluster;
  const [replica] = cluster.replicas;

  const writer = new Database(primary.dbPath(DB));
  t.after(() => writer.close());
  writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  const insert = writer.prepare("INSERT INTO t (v) VALUES (randomblob(3000))");
  for (let i = 0; i < 3; i++) insert.run();
  await waitForSync(primary, [replica], [DB]);

  await replica.stop();
  const before = new Set(fs.readdirSync(primary.ltxDir(DB)));
  for (let i = 0; i < 5; i++) insert.run();
  const missed = fs
    .readdirSync(primary.ltxDir(DB))
    .filter((name) => name.endsWith(".ltx") && !before.has(name))
    .sort();
  assert.equal(missed.length, 5, `one LTX file per transaction while the replica was down: ${missed}`);

  // Damage the middle of the third missed file's page data: its header and trailer still read, so the
  // primary streams it as it is, and the replica's decoding refuses it.
  const damaged = path.join(primary.ltxDir(DB), missed[2]);
  const bytes = fs.readFileSync(damaged);
  const at = Math.floor(bytes.length / 2);
  bytes[at] ^= 0xff;
  fs.writeFileSync(damaged, bytes);

  // `/status` polled meanwhile: each refusal is followed by a reconnect delay (100 then 200 ms ±20 %)
  // in which the replica's event loop answers it. Polled from before the restart (refused
  // connections until the API listens): the first refusal can come before `restart()` has seen the
  // mount ready line — a clean-clone CI run under load missed its ~100 ms that way.
  const seen: RefusedFileStatus[][] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const refused = await replicationStatus(replica.httpUrl).then(
        (r) => r.refused,
        () => undefined, // not listening yet
      );
      if (refused !== undefined) seen.push(refused);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  try {
    await replica.restart();
    await waitForSync(primary, [replica], [DB], 60_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${cluster.logs()}`);
  } finally {
    polling = false;
    await poller;
  }
  const [minTxid, maxTxid] = missed[2].replace(/\.ltx$/, "").split("-");

  // The replica refused that file (not another), twice, then asked for a snapshot of the database.
  const refusals = logRecords(replica, "replication stream ended with an error; reconnecting");
  assert.ok(refusals.length >= 1, "the replica refused nothing");
  assert.match(
    String(refusals[0].code),
    /^ELTX/,
    `refused for another reason: ${JSON.stringify(refusals[0])}`,
  );
  const [asked] = await waitForRecords(
    replica,
    "the primary's LTX file was refused again: asking for a snapshot of the database instead",
    1,
  );
  assert.deepEqual([asked.db, asked.minTxid, asked.maxTxid, asked.refusals], [DB, minTxid, maxTxid, 2]);

  // The primary named its file, and the replica applied a snapshot (the files before the damaged one
  // may have applied first: the catch-up streams them in order).
  const [named] = await waitForRecords(
    primary,
    "a replica refused one of this node's LTX files twice: sending a snapshot instead",
    1,
  );
  assert.equal(named.file, damaged);
  const [snapshot] = await waitForRecords(replica, "snapshot applied", 1);
  assert.equal(snapshot.reason, "files-unavailable");

  // `/status` showed the refused file and the snapshot request while they lasted, and not after.
  // Every answer that listed a refusal named that file, with a count of 1 (no snapshot asked for yet)
  // or 2 (asked). The first state lasts only the ~100 ms reconnect delay, which a poll can miss on a
  // loaded machine (two clean-clone CI runs did: every answer had 0 or 2), so it is not required.
  const refused = { db: DB, minTxid, maxTxid };
  const states = [
    { ...refused, refusals: 1, snapshotWanted: false },
    { ...refused, refusals: 2, snapshotWanted: true },
  ];
  for (const answer of seen) {
    assert.ok(
      answer.every((f) => states.some((state) => isDeepEqual(f, state))),
      `a /status answer listed another refusal: ${JSON.stringify(answer)}`,
    );
  }
  assert.ok(
    seen.some((r) => r.some((f) => isDeepEqual(f, { ...refused, refusals: 2, snapshotWanted: true }))),
    `no /status showed the snapshot request: ${JSON.stringify(seen)}`,
  );
  assert.deepEqual(
    (await replicationStatus(replica.httpUrl)).refused,
    [],
    "cleared once the snapshot applied",
  );

  // Later transactions stream as files again, and the two databases are the same.
  insert.run();
  await waitForSync(primary, [replica], [DB]);
  assert.equal(logRecords(replica, "snapshot applied").length, 1, "a second snapshot was sent");
  writer.pragma("wal_checkpoint(TRUNCATE)");
  assertSameDatabase(primary, replica, DB, "after the snapshot");
  const rows = new Database(replica.dbPath(DB), { readonly: true });
  try {
    assert.equal((rows.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 9);
  } finally {
    rows.close();
  }
});

async function replicationStatus(url: string): Promise<{ refused: RefusedFileStatus[] }> {
  const res = await fetch(`${url}/status`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { replication: { refused: RefusedFileStatus[] } };
  return body.replication;
}
