// A replica attributes each transaction to the epoch it was written under, also those a catch-up from a
// new primary brings (written under the dead primary's epoch): the new primary sends its epoch history
// with the stream (Litefs-Epochs). Before, a lagging replica that caught up from the new primary
// labelled the whole catch-up with the new epoch, so its replication position outranked a candidate
// holding more of the same history (chaos: n2 waited for n3 at "1211/…93d" while holding
// "1069/…954"), and a failover then quarantined what the better candidate had.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import {
  decodeEpochsHeader,
  encodeEpochsHeader,
  EPOCHS_HEADER_MAX_CHARS,
} from "../../src/api/stream-request.js";
import {
  epochHistoryFrom,
  epochOfTxid,
  epochRuns,
  parseEpochHistory,
  type EpochChange,
} from "../../src/store/epoch-history.js";
import { LeasedCluster } from "../support/leased-cluster.js";
import { failOverWithLaggingReplica, writeOn } from "./lagging-failover.js";

const DB = "attribution.db";

const lines = (...pairs: [number, number][]): EpochChange[] =>
  pairs.map(([epoch, txid]) => ({ epoch: BigInt(epoch), firstTxid: BigInt(txid) }));

test("epochHistoryFrom, epochRuns and the header: the primary's lines decide a catch-up's epochs", () => {
  // The primary's history: 3 from 1, 7 from 0x10 (a line from 0x18 cut by the later 9 from 0x14), 9 from 0x14.
  const history = lines([3, 1], [7, 0x10], [8, 0x18], [9, 0x14]);
  assert.deepEqual(epochHistoryFrom(history, 0x12n), lines([7, 0x10], [9, 0x14]));
  assert.deepEqual(epochHistoryFrom(history, 1n), lines([3, 1], [7, 0x10], [9, 0x14]));
  // A replica at 0x0b catching up to 0x16 under stream epoch 9.
  assert.deepEqual(
    epochRuns(epochHistoryFrom(history, 0xcn), 0xcn, 0x16n, 9n),
    lines([3, 0xc], [7, 0x10], [9, 0x14]),
  );
  // One live transaction: the stream's epoch.
  assert.deepEqual(epochRuns(epochHistoryFrom(history, 0x17n), 0x17n, 0x17n, 9n), lines([9, 0x17]));
  // No line (a database created under this epoch), or a line above the stream's epoch: the stream's.
  assert.deepEqual(epochRuns([], 1n, 5n, 9n), lines([9, 1]));
  assert.deepEqual(epochRuns(lines([12, 1]), 1n, 5n, 9n), lines([9, 1]));
  const header = encodeEpochsHeader(new Map([["a b.db", lines([7, 0x10], [9, 0x14])]]));
  assert.match(header, /^[\x21-\x7e]+$/, "a plain header value");
  assert.deepEqual(decodeEpochsHeader(header), new Map([["a b.db", lines([7, 0x10], [9, 0x14])]]));
  assert.equal(decodeEpochsHeader(undefined), undefined);
  // Many databases: the header stays bounded; those left out fall back to the stream's epoch.
  const many = new Map(Array.from({ length: 2000 }, (_, i) => [`db-${i}.db`, lines([7, 0x10], [9, 0x14])]));
  const bounded = encodeEpochsHeader(many);
  assert.ok(bounded.length <= EPOCHS_HEADER_MAX_CHARS, `header of ${bounded.length} characters`);
  const kept = decodeEpochsHeader(bounded)!;
  assert.ok(kept.size > 10 && kept.size < 2000, `${kept.size} databases kept`);
  assert.deepEqual(kept.get("db-0.db"), lines([7, 0x10], [9, 0x14]));
  assert.equal(decodeEpochsHeader("%7B%22a%22%3A5%7D"), undefined);
});

test(
  "a lagging replica that catches up from the new primary keeps the old epoch for the old transactions",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s" });
    t.after(() => cluster.cleanup());
    const { fresh, lagging, next, lastOldTxid: lastOld } = await failOverWithLaggingReplica(cluster, t, DB);
    if (next !== fresh) {
      t.skip(`${lagging.name} caught up from the dead primary's socket first and won: nothing to check`);
      return;
    }
    await writeOn(next, DB, ["INSERT INTO t (v) VALUES ('under the new epoch')"]);
    const live = lastOld + 1n;
    await cluster.waitConverged([DB]);
    const history = (node: typeof fresh): EpochChange[] => {
      const file = path.join(node.node.storeDir(DB), "epochs");
      return parseEpochHistory(fs.readFileSync(file, "utf8"), file);
    };
    const oldEpoch = epochOfTxid(history(fresh), lastOld);
    const newEpoch = epochOfTxid(history(fresh), live);
    assert.ok(oldEpoch !== null && newEpoch !== null && newEpoch > oldEpoch);
    const mine = history(lagging);
    const detail = `${lagging.name} epochs ${JSON.stringify(mine, (_, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v))}`;
    assert.equal(epochOfTxid(mine, lastOld), oldEpoch, `the catch-up kept the old epoch: ${detail}`);
    assert.equal(epochOfTxid(mine, live), newEpoch, `the new primary's transaction: ${detail}`);
  },
);
