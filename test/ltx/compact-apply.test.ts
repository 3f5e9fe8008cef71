// Compaction and apply on the vectors and on hand-made chains: results, and refusals that change
// nothing.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  applyLtxFiles,
  checksumDatabaseFile,
  compactLtx,
  compactLtxFiles,
  databaseChecksum,
  decodeLtx,
  encodeLtx,
  LtxDecoder,
  LtxError,
  pageChecksum,
  readLtxFile,
  type LtxErrorCode,
} from "../../src/ltx/index.js";
import {
  filled,
  hex,
  makeHeader,
  readVector,
  sqliteLike,
  tempDir,
  VECTOR_NAMES,
  vectorPath,
} from "./ltx-fixtures.js";
import { rawV3 } from "./raw-ltx.js";

const [V1, V2, V3] = VECTOR_NAMES.map(vectorPath);

async function compactToBytes(paths: string[], format: "v3" | "v1" | "v1-lz4" = "v3"): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await compactLtx(
    paths.map((p) => new LtxDecoder([readVector(path.basename(p))], { file: p })),
    { write: (c: Uint8Array) => void chunks.push(c) },
    { format },
  );
  return Buffer.concat(chunks);
}

function isLtxError(code: LtxErrorCode, rule?: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof LtxError, String(err));
    assert.equal(err.code, code, err.message);
    if (rule !== undefined) assert.equal(err.rule, rule, err.message);
    return true;
  };
}

test("compacting vectors 1+2 gives the snapshot of TXID 2", async () => {
  const out = decodeLtx(await compactToBytes([V2, V1])); // inputs are sorted by TXID
  assert.deepEqual(out.header, {
    ...makeHeader({ commit: 3, minTxid: 1n, maxTxid: 2n, timestamp: 1700000001234 }),
  });
  assert.deepEqual(
    out.pages.map((p) => [p.pgno, p.data]),
    [
      [1, sqliteLike(512)],
      [2, filled(512, 0xab)],
      [3, filled(512, 0)],
    ],
  );
  assert.equal(hex(out.trailer.postApplyChecksum), "d3e43abaed51b58a");
  for (const format of ["v1", "v1-lz4"] as const) {
    const other = decodeLtx(await compactToBytes([V1, V2], format));
    assert.equal(other.format, format);
    assert.deepEqual(
      other.pages.map((p) => p.data),
      out.pages.map((p) => p.data),
    );
  }
});

test("compacting 1+2+3 gives an empty snapshot; 2+3 drops pages past commit 0", async () => {
  const all = decodeLtx(await compactToBytes([V1, V2, V3]));
  assert.equal(all.header.commit, 0);
  assert.equal(all.pageCount, 0);
  assert.equal(all.header.maxTxid, 3n);
  assert.equal(hex(all.trailer.postApplyChecksum), "8000000000000000");
  const tail = decodeLtx(await compactToBytes([V2, V3]));
  assert.equal(tail.header.minTxid, 2n);
  assert.equal(hex(tail.header.preApplyChecksum), "a17215b615a8a47b");
  assert.equal(tail.pageCount, 0);
});

test("compaction refuses gaps, mismatched page sizes and broken checksum chains", async (t) => {
  await assert.rejects(compactToBytes([V1, V3]), isLtxError("ELTXCOMPACT", "contiguous TXIDs"));
  await assert.rejects(compactLtx([], { write: () => undefined }), isLtxError("ELTXCOMPACT", "inputs"));
  const dir = tempDir(t);
  const otherSize = path.join(dir, "b.ltx");
  fs.writeFileSync(
    otherSize,
    encodeLtx(
      makeHeader({ pageSize: 1024, minTxid: 2n, maxTxid: 2n, preApplyChecksum: 0x8000000000000001n }),
      [],
      0x8000000000000002n,
    ),
  );
  await assert.rejects(
    compactLtxFiles([V1, otherSize], path.join(dir, "out.ltx")),
    isLtxError("ELTXCOMPACT", "page sizes match"),
  );
  const badChain = path.join(dir, "c.ltx");
  fs.writeFileSync(
    badChain,
    encodeLtx(
      makeHeader({ commit: 2, minTxid: 2n, maxTxid: 2n, preApplyChecksum: 0x8000000000000001n }),
      [],
      0x8000000000000002n,
    ),
  );
  await assert.rejects(
    compactLtxFiles([V1, badChain], path.join(dir, "out.ltx")),
    isLtxError("ELTXCOMPACT", "checksums chain"),
  );
  // A snapshot output whose pages disagree with the last post-apply checksum is not written.
  const wrongPost = path.join(dir, "d.ltx");
  fs.writeFileSync(
    wrongPost,
    encodeLtx(
      makeHeader({ commit: 2, minTxid: 2n, maxTxid: 2n, preApplyChecksum: 0xa17215b615a8a47bn }),
      [],
      0x8000000000000002n,
    ),
  );
  await assert.rejects(
    compactLtxFiles([V1, wrongPost], path.join(dir, "out.ltx")),
    isLtxError("ELTXCOMPACT", "inputs consistent"),
  );
  assert.deepEqual(fs.readdirSync(dir).sort(), ["b.ltx", "c.ltx", "d.ltx"]);
  const ok = await compactLtxFiles([V1, V2], path.join(dir, "out.ltx"));
  assert.equal((await readLtxFile(path.join(dir, "out.ltx"))).trailer.fileChecksum, ok.trailer.fileChecksum);
});

