// BackingFiles.syncAsync (the replica's database fsync on the thread pool, node/replica-applier.ts):
// the file counts as synced afterwards only if nothing was written during the fsync — otherwise the
// next `sync` still fsyncs it (saveChecksums and the next apply rely on that).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { BackingFiles } from "../../src/store/backing-files.js";
import { DatabaseDir } from "../../src/store/data-dir.js";
import { tempDir } from "./store-test-kit.js";

/** Counts fsyncSync calls made by `fn` (BackingFiles calls `fs.fsyncSync` of node:fs's default export). */
function fsyncsDuring(fn: () => void): number {
  const original = fs.fsyncSync;
  let calls = 0;
  fs.fsyncSync = (fd) => {
    calls++;
    original(fd);
  };
  try {
    fn();
  } finally {
    fs.fsyncSync = original;
  }
  return calls;
}

test("syncAsync: synced afterwards unless written meanwhile; a missing file is fine", async (t) => {
  const dir = new DatabaseDir(path.join(tempDir(t, "backing-sync"), "db"));
  fs.mkdirSync(dir.dir, { recursive: true });
  const files = new BackingFiles(dir, { noSync: false });
  t.after(() => files.close());

  await files.syncAsync("database"); // nothing written, no file: nothing to do
  files.write("database", 0, Buffer.alloc(4096, 1));
  await files.syncAsync("database");
  assert.equal(
    fsyncsDuring(() => files.sync("database")),
    0,
    "synced: sync has nothing left to do",
  );

  files.write("database", 0, Buffer.alloc(4096, 2));
  const running = files.syncAsync("database");
  files.write("database", 4096, Buffer.alloc(4096, 3)); // while the fsync runs
  await running;
  assert.equal(
    fsyncsDuring(() => files.sync("database")),
    1,
    "a write during the fsync: sync fsyncs again",
  );
  assert.equal(
    fsyncsDuring(() => files.sync("database")),
    0,
  );

  files.write("wal", 0, Buffer.alloc(32, 4));
  files.unlink("wal");
  await files.syncAsync("wal"); // removed before its fsync: nothing to do, no error
});
