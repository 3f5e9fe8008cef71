import assert from "node:assert/strict";
import { test } from "node:test";

import { CHECKSUM_FLAG, lockPgno, pageChecksum } from "../../src/ltx/checksum.js";
import { planJournalCommit, planWalCommit } from "../../src/store/commit-plan.js";
import { journalCommitMode } from "../../src/store/journal-commit-detector.js";
import { PageChecksums } from "../../src/store/page-checksums.js";

// The deciding parts of commit capture, on data alone: when a journal operation ends a transaction,
// which pages a transaction carries, and the page-checksum array's invariants (lock page, growth,
// shrink, unknown pages).

const page = (pageSize: number, fill: number): Uint8Array => new Uint8Array(pageSize).fill(fill);

test("journalCommitMode: unlink, truncate to 0 and a zeroed header end a transaction; nothing else does", () => {
  assert.equal(journalCommitMode({ type: "unlink" }), "DELETE");
  assert.equal(journalCommitMode({ type: "truncate", size: 0 }), "TRUNCATE");
  assert.equal(journalCommitMode({ type: "truncate", size: 4096 }), null, "journal_size_limit trimming");
  assert.equal(journalCommitMode({ type: "write", offset: 0, data: new Uint8Array(28) }), "PERSIST");
  assert.equal(journalCommitMode({ type: "write", offset: 512, data: new Uint8Array(28) }), null);
  assert.equal(journalCommitMode({ type: "write", offset: 0, data: new Uint8Array(12) }), null, "too short");
  // The header SQLite writes at the start of a synchronous transaction: magic and nRec zero, sector size set.
  const start = new Uint8Array(512);
  new DataView(start.buffer).setUint32(20, 512);
  assert.equal(journalCommitMode({ type: "write", offset: 0, data: start }), null);
});

test("PageChecksums: the lock page is never a page; growth is unknown until set; shrink drops pages", () => {
  const pageSize = 65536;
  const lock = lockPgno(pageSize);
  const sums = new PageChecksums(pageSize, lock - 1);
  for (let p = 1; p < lock; p++) sums.set(p, CHECKSUM_FLAG | BigInt(p));
  const before = sums.checksum;
  sums.resize(lock + 1);
  assert.equal(sums.unknownCount, 1, "only the page after the lock page is unknown");
  assert.throws(() => sums.checksum, /no checksum yet/);
  assert.throws(() => sums.set(lock, CHECKSUM_FLAG | 1n), /lock page/);
  sums.set(lock + 1, CHECKSUM_FLAG | 7n);
  assert.equal(sums.checksum, CHECKSUM_FLAG | (before ^ CHECKSUM_FLAG ^ 7n));
  sums.resize(lock - 1);
  assert.equal(sums.checksum, before);
  const copy = PageChecksums.fromBytes(pageSize, sums.toBytes());
  assert.equal(copy.checksum, before);
});

test("planJournalCommit: unchanged pages are left out; a rollback is no transaction; growth crosses the lock page", () => {
  const pageSize = 65536;
  const lock = lockPgno(pageSize);
  const disk = new Map<number, Uint8Array>();
  const readPage = (pgno: number): Uint8Array => disk.get(pgno) ?? new Uint8Array(pageSize);
  const sums = new PageChecksums(pageSize, lock - 1);
  for (let p = 1; p < lock; p++) {
    disk.set(p, page(pageSize, p & 0xff));
    sums.setPage(p, readPage(p));
  }
  assert.equal(
    planJournalCommit({ pageSize, pageCount: lock - 1, dirty: new Set([1, 2]), checksums: sums, readPage }),
    null,
    "pages written back unchanged: a rollback",
  );
  disk.set(2, page(pageSize, 0xee));
  disk.set(lock + 1, page(pageSize, 0xaa));
  const plan = planJournalCommit({
    pageSize,
    pageCount: lock + 1,
    dirty: new Set([1, 2, lock + 1]),
    checksums: sums,
    readPage,
  });
  assert.ok(plan !== null);
  assert.deepEqual(
    plan.pages.map((p) => p.pgno),
    [2, lock + 1],
  );
  assert.equal(plan.pages[0].checksum, pageChecksum(2, disk.get(2)!));
  const shrink = planJournalCommit({ pageSize, pageCount: 3, dirty: new Set(), checksums: sums, readPage });
  assert.deepEqual(shrink, { pageSize, pageCount: 3, pages: [], fullImage: false });
});

test("planWalCommit: the frames' pages up to the commit size, every page for a first transaction", () => {
  const pageSize = 4096;
  const frames = new Map([
    [1, 100],
    [3, 200],
    [9, 300],
  ]);
  const readFrame = (offset: number): Uint8Array => page(pageSize, offset / 100);
  const readPage = (pgno: number): Uint8Array => page(pageSize, 50 + pgno);
  const sums = new PageChecksums(pageSize, 3);
  for (let p = 1; p <= 3; p++) sums.setPage(p, readPage(p));
  const plan = planWalCommit({
    pageSize,
    pageCount: 4,
    framePages: frames,
    checksums: sums,
    readFrame,
    readPage,
  });
  assert.deepEqual(
    plan.pages.map((p) => p.pgno),
    [1, 3, 4],
    "page 9 is past the commit size; page 4 is new",
  );
  const first = planWalCommit({
    pageSize,
    pageCount: 3,
    framePages: frames,
    checksums: null,
    readFrame,
    readPage,
  });
  assert.equal(first.fullImage, true);
  assert.deepEqual(
    first.pages.map((p) => [p.pgno, p.checksum]),
    [
      [1, pageChecksum(1, readFrame(100))],
      [2, pageChecksum(2, readPage(2))],
      [3, pageChecksum(3, readFrame(200))],
    ],
  );
});