test("apply refuses what does not follow, changing nothing", async (t) => {
  const dir = tempDir(t);
  const db = path.join(dir, "db");
  await applyLtxFiles(db, [V1]);
  const before = fs.readFileSync(db);
  const unchanged = (): void => assert.deepEqual(fs.readFileSync(db), before);

  await assert.rejects(
    applyLtxFiles(db, [V3]),
    isLtxError("ELTXAPPLY", "pre-apply checksum matches database"),
  );
  unchanged();
  await assert.rejects(applyLtxFiles(db, [V2, V2]), isLtxError("ELTXAPPLY", "follows position"));
  unchanged();
  await assert.rejects(applyLtxFiles(db, [V1]), isLtxError("ELTXAPPLY", "snapshot onto empty database"));
  unchanged();
  const corrupt = path.join(dir, "corrupt.ltx");
  const bytes = new Uint8Array(readVector(VECTOR_NAMES[2]));
  bytes[75] ^= 1; // the node ID: only the file checksum notices
  fs.writeFileSync(corrupt, bytes);
  await assert.rejects(applyLtxFiles(db, [V2, corrupt]), isLtxError("ELTXCHECKSUM", "file checksum"));
  unchanged();
  // A file whose own checksum is right but whose post-apply checksum is not what applying it gives.
  const lying = path.join(dir, "lying.ltx");
  const header = makeHeader({ commit: 2, minTxid: 2n, maxTxid: 2n, preApplyChecksum: 0xa17215b615a8a47bn });
  fs.writeFileSync(
    lying,
    rawV3(header, [{ pgno: 2, page: filled(512, 1) }], { postApply: 0x8000000000000001n }),
  );
  await assert.rejects(
    applyLtxFiles(db, [lying]),
    isLtxError("ELTXCHECKSUM", "post-apply checksum matches result"),
  );
  unchanged();
  await assert.rejects(
    applyLtxFiles(db, [V2], { position: { txid: 1n, checksum: 0x8000000000000001n } }),
    isLtxError("ELTXAPPLY", "position matches database"),
  );
  await assert.rejects(
    applyLtxFiles(db, [V2], { position: { txid: 5n, checksum: 0xa17215b615a8a47bn } }),
    isLtxError("ELTXAPPLY", "follows position"),
  );
  unchanged();
  const big = path.join(dir, "big.ltx");
  fs.writeFileSync(
    big,
    encodeLtx(
      makeHeader({
        pageSize: 1024,
        commit: 0,
        minTxid: 2n,
        maxTxid: 2n,
        preApplyChecksum: 0xa17215b615a8a47bn,
      }),
      [],
    ),
  );
  await assert.rejects(applyLtxFiles(db, [big]), isLtxError("ELTXDATABASE", "page sizes match"));
  unchanged();

  // A database with a WAL or hot journal beside it is not just its file.
  fs.writeFileSync(db + "-wal", "x");
  await assert.rejects(applyLtxFiles(db, [V2]), isLtxError("ELTXDATABASE", "no pending journal"));
  fs.rmSync(db + "-wal");
  unchanged();

  const result = await applyLtxFiles(db, [V2], { position: { txid: 1n, checksum: 0xa17215b615a8a47bn } });
  assert.equal(hex(result.position.checksum), "d3e43abaed51b58a");
});

