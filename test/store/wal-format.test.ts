// WAL format: the checksum against a naive reference, headers, and scanWal against SQLite itself — real
// WAL files written by better-sqlite3 and the sqlite3 shell, copied while the writer is still open;
// the oracle is SQLite's own recovery + checkpoint of the same bytes (sqliteCheckpointImage).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import {
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  buildWal,
  encodeWalFrame,
  encodeWalHeader,
  parseWalFrameHeader,
  parseWalHeader,
  scanWal,
  walBytesSource,
  walChecksum,
  walFrameOffset,
  walHeaderProblem,
  walPagesAfter,
  walStartPosition,
  type WalByteSource,
  type WalChecksum,
  type WalCommit,
  type WalFrameInput,
  type WalHeader,
} from "../../src/store/wal-format.js";
import { SqliteFormatError } from "../../src/store/sqlite-header.js";
import { Prng, testSeed } from "../support/prng.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import {
  firstDifference,
  imageFromWal,
  openWalDatabase,
  randomBytes,
  randomTransaction,
  readFile,
  runSqliteCli,
  sqliteCheckpointImage,
} from "./sqlite-files.js";

const seed = testSeed();
const tmp = makeTempDir("store-wal");
after(() => removeTempDir(tmp));

function naiveChecksum(bytes: Uint8Array, bigEndian: boolean, seed: WalChecksum): WalChecksum {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let s0 = BigInt(seed[0]);
  let s1 = BigInt(seed[1]);
  const mod = 1n << 32n;
  for (let i = 0; i < bytes.length; i += 8) {
    s0 = (s0 + BigInt(view.getUint32(i, !bigEndian)) + s1) % mod;
    s1 = (s1 + BigInt(view.getUint32(i + 4, !bigEndian)) + s0) % mod;
  }
  return [Number(s0), Number(s1)];
}

function assertSameImage(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(
    at,
    -1,
    `${what}: differs at byte ${at} (sizes ${actual.length} vs ${expected.length}) [seed ${seed}]`,
  );
}

function frameOf(wal: Uint8Array, pageSize: number, offset: number): WalFrameInput {
  const fh = parseWalFrameHeader(wal.subarray(offset, offset + WAL_FRAME_HEADER_SIZE));
  return {
    pgno: fh.pgno,
    commitDbSize: fh.commitDbSize,
    page: wal.subarray(offset + WAL_FRAME_HEADER_SIZE, offset + WAL_FRAME_HEADER_SIZE + pageSize),
  };
}

/** The frames of every commit, in order, as builder input. */
function committedFrames(wal: Uint8Array, pageSize: number, commits: readonly WalCommit[]): WalFrameInput[] {
  const frames: WalFrameInput[] = [];
  for (
    let off = WAL_HEADER_SIZE;
    off < commits[commits.length - 1].endOffset;
    off += WAL_FRAME_HEADER_SIZE + pageSize
  ) {
    frames.push(frameOf(wal, pageSize, off));
  }
  return frames;
}

describe("walChecksum", () => {
  test("equals a naive BigInt reference for both byte orders, any alignment and any seed", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })),
        (raw, shift, bigEndian, seedSums) => {
          const length = raw.length & ~7;
          const holder = new Uint8Array(length + 8);
          holder.set(raw.subarray(0, length), shift);
          const bytes = holder.subarray(shift, shift + length);
          assert.deepEqual(
            walChecksum(bytes, bigEndian, seedSums),
            naiveChecksum(bytes, bigEndian, seedSums),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  test("rejects a length that is not a multiple of 8", () => {
    assert.throws(() => walChecksum(new Uint8Array(12), false), RangeError);
  });
});

