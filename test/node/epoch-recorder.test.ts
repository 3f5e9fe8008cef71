// A primary starting under a new epoch (src/node/epoch-recorder.ts `primaryStarted`): every
// database's `epochs` file given a line from its next TXID — their fsyncs on the thread pool,
// overlapping — as `record` appends them (at once, in order); those lines are the epoch's durable
// record (the node's epoch file is written only when there is no database), and a restarted node
// reads its highest epoch back from the file and the lines together. A replica's raise of the epoch
// file (`raise`): off the event loop, one at a time, `highest` following what is on disk.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test, type TestContext } from "node:test";

import { EpochRecorder } from "../../src/node/epoch-recorder.js";
import { EpochHistoryFile, readHighestEpoch } from "../../src/store/epoch-history.js";
import { SILENT_LOGGER } from "../../src/store/store-logger.js";
import type { Store } from "../../src/store/store.js";
import { TEMP_SUFFIX } from "../../src/store/durable-file.js";
import { openStore, tempDir } from "../store/store-test-kit.js";

/** A recorder on `store` (closed after the test), as a node at start would make it. */
function recorderOf(t: TestContext, store: Store): EpochRecorder {
  const recorder = new EpochRecorder({
    store,
    log: SILENT_LOGGER,
    primaryEpoch: () => 0n,
    streamEpoch: () => 0n,
  });
  t.after(() => recorder.close());
  return recorder;
}

test("record: the line in the file and the history at once, in call order; durable when it resolves", async (t) => {
  const dir = tempDir(t, "epochs-record");
  const file = new EpochHistoryFile(dir);
  const records = [file.record(4n, 1n), file.record(4n, 2n), file.record(6n, 3n)];
  // Before any fsync ended: the history (read by candidate ranking) and the file have both lines.
  assert.deepEqual(file.history, [
    { epoch: 4n, firstTxid: 1n },
    { epoch: 6n, firstTxid: 3n },
  ]);
  assert.equal(fs.readFileSync(file.file, "utf8"), "4 0000000000000001\n6 0000000000000003\n");
  assert.deepEqual(await Promise.all(records), [true, false, true]);
  await assert.rejects(() => file.record(5n, 10n), RangeError);

  // A write that fails (the file replaced by a directory) adds nothing; the next record tries again.
  const kept = file.file + ".kept";
  fs.renameSync(file.file, kept);
  fs.mkdirSync(file.file);
  await assert.rejects(() => file.record(7n, 9n), /EISDIR/);
  assert.equal(file.lastEpoch, 6n);
  fs.rmdirSync(file.file);
  fs.renameSync(kept, file.file);
  assert.equal(await file.record(7n, 9n), true);
  const text = "4 0000000000000001\n6 0000000000000003\n7 0000000000000009\n";
  assert.equal(fs.readFileSync(file.file, "utf8"), text);
  assert.deepEqual(new EpochHistoryFile(dir).history, file.history);
});

test("primaryStarted marks every database's next TXID, which a restart reads back as the highest epoch", async (t) => {
  const data = path.join(tempDir(t, "primary-started"), "data");
  const store = openStore(data);
  t.after(() => store.close());
  const names = Array.from({ length: 12 }, (_, i) => `db${i}.db`);
  for (const name of names) store.createDatabase(name);
  const recorder = recorderOf(t, store);
  await recorder.raise(3n);
  await recorder.primaryStarted(9n);
  assert.equal(recorder.highest, 9n);
  assert.equal(
    readHighestEpoch(store.dataDir.root),
    3n,
    "the lines record 9: the epoch file is not rewritten",
  );
  for (const name of names) {
    const history = recorder.historyOf(name).history;
    assert.deepEqual(history.at(-1), { epoch: 9n, firstTxid: 1n }, name);
    // What is on disk, read afresh, is what the recorder holds.
    assert.deepEqual(new EpochHistoryFile(store.dataDir.database(name).dir).history, history, name);
  }
  // Again under the same epoch: nothing more is written.
  await recorder.primaryStarted(9n);
  for (const name of names) assert.equal(recorder.historyOf(name).history.length, 1, name);

  // A restart (a new recorder on the same data) has seen 9, though the epoch file says 3.
  const restarted = recorderOf(t, store);
  assert.equal(restarted.highest, 9n);
});

test("primaryStarted with no database writes the epoch file, its only record", async (t) => {
  const data = path.join(tempDir(t, "primary-started-empty"), "data");
  const store = openStore(data);
  t.after(() => store.close());
  const recorder = recorderOf(t, store);
  await recorder.primaryStarted(5n);
  assert.equal(recorder.highest, 5n);
  assert.equal(readHighestEpoch(store.dataDir.root), 5n);
});

test("primaryStarted falls back to the epoch file when no database can take its line", async (t) => {
  const data = path.join(tempDir(t, "primary-started-fallback"), "data");
  const store = openStore(data);
  t.after(() => store.close());
  store.createDatabase("a.db");
  const recorder = recorderOf(t, store);
  const file = recorder.historyOf("a.db");
  file.record = () => Promise.reject(new Error("EIO (injected)"));
  await recorder.primaryStarted(6n);
  assert.equal(readHighestEpoch(store.dataDir.root), 6n);
});

test("raise writes the epoch file off the event loop, one raise at a time; highest follows the file", async (t) => {
  const store = openStore(path.join(tempDir(t, "raise"), "data"));
  t.after(() => store.close());
  const recorder = recorderOf(t, store);
  const raises = [recorder.raise(5n), recorder.raise(7n), recorder.raise(6n)];
  // The calls returned before any file was written: the fsyncs run on the thread pool.
  assert.equal(recorder.highest, 0n, "raised before the file is on disk");
  await Promise.all(raises);
  assert.equal(recorder.highest, 7n);
  assert.equal(readHighestEpoch(store.dataDir.root), 7n);

  // A raise that cannot write rejects and leaves the highest as it was; the next one writes.
  const temp = path.join(store.dataDir.root, "epoch" + TEMP_SUFFIX);
  fs.mkdirSync(temp); // the temporary file cannot be opened for writing
  await assert.rejects(() => recorder.raise(9n), /EISDIR/);
  assert.equal(recorder.highest, 7n);
  assert.equal(readHighestEpoch(store.dataDir.root), 7n);
  fs.rmdirSync(temp);
  await recorder.raise(9n);
  assert.equal(recorder.highest, 9n);
  assert.equal(readHighestEpoch(store.dataDir.root), 9n);
  assert.equal(recorderOf(t, store).highest, 9n, "a restart reads it back");
});