test("apply: files larger than the memory budget are read twice; growth must carry its pages", async (t) => {
  const dir = tempDir(t);
  const a = path.join(dir, "a");
  const b = path.join(dir, "b");
  const viaMemory = await applyLtxFiles(a, [V1, V2]);
  const viaRereading = await applyLtxFiles(b, [V1, V2], { maxBufferedBytes: 0 });
  assert.deepEqual(viaRereading, viaMemory);
  assert.deepEqual(fs.readFileSync(a), fs.readFileSync(b));
  const before = fs.readFileSync(a);

  // TXID 3 grows the database from 3 to 6 pages but carries only page 5: refused (pages 4 and 6
  // would be zeros nobody wrote), even with a post-apply checksum that counts them as zeros.
  const pages = new Map<number, Uint8Array>([
    [1, sqliteLike(512)],
    [2, filled(512, 0xab)],
    [3, filled(512, 0)],
    [4, filled(512, 0)],
    [5, filled(512, 5)],
    [6, filled(512, 0)],
  ]);
  const post = databaseChecksum(
    [...pages].map(([pgno, data]) => ({ pgno, data })),
    512,
  );
  const header = makeHeader({ commit: 6, minTxid: 3n, maxTxid: 3n, preApplyChecksum: 0xd3e43abaed51b58an });
  const gap = path.join(dir, "gap.ltx");
  fs.writeFileSync(gap, encodeLtx(header, [{ pgno: 5, data: filled(512, 5) }], post));
  await assert.rejects(applyLtxFiles(a, [gap]), isLtxError("ELTXAPPLY", "growth carries its pages"));
  assert.deepEqual(fs.readFileSync(a), before);

  const full = path.join(dir, "full.ltx");
  fs.writeFileSync(
    full,
    encodeLtx(
      header,
      [4, 5, 6].map((pgno) => ({ pgno, data: pages.get(pgno)! })),
      post,
    ),
  );
  const result = await applyLtxFiles(a, [full]);
  assert.equal(result.position.checksum, post);
  assert.equal(await checksumDatabaseFile(a), post);
  assert.deepEqual(fs.readFileSync(a), Buffer.concat([...pages.values()]));
  assert.notEqual(pageChecksum(4, filled(512, 0)), pageChecksum(6, filled(512, 0)));
});

test("a v1 chain whose pages start like v3 frames applies and compacts (streaming readers)", async (t) => {
  // Found by the compaction property (seeds -1140134732 and 65485380): a v1 page starting 00 01 reads
  // like a v3 frame. Apply and compaction stream their files, with no whole-file retry: detection
  // must tell the formats apart from the first frame itself (format.ts, resolveFormat).
  const dir = tempDir(t);
  const v3Like = new Uint8Array(512);
  v3Like[1] = 1; // 00 01: a v3 frame's page flags; the next four bytes (a size of 0) are not v3
  const txns = [
    {
      commit: 4,
      pages: [1, 2, 3, 4].map((pgno) => ({ pgno, data: pgno === 1 ? sqliteLike(512) : filled(512, 0) })),
    },
    {
      commit: 8,
      pages: [2, 5, 6, 7, 8].map((pgno) => ({ pgno, data: pgno === 2 ? v3Like : filled(512, 0) })),
    },
    {
      commit: 5,
      pages: [1, 3, 5].map((pgno) => ({ pgno, data: pgno === 1 ? sqliteLike(512) : filled(512, 7) })),
    },
  ];
  const model = new Map<number, Uint8Array>();
  const files: string[] = [];
  let commit = 0;
  let pre = 0n;
  for (const [i, txn] of txns.entries()) {
    for (const { pgno, data } of txn.pages) model.set(pgno, data);
    for (const pgno of [...model.keys()]) if (pgno > txn.commit) model.delete(pgno);
    commit = txn.commit;
    const post = databaseChecksum(
      [...model].map(([pgno, data]) => ({ pgno, data })),
      512,
    );
    const txid = BigInt(i + 1);
    const file = path.join(dir, `${i + 1}.ltx`);
    const header = makeHeader({ commit, minTxid: txid, maxTxid: txid, preApplyChecksum: pre });
    fs.writeFileSync(file, encodeLtx(header, txn.pages, post, { format: "v1" }));
    files.push(file);
    pre = post;
  }
  const expected = Buffer.concat(Array.from({ length: commit }, (_, i) => model.get(i + 1)!));

  const decoder = new LtxDecoder([fs.readFileSync(files[1])]);
  await decoder.readHeader();
  assert.deepEqual([decoder.format, decoder.formatCertain], ["v1", true]);

  const stepDb = path.join(dir, "step.db");
  for (const file of files) await applyLtxFiles(stepDb, [file]);
  assert.deepEqual(fs.readFileSync(stepDb), expected);

  // Compaction writes such a file too (v3 input, v1 output), and apply reads it back.
  const v3Copy = path.join(dir, "2-v3.ltx");
  await compactLtxFiles([files[1]], v3Copy, { format: "v3" });
  const compacted = path.join(dir, "2-v1.ltx");
  await compactLtxFiles([v3Copy], compacted, { format: "v1" });
  assert.deepEqual((await readLtxFile(compacted)).pages[0].data, v3Like);
  const compactDb = path.join(dir, "compact.db");
  const applied = await applyLtxFiles(compactDb, [files[0], compacted, files[2]]);
  assert.equal(applied.position.txid, 3n);
  assert.deepEqual(fs.readFileSync(compactDb), expected);
});