describe("WAL header", () => {
  test("encode → parse round trip, both magics; every broken field is named", () => {
    for (const bigEndianChecksum of [false, true]) {
      const { bytes, header } = encodeWalHeader({
        pageSize: 65536,
        checkpointSeq: 9,
        salt1: 0xdeadbeef,
        salt2: 7,
        bigEndianChecksum,
      });
      assert.equal(header.magic, bigEndianChecksum ? WAL_MAGIC_BE : WAL_MAGIC_LE);
      assert.equal(header.pageSize, 65536);
      assert.equal(header.salt1, 0xdeadbeef);
      assert.deepEqual(header.checksum, naiveChecksum(bytes.subarray(0, 24), bigEndianChecksum, [0, 0]));
      const broken = (offset: number, value: number): string | undefined => {
        const copy = bytes.slice();
        new DataView(copy.buffer).setUint32(offset, value, false);
        return walHeaderProblem(copy);
      };
      assert.match(broken(0, 0x377f0681) ?? "", /magic/);
      assert.match(broken(4, 3007001) ?? "", /version/);
      assert.match(broken(8, 1000) ?? "", /page size/);
      assert.match(broken(16, 1) ?? "", /checksum/);
      assert.match(walHeaderProblem(bytes.subarray(0, 31)) ?? "", /32 bytes/);
      assert.throws(
        () => parseWalHeader(bytes.subarray(0, 10)),
        (e) => e instanceof SqliteFormatError && e.code === "EWALHEADER",
      );
    }
  });
});

interface WalRun {
  pageSize: number;
  base: Uint8Array;
  /** The WAL after each committed transaction (snapshot k has k commits). */
  snapshots: Uint8Array[];
  finalWal: Uint8Array;
  /** The database file after the writer's own TRUNCATE checkpoint. */
  checkpointed: Uint8Array;
  rolledBackTail: boolean;
}

/** better-sqlite3 writes transactions in WAL mode; every WAL state is copied while it is still open. */
function betterSqliteRun(
  pageSize: number,
  transactions: number,
  prng: Prng,
  rolledBackTail: boolean,
): WalRun {
  const dir = fs.mkdtempSync(path.join(tmp, `b${pageSize}-`));
  const file = path.join(dir, "db");
  const db = openWalDatabase(file, pageSize);
  try {
    const snapshots = [readFile(file + "-wal")];
    for (let i = 0; i < transactions; i++) {
      randomTransaction(db, prng, pageSize * 3);
      snapshots.push(readFile(file + "-wal"));
    }
    if (rolledBackTail) {
      // A transaction bigger than the cache spills frames into the WAL, then rolls back: frames with
      // valid salts and checksums but no commit frame.
      db.pragma("cache_size = 10");
      db.exec("BEGIN");
      const insert = db.prepare("INSERT INTO t(v) VALUES (?)");
      for (let i = 0; i < 40; i++) insert.run(randomBytes(prng, pageSize));
      db.exec("ROLLBACK");
    }
    const finalWal = readFile(file + "-wal");
    const base = readFile(file);
    db.pragma("wal_checkpoint(TRUNCATE)");
    return { pageSize, base, snapshots, finalWal, checkpointed: readFile(file), rolledBackTail };
  } finally {
    db.close();
  }
}

function checkRun(run: WalRun, label: string): WalCommit[] {
  const header = parseWalHeader(run.finalWal);
  assert.equal(header.pageSize, run.pageSize);
  const full = scanWal(run.finalWal, header);
  assert.equal(
    full.commits.length,
    run.snapshots.length,
    `${label}: one commit per transaction [seed ${seed}]`,
  );
  if (run.rolledBackTail) {
    assert.ok(full.uncommittedFrames > 0, `${label}: the rolled-back transaction left frames`);
  } else {
    assert.equal(full.uncommittedFrames, 0);
    assert.equal(full.stop, "end");
  }
  assert.equal(full.position.offset, full.commits[full.commits.length - 1].endOffset);
  // Commits tile the log: each starts where the previous ended, frame numbers are contiguous.
  full.commits.forEach((c, i) => {
    const prevEnd = i === 0 ? WAL_HEADER_SIZE : full.commits[i - 1].endOffset;
    assert.equal(c.startOffset, prevEnd);
    assert.equal(c.firstFrame, i === 0 ? 1 : full.commits[i - 1].lastFrame + 1);
    assert.equal(c.endOffset, walFrameOffset(run.pageSize, c.lastFrame));
  });

  // Every intermediate state: SQLite's checkpoint of the WAL as it was after commit k equals our image.
  run.snapshots.forEach((snapshot, i) => {
    const k = i + 1;
    const prefix = scanWal(snapshot, parseWalHeader(snapshot));
    assert.equal(prefix.commits.length, k);
    assert.deepEqual(prefix.commits, full.commits.slice(0, k));
    const ours = imageFromWal(run.base, run.finalWal, run.pageSize, full.commits.slice(0, k));
    assertSameImage(ours, sqliteCheckpointImage(run.base, snapshot), `${label}: state after commit ${k}`);
  });

  // Resuming from any commit's position finds exactly the commits after it.
  for (let k = 0; k < full.commits.length; k++) {
    const resumed = scanWal(run.finalWal, header, {
      offset: full.commits[k].endOffset,
      checksum: full.commits[k].checksum,
    });
    assert.deepEqual(resumed.commits, full.commits.slice(k + 1));
  }

  // The writer's own checkpoint of the live database equals our reconstruction from all commits.
  assertSameImage(
    imageFromWal(run.base, run.finalWal, run.pageSize, full.commits),
    run.checkpointed,
    `${label}: final`,
  );
  return [...full.commits];
}

