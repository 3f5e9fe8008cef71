// The pure parts of the node's lease wiring: when a replica tries to take the lease or asks for a
// handoff (src/node/role-decisions.ts), and the epoch records (src/store/epoch-history.ts).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import {
  EpochHistoryFile,
  epochOfTxid,
  parseEpochHistory,
  readHighestEpoch,
  writeHighestEpochAsync,
} from "../../src/store/epoch-history.js";
import type { PrimaryInfo } from "../../src/lease/index.js";
import {
  acquireJitterMs,
  ACQUIRE_JITTER_MAX_MS,
  holderIsSelf,
  shouldRequestHandoff,
  shouldTryAcquire,
  type AcquireContext,
} from "../../src/node/role-decisions.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

const other: PrimaryInfo = {
  hostname: "b",
  advertiseURL: "http://b:1",
  nodeId: "00000000000000bb",
  epoch: 7n,
};
const base: AcquireContext = {
  candidate: true,
  role: "replica",
  holder: null,
  selfNodeId: "00000000000000aa",
  nowMs: 10_000,
  quietUntilMs: 0,
  handoffToMe: false,
  lastAttemptMs: 9_900,
  periodicMs: 1000,
};

test("shouldTryAcquire: candidates acquire a free lease, not during the quiet time, at once on a handoff", () => {
  assert.equal(shouldTryAcquire(base), true);
  assert.equal(shouldTryAcquire({ ...base, holder: undefined }), true);
  assert.equal(shouldTryAcquire({ ...base, candidate: false }), false);
  assert.equal(shouldTryAcquire({ ...base, role: "primary" }), false);
  assert.equal(shouldTryAcquire({ ...base, quietUntilMs: 10_001 }), false);
  assert.equal(shouldTryAcquire({ ...base, quietUntilMs: 10_001, handoffToMe: true }), true);
  assert.equal(shouldTryAcquire({ ...base, holder: other }), false);
  assert.equal(shouldTryAcquire({ ...base, holder: other, lastAttemptMs: 9_000 }), true, "periodic retry");
  assert.equal(shouldTryAcquire({ ...base, holder: other, handoffToMe: true }), true);
  assert.equal(shouldTryAcquire({ ...base, candidate: false, handoffToMe: true }), false);
});

test("shouldRequestHandoff: lease.promote asks once per primary epoch, only when synced", () => {
  const ctx = {
    promote: true,
    candidate: true,
    role: "replica" as const,
    synced: true,
    holder: other,
    selfNodeId: "00000000000000aa",
    askedEpoch: 0n,
  };
  assert.equal(shouldRequestHandoff(ctx), true);
  assert.equal(shouldRequestHandoff({ ...ctx, askedEpoch: 7n }), false);
  assert.equal(shouldRequestHandoff({ ...ctx, synced: false }), false);
  assert.equal(shouldRequestHandoff({ ...ctx, promote: false }), false);
  assert.equal(shouldRequestHandoff({ ...ctx, holder: null }), false);
  assert.equal(shouldRequestHandoff({ ...ctx, holder: { ...other, nodeId: "00000000000000aa" } }), false);
});

test("holderIsSelf compares node ids; a static holder (no node id) is never this node", () => {
  assert.equal(holderIsSelf(other, { nodeId: "00000000000000bb" }), true);
  assert.equal(holderIsSelf(other, { nodeId: "00000000000000aa" }), false);
  assert.equal(holderIsSelf({ ...other, nodeId: undefined }, { nodeId: "00000000000000bb" }), false);
});

test("acquireJitterMs stays in [0, max)", () => {
  assert.equal(acquireJitterMs(0), 0);
  assert.ok(acquireJitterMs(0.9999999) < ACQUIRE_JITTER_MAX_MS);
  assert.ok(acquireJitterMs(1) < ACQUIRE_JITTER_MAX_MS);
});

test("epochOfTxid replays the history: a later line cuts what earlier ones said from its TXID on", () => {
  const history = parseEpochHistory("3 0000000000000001\n5 000000000000000a\n9 0000000000000006\n", "t");
  assert.equal(epochOfTxid(history, 0n), null);
  assert.equal(epochOfTxid(history, 1n), 3n);
  assert.equal(epochOfTxid(history, 5n), 3n);
  assert.equal(epochOfTxid(history, 6n), 9n, "the snapshot from epoch 9 replaced TXIDs 6…");
  assert.equal(epochOfTxid(history, 12n), 9n);
  assert.throws(() => parseEpochHistory("5 0000000000000001\n3 0000000000000002\n", "t"), /epoch 3 after 5/);
  assert.throws(() => parseEpochHistory("x\n5 0000000000000001\n", "t"), /EDBFILE|not/);
  // A torn last line (crash during an append) is ignored.
  assert.deepEqual(parseEpochHistory("5 0000000000000001\n7 00000", "t"), [{ epoch: 5n, firstTxid: 1n }]);
});

test("EpochHistoryFile appends once per new epoch and reads back; the highest epoch file round-trips", async (t) => {
  const dir = makeTempDir("epochs");
  t.after(() => removeTempDir(dir));
  const file = new EpochHistoryFile(dir);
  assert.equal(file.lastEpoch, 0n);
  assert.equal(await file.record(4n, 1n), true);
  assert.equal(await file.record(4n, 2n), false);
  assert.equal(await file.record(6n, 3n), true);
  await assert.rejects(() => file.record(5n, 4n), RangeError);
  assert.equal(fs.readFileSync(path.join(dir, "epochs"), "utf8"), "4 0000000000000001\n6 0000000000000003\n");
  assert.deepEqual(new EpochHistoryFile(dir).history, file.history);

  assert.equal(readHighestEpoch(dir), 0n);
  await writeHighestEpochAsync(dir, 42n);
  assert.equal(readHighestEpoch(dir), 42n);
  fs.writeFileSync(path.join(dir, "epoch"), "forty-two\n");
  assert.throws(() => readHighestEpoch(dir), /not a decimal epoch/);
});
