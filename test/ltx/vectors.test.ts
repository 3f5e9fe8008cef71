// The Go reference's vectors (test/fixtures/ltx-vectors, see its README): every header field and
// page as documented, re-encoding to identical bytes, streaming in any chunking, random page access,
// and the checksum walk of applying 1 → 2 → 3.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  applyLtxFiles,
  checksumDatabaseFile,
  databaseChecksum,
  decodeLtx,
  encodeLtx,
  LtxDecoder,
  readLtxFile,
  readPageAt,
  type Header,
  type LtxFormat,
} from "../../src/ltx/index.js";
import { filled, hex, patterned, readVector, sqliteLike, tempDir, vectorPath } from "./ltx-fixtures.js";

interface Expected {
  name: string;
  format: LtxFormat;
  header: Header;
  pages: Array<[number, Uint8Array]>;
  postApply: bigint;
  fileChecksum: bigint;
}

const base = {
  flags: 0,
  pageSize: 512,
  walOffset: 0,
  walSize: 0,
  walSalt1: 0,
  walSalt2: 0,
  nodeId: 0n,
  preApplyChecksum: 0n,
};
const legacyPages: Array<[number, Uint8Array]> = [
  [1, filled(512, 0x41)],
  [2, patterned(512)],
];
const legacyHeader = { ...base, commit: 2, minTxid: 1n, maxTxid: 1n, timestamp: 1700000000000 };

const EXPECTED: Expected[] = [
  {
    name: "0000000000000001-0000000000000001.ltx",
    format: "v3",
    header: { ...base, commit: 2, minTxid: 1n, maxTxid: 1n, timestamp: 1700000000000 },
    pages: [
      [1, sqliteLike(512)],
      [2, patterned(512)],
    ],
    postApply: 0xa17215b615a8a47bn,
    fileChecksum: 0xac93e81fd7f8f86cn,
  },
  {
    name: "0000000000000002-0000000000000002.ltx",
    format: "v3",
    header: {
      ...base,
      commit: 3,
      minTxid: 2n,
      maxTxid: 2n,
      timestamp: 1700000001234,
      preApplyChecksum: 0xa17215b615a8a47bn,
      walOffset: 32,
      walSize: 1056,
      walSalt1: 0x01020304,
      walSalt2: 0x05060708,
      nodeId: 0x1122334455667788n,
    },
    pages: [
      [2, filled(512, 0xab)],
      [3, filled(512, 0x00)],
    ],
    postApply: 0xd3e43abaed51b58an,
    fileChecksum: 0xa7343c5c91721193n,
  },
  {
    name: "0000000000000003-0000000000000003.ltx",
    format: "v3",
    header: {
      ...base,
      commit: 0,
      minTxid: 3n,
      maxTxid: 3n,
      timestamp: 1700000002000,
      preApplyChecksum: 0xd3e43abaed51b58an,
    },
    pages: [],
    postApply: 0x8000000000000000n,
    fileChecksum: 0xd1f31c1f1b74a46an,
  },
  {
    name: "0000000000000005-0000000000000007.ltx",
    format: "v3",
    header: { ...base, flags: 0x2, commit: 1, minTxid: 5n, maxTxid: 7n, timestamp: 0 },
    pages: [[1, filled(512, 0x12)]],
    postApply: 0n,
    fileChecksum: 0x870dfc16280c18f0n,
  },
  {
    name: "legacy-v3-frame-0000000000000001-0000000000000001.ltx",
    format: "v3-frame",
    header: { ...legacyHeader, timestamp: 1000 },
    pages: legacyPages,
    postApply: 0xd43a8b48af9b3a4an,
    fileChecksum: 0xc53add2d4594dd6bn,
  },
  {
    name: "v1-uncompressed-0000000000000001-0000000000000001.ltx",
    format: "v1",
    header: legacyHeader,
    pages: legacyPages,
    postApply: 0xd43a8b48af9b3a4an,
    fileChecksum: 0xbbf2bbf5c9bfdd7an,
  },
  {
    name: "v1-lz4-0000000000000001-0000000000000001.ltx",
    format: "v1-lz4",
    header: { ...legacyHeader, flags: 0x1 },
    pages: legacyPages,
    postApply: 0xd43a8b48af9b3a4an,
    fileChecksum: 0xcee92256a20e1bbbn,
  },
];