describe("scanWal on WAL files written by SQLite", () => {
  for (const pageSize of [512, 4096, 65536]) {
    test(`better-sqlite3, page size ${pageSize}: exactly the committed transactions, page for page`, () => {
      const prng = new Prng(seed + pageSize);
      const run = betterSqliteRun(pageSize, pageSize === 65536 ? 5 : 8, prng, pageSize !== 512);
      checkRun(run, `better-sqlite3/${pageSize}`);
    });
  }

  test("sqlite3 shell, page size 1024, with a VACUUM that shrinks the database", () => {
    const dir = fs.mkdtempSync(path.join(tmp, "cli-"));
    const file = path.join(dir, "db");
    const copy = (k: number): string => `.shell cp '${file}-wal' '${dir}/wal.${k}'\n`;
    let sql: string =
      "PRAGMA page_size=1024;\nPRAGMA journal_mode=WAL;\nPRAGMA wal_autocheckpoint=0;\n" +
      "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);\n" +
      copy(1);
    const statements = [
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60) INSERT INTO t(v) SELECT randomblob(300) FROM c;",
      "BEGIN; UPDATE t SET v = randomblob(100) WHERE id % 3 = 0; INSERT INTO t(v) VALUES (randomblob(5000)); COMMIT;",
      "DELETE FROM t WHERE id > 10;",
      "VACUUM;",
      "CREATE INDEX t_v ON t(v);",
    ];
    statements.forEach((s, i) => (sql += s + "\n" + copy(i + 2)));
    sql += `.shell cp '${file}' '${dir}/base'\n`;
    sql += "PRAGMA wal_checkpoint(TRUNCATE);\n";
    runSqliteCli(file, sql);
    const snapshots = statements.map((_, i) => readFile(path.join(dir, `wal.${i + 2}`)));
    snapshots.unshift(readFile(path.join(dir, "wal.1")));
    const run: WalRun = {
      pageSize: 1024,
      base: readFile(path.join(dir, "base")),
      snapshots,
      finalWal: snapshots[snapshots.length - 1],
      checkpointed: readFile(file),
      rolledBackTail: false,
    };
    const commits = checkRun(run, "sqlite3/1024");
    const vacuum = commits[4];
    assert.ok(vacuum.dbPageCount < commits[3].dbPageCount, "VACUUM shrank the database");
    for (const pgno of walPagesAfter(commits.slice(0, 5)).keys()) assert.ok(pgno <= vacuum.dbPageCount);
  });
});

describe("scanWal stops where SQLite's recovery stops", () => {
  const prng = new Prng(seed ^ 0x5a5a);
  let run: WalRun;
  let header: WalHeader;
  let commits: readonly WalCommit[];
  const frameSize = WAL_FRAME_HEADER_SIZE + 4096;
  before(() => {
    run = betterSqliteRun(4096, 6, prng, false);
    header = parseWalHeader(run.finalWal);
    commits = scanWal(run.finalWal, header).commits;
  });

  function expectStop(wal: Uint8Array, commitsLeft: number, stop: string, what: string): void {
    const result = scanWal(wal, header);
    assert.equal(result.stop, stop, what);
    assert.deepEqual(result.commits, commits.slice(0, commitsLeft), what);
    assert.deepEqual(
      result.position,
      commitsLeft === 0
        ? walStartPosition(header)
        : { offset: commits[commitsLeft - 1].endOffset, checksum: commits[commitsLeft - 1].checksum },
    );
    // SQLite's recovery of the same damaged bytes agrees on which transactions survive.
    assertSameImage(
      imageFromWal(run.base, wal, 4096, result.commits),
      sqliteCheckpointImage(run.base, wal),
      what,
    );
  }

  test("a torn last frame drops only the last transaction", () => {
    const last = commits[commits.length - 1];
    expectStop(
      run.finalWal.subarray(0, last.endOffset - 100),
      commits.length - 1,
      "partial-frame",
      "torn last frame",
    );
    expectStop(
      run.finalWal.subarray(0, last.endOffset - frameSize),
      commits.length - 1,
      "end",
      "commit frame missing",
    );
  });

  test("a wrong salt, a flipped page byte or a zero page number ends the valid log at the previous commit", () => {
    const j = 3;
    const target = commits[j];
    const salted = run.finalWal.slice();
    salted[target.startOffset + 11] ^= 0x01;
    expectStop(salted, j, "salt", "salt flipped in the first frame of commit 4");

    const flipped = run.finalWal.slice();
    flipped[target.endOffset - 1] ^= 0x80; // last byte of the commit frame's page
    expectStop(flipped, j, "checksum", "page byte flipped in commit 4's commit frame");

    const commitField = run.finalWal.slice();
    commitField[target.endOffset - frameSize + 7] ^= 0x01; // the "db size after commit" field
    expectStop(commitField, j, "checksum", "commit field changed");

    // Page number 0 with a checksum recomputed to match: still invalid (SQLite rejects pgno 0 first).
    const zero = run.finalWal.slice();
    const at = target.startOffset;
    new DataView(zero.buffer).setUint32(at, 0, false);
    const seedSums = commits[j - 1].checksum;
    const sums = walChecksum(
      zero.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize),
      false,
      walChecksum(zero.subarray(at, at + 8), false, seedSums),
    );
    new DataView(zero.buffer).setUint32(at + 16, sums[0], false);
    new DataView(zero.buffer).setUint32(at + 20, sums[1], false);
    expectStop(zero, j, "pgno", "page number 0");
  });

  test("a WAL header with a bad checksum is no WAL at all, for SQLite as for parseWalHeader", () => {
    const bad = run.finalWal.slice();
    bad[27] ^= 0xff;
    assert.throws(
      () => parseWalHeader(bad),
      (e) => e instanceof SqliteFormatError && e.code === "EWALHEADER" && /checksum/.test(e.message),
    );
    assertSameImage(sqliteCheckpointImage(run.base, bad), run.base, "bad header: database unchanged");
  });

  test("frames left from an earlier log generation (other salts) are not read", () => {
    const { bytes: newHeader } = encodeWalHeader({
      pageSize: 4096,
      checkpointSeq: header.checkpointSeq + 1,
      salt1: header.salt1 + 1,
      salt2: 12345,
    });
    const restarted = run.finalWal.slice();
    restarted.set(newHeader, 0);
    const result = scanWal(restarted, parseWalHeader(restarted));
    assert.equal(result.stop, "salt");
    assert.equal(result.commits.length, 0);
    assert.equal(result.stopOffset, WAL_HEADER_SIZE);
  });

  test("a read callback over a file descriptor gives the same result; maxFrames bounds the work", () => {
    const file = path.join(tmp, "fd.wal");
    fs.writeFileSync(file, run.finalWal);
    const fd = fs.openSync(file, "r");
    try {
      const scratch = Buffer.alloc(frameSize);
      let reads = 0;
      const source: WalByteSource = {
        size: fs.fstatSync(fd).size,
        read(offset, length) {
          reads++;
          const got = fs.readSync(fd, scratch, 0, length, offset);
          assert.equal(got, length);
          return scratch.subarray(0, length);
        },
      };
      assert.deepEqual(scanWal(source, header), scanWal(run.finalWal, header));
      assert.equal(reads, commits[commits.length - 1].lastFrame);
      const bounded = scanWal(walBytesSource(run.finalWal), header, walStartPosition(header), {
        maxFrames: commits[1].lastFrame,
      });
      assert.equal(bounded.stop, "max-frames");
      assert.deepEqual(bounded.commits, commits.slice(0, 2));
    } finally {
      fs.closeSync(fd);
    }
    assert.throws(
      () => scanWal(run.finalWal, header, { offset: WAL_HEADER_SIZE + 1, checksum: header.checksum }),
      (e) => e instanceof SqliteFormatError && e.code === "EWALFRAME",
    );
  });

  test("built WALs (little- and big-endian checksums) are read by SQLite exactly like the original", () => {
    const frames = committedFrames(run.finalWal, 4096, commits);
    const expected = sqliteCheckpointImage(run.base, run.finalWal);
    for (const bigEndianChecksum of [false, true]) {
      const built = buildWal(
        {
          pageSize: 4096,
          checkpointSeq: 3,
          salt1: prng.nextUint32(),
          salt2: prng.nextUint32(),
          bigEndianChecksum,
        },
        frames,
      );
      const rescanned = scanWal(built, parseWalHeader(built));
      assert.equal(rescanned.commits.length, commits.length);
      rescanned.commits.forEach((c, i) =>
        assert.deepEqual([...c.pages.keys()], [...commits[i].pages.keys()]),
      );
      assertSameImage(
        sqliteCheckpointImage(run.base, built),
        expected,
        `built WAL, bigEndian=${bigEndianChecksum}`,
      );
    }
  });
});