for (const want of EXPECTED) {
  test(`vector ${want.name}: header, pages and trailer as documented`, () => {
    const bytes = readVector(want.name);
    for (const canonicalLz4 of [false, true]) {
      const got = decodeLtx(bytes, { canonicalLz4 });
      assert.equal(got.format, want.format);
      assert.deepEqual(got.header, want.header);
      assert.deepEqual(
        got.pages.map((p) => [p.pgno, p.data]),
        want.pages,
      );
      assert.equal(hex(got.trailer.postApplyChecksum), hex(want.postApply));
      assert.equal(hex(got.trailer.fileChecksum), hex(want.fileChecksum));
      assert.equal(got.pageCount, want.pages.length);
      assert.equal(got.size, bytes.length);
    }
  });

  if (want.format !== "v3-frame") {
    test(`vector ${want.name}: re-encodes to identical bytes`, () => {
      const bytes = readVector(want.name);
      const got = decodeLtx(bytes);
      const encoded = encodeLtx(got.header, got.pages, got.trailer.postApplyChecksum, {
        format: want.format === "v3-frame" ? "v3" : want.format,
      });
      assert.deepEqual(Buffer.from(encoded), Buffer.from(bytes));
      // Without the post-apply checksum the encoder works it out (snapshot, deletion, NoChecksum).
      if (got.header.minTxid === 1n || got.header.commit === 0 || got.header.flags & 2) {
        const again = encodeLtx(got.header, got.pages, undefined, {
          format: got.format === "v3-frame" ? "v3" : got.format,
        });
        assert.deepEqual(Buffer.from(again), Buffer.from(bytes));
      }
    });
  }

  test(`vector ${want.name}: streams in any chunking, from memory and from disk`, async () => {
    const bytes = readVector(want.name);
    const reference = decodeLtx(bytes);
    for (const chunkSize of [1, 2, 3, 7, 16, 100, 101, 4096]) {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
      const decoder = new LtxDecoder(chunks, { file: want.name });
      assert.deepEqual(await decoder.readHeader(), reference.header);
      const pages = [];
      for await (const page of decoder.pages()) pages.push(page);
      assert.deepEqual(pages, reference.pages, `chunk size ${chunkSize}`);
      const { pages: _pages, ...summary } = reference;
      assert.deepEqual(decoder.summary, summary);
      assert.equal(decoder.summary.trailer.fileChecksum, want.fileChecksum);
    }
    const fromDisk = await readLtxFile(vectorPath(want.name));
    assert.deepEqual(fromDisk, reference);
  });

  test(`vector ${want.name}: random access to each page`, async () => {
    for (const [pgno, data] of want.pages)
      assert.deepEqual(await readPageAt(vectorPath(want.name), pgno), data);
    assert.equal(await readPageAt(vectorPath(want.name), 9999), undefined);
  });
}

test("legacy vectors' post-apply checksum is the checksum of their pages", () => {
  assert.equal(
    hex(
      databaseChecksum(
        legacyPages.map(([pgno, data]) => ({ pgno, data })),
        512,
      ),
    ),
    "d43a8b48af9b3a4a",
  );
});

test("early v3 and v1 re-encode as v3 with the same pages", () => {
  for (const name of EXPECTED.filter((e) => e.format !== "v3").map((e) => e.name)) {
    const got = decodeLtx(readVector(name));
    const v3 = decodeLtx(
      encodeLtx({ ...got.header, flags: got.header.flags & ~1 }, got.pages, got.trailer.postApplyChecksum),
    );
    assert.equal(v3.format, "v3");
    assert.deepEqual(
      v3.pages,
      got.pages.map((p, i) => ({ ...p, offset: v3.pages[i].offset })),
    );
    assert.equal(v3.trailer.postApplyChecksum, got.trailer.postApplyChecksum);
  }
});

test("applying 1 → 2 → 3 walks the checksums 8000… → a172… → d3e4… → 8000…", async (t) => {
  const dir = tempDir(t);
  const db = path.join(dir, "db");
  const walk: string[] = [];
  for (const name of EXPECTED.slice(0, 3).map((e) => e.name)) {
    const result = await applyLtxFiles(db, [vectorPath(name)]);
    walk.push(hex(result.position.checksum));
    assert.equal(hex(await checksumDatabaseFile(db, 512)), hex(result.position.checksum));
  }
  assert.deepEqual(walk, ["a17215b615a8a47b", "d3e43abaed51b58a", "8000000000000000"]);
  assert.equal(fs.statSync(db).size, 0);

  // The same chain in one call, and the database contents between steps.
  const db2 = path.join(dir, "db2");
  await applyLtxFiles(db2, [vectorPath(EXPECTED[0].name), vectorPath(EXPECTED[1].name)]);
  assert.deepEqual(fs.readFileSync(db2), Buffer.concat([sqliteLike(512), filled(512, 0xab), filled(512, 0)]));
  const result = await applyLtxFiles(db2, [vectorPath(EXPECTED[2].name)]);
  assert.equal(hex(result.position.checksum), "8000000000000000");
  assert.equal(result.position.txid, 3n);
});