describe("scanWal against a model on generated logs", () => {
  test("commits, page maps, positions and uncommitted tails match; any truncation keeps a prefix", () => {
    const pageSize = 512;
    const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            pgno: fc.integer({ min: 1, max: 12 }),
            commit: fc.boolean(),
            fill: fc.nat({ max: 255 }),
          }),
          { minLength: 0, maxLength: 30 },
        ),
        fc.nat(),
        fc.boolean(),
        (spec, cut, bigEndianChecksum) => {
          const frames: WalFrameInput[] = spec.map((f, i) => ({
            pgno: f.pgno,
            commitDbSize: f.commit ? 12 + i : 0,
            page: new Uint8Array(pageSize).fill(f.fill),
          }));
          const wal = buildWal({ pageSize, checkpointSeq: 0, salt1: 1, salt2: 2, bigEndianChecksum }, frames);
          const header = parseWalHeader(wal);
          const truncated = wal.subarray(0, WAL_HEADER_SIZE + (cut % (wal.length - WAL_HEADER_SIZE + 1)));
          const result = scanWal(truncated, header);
          // Model: whole frames present, grouped up to each commit frame.
          const whole = Math.floor((truncated.length - WAL_HEADER_SIZE) / frameSize);
          const expected: Array<{ pages: Map<number, number>; dbPageCount: number; lastFrame: number }> = [];
          let pages = new Map<number, number>();
          let lastCommitFrame = 0;
          for (let i = 0; i < whole; i++) {
            pages.set(frames[i].pgno, walFrameOffset(pageSize, i));
            if ((frames[i].commitDbSize ?? 0) !== 0) {
              expected.push({ pages, dbPageCount: frames[i].commitDbSize ?? 0, lastFrame: i + 1 });
              pages = new Map();
              lastCommitFrame = i + 1;
            }
          }
          assert.deepEqual(
            result.commits.map((c) => ({
              pages: c.pages,
              dbPageCount: c.dbPageCount,
              lastFrame: c.lastFrame,
            })),
            expected,
          );
          assert.equal(result.uncommittedFrames, whole - lastCommitFrame);
          assert.equal(result.position.offset, walFrameOffset(pageSize, lastCommitFrame));
          const partial = (truncated.length - WAL_HEADER_SIZE) % frameSize !== 0;
          assert.equal(result.stop, partial ? "partial-frame" : "end");
          // The running checksum equals the one the builder produced for the commit frame.
          if (lastCommitFrame > 0) {
            const fh = parseWalFrameHeader(wal.subarray(walFrameOffset(pageSize, lastCommitFrame - 1)));
            assert.deepEqual(result.position.checksum, fh.checksum);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test("encodeWalFrame refuses frames SQLite could not have written", () => {
    const { header } = encodeWalHeader({ pageSize: 512, checkpointSeq: 0, salt1: 1, salt2: 2 });
    const bad = (frame: WalFrameInput): void =>
      assert.throws(
        () => encodeWalFrame(header, header.checksum, frame),
        (e) => e instanceof SqliteFormatError && e.code === "EWALFRAME",
      );
    bad({ pgno: 0, page: new Uint8Array(512) });
    bad({ pgno: 1, page: new Uint8Array(511) });
    assert.throws(
      () => encodeWalHeader({ pageSize: 300, checkpointSeq: 0, salt1: 0, salt2: 0 }),
      SqliteFormatError,
    );
  });
});
