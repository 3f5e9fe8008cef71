// Each rule the decoder enforces, broken one at a time in files whose checksums are otherwise right:
// the error must carry the rule's code and name (and the decoder must not merely trip over a
// checksum). Also: format detection, the v1 fallback, and what the decoder holds in memory.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  compressBlock,
  databaseChecksum,
  decodeLtx,
  encodeHeader,
  encodeLtx,
  LtxDecoder,
  LtxError,
  lockPgno,
  readPageAt,
  type Header,
  type LtxErrorCode,
} from "../../src/ltx/index.js";
import { filled, makeHeader, patterned, tempDir } from "./ltx-fixtures.js";
import { concat, rawEarlyV3, rawV1, rawV3, uvarint } from "./raw-ltx.js";

const POST = 0x8000000000000abcn;
const PRE = 0x8000000000000123n;

function rejects(
  bytes: Uint8Array,
  code: LtxErrorCode,
  rule: string,
  options: Parameters<typeof decodeLtx>[1] = {},
): LtxError {
  let caught: unknown;
  try {
    decodeLtx(bytes, { file: "test.ltx", ...options });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof LtxError, `expected an LtxError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.rule, rule, caught.message);
  assert.equal(caught.file, "test.ltx");
  assert.match(caught.message, /^test\.ltx/);
  return caught;
}

const incremental = makeHeader({ commit: 10, minTxid: 5n, maxTxid: 5n, preApplyChecksum: PRE });
const page = (n: number): Uint8Array => filled(512, n);

test("a well-formed raw file decodes (the builder is right)", () => {
  const bytes = rawV3(
    incremental,
    [
      { pgno: 2, page: page(2) },
      { pgno: 7, page: page(7) },
    ],
    { postApply: POST },
  );
  assert.deepEqual(
    decodeLtx(bytes).pages.map((p) => p.pgno),
    [2, 7],
  );
  assert.deepEqual(
    bytes,
    encodeLtx(
      incremental,
      [
        { pgno: 2, data: page(2) },
        { pgno: 7, data: page(7) },
      ],
      POST,
    ),
  );
});

test("page order, duplicates, commit and the lock page", () => {
  rejects(
    rawV3(
      incremental,
      [
        { pgno: 7, page: page(7) },
        { pgno: 2, page: page(2) },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "pages ascending",
  );
  const dup = rejects(
    rawV3(
      incremental,
      [
        { pgno: 3, page: page(3) },
        { pgno: 3, page: page(3) },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "no duplicate pages",
  );
  assert.equal(dup.offset, 100 + 10 + compressBlock(page(3)).length);
  rejects(
    rawV3(incremental, [{ pgno: 11, page: page(1) }], { postApply: POST }),
    "ELTXFRAME",
    "pgno ≤ commit",
  );
  const big = makeHeader({ pageSize: 65536, commit: 20000, minTxid: 5n, maxTxid: 5n, preApplyChecksum: PRE });
  const lock = lockPgno(65536);
  rejects(
    rawV3(big, [{ pgno: lock, page: new Uint8Array(65536) }], { postApply: POST }),
    "ELTXFRAME",
    "no lock page",
  );
  const v1 = { ...incremental };
  rejects(
    rawV1(
      v1,
      [
        { pgno: 4, page: page(4) },
        { pgno: 4, page: page(4) },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "no duplicate pages",
  );
  rejects(
    rawV1(
      v1,
      [
        { pgno: 4, page: page(4) },
        { pgno: 1, page: page(1) },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "pages ascending",
  );
  rejects(
    rawV1({ ...v1, flags: 1 }, [{ pgno: 12, page: page(4) }], { postApply: POST }),
    "ELTXFRAME",
    "pgno ≤ commit",
  );
});

test("snapshots: complete from page 1, checksum of their pages", () => {
  const snap = makeHeader({ commit: 3 });
  const pages = [1, 2, 3].map((pgno) => ({ pgno, page: patterned(512).map((b) => b ^ pgno) }));
  const sum = databaseChecksum(
    pages.map((p) => ({ pgno: p.pgno, data: p.page })),
    512,
  );
  assert.equal(decodeLtx(rawV3(snap, pages, { postApply: sum })).pageCount, 3);
  rejects(rawV3(snap, [pages[0], pages[2]], { postApply: sum }), "ELTXFRAME", "snapshot complete");
  rejects(rawV3(snap, [pages[1], pages[2]], { postApply: sum }), "ELTXFRAME", "snapshot complete");
  rejects(rawV3(snap, pages.slice(0, 2), { postApply: sum }), "ELTXFRAME", "snapshot complete");
  rejects(rawV3(snap, pages, { postApply: sum ^ 1n }), "ELTXCHECKSUM", "snapshot post-apply checksum");
  rejects(rawV1(snap, pages.slice(0, 2), { postApply: sum }), "ELTXFRAME", "snapshot complete");
  rejects(rawEarlyV3(snap, [pages[0], pages[2]], sum), "ELTXFRAME", "snapshot complete");
  // NoChecksum snapshots have no checksum to compare, but must still be complete.
  const noSum = makeHeader({ commit: 3, flags: 2 });
  assert.equal(decodeLtx(rawV3(noSum, pages, { postApply: 0n })).pageCount, 3);
  rejects(rawV3(noSum, pages.slice(1), { postApply: 0n }), "ELTXFRAME", "snapshot complete");
});

test("v3 frames: flags, sizes, exact decompressed length", () => {
  const p = page(9);
  rejects(
    rawV3(
      incremental,
      [
        { pgno: 2, page: p },
        { pgno: 3, flags: 3, page: p },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "page flags",
  );
  // (A first frame with flags 0 and no LZ4 frame reads as v1; a later one is a bad v3 frame.)
  rejects(
    rawV3(
      incremental,
      [
        { pgno: 2, page: p },
        { pgno: 3, flags: 0, page: p },
      ],
      { postApply: POST },
    ),
    "ELTXFRAME",
    "page flags",
  );
  rejects(
    rawV3(incremental, [{ pgno: 2, page: p, size: 0 }], { postApply: POST }),
    "ELTXFRAME",
    "compressed size bound",
  );
  rejects(
    rawV3(incremental, [{ pgno: 2, page: p, size: 0xfffffff0 }], { postApply: POST }),
    "ELTXFRAME",
    "compressed size bound",
  );
  const short = compressBlock(filled(511, 9));
  rejects(
    rawV3(incremental, [{ pgno: 2, page: p, block: short }], { postApply: POST }),
    "ELTXFRAME",
    "page decompresses to page size",
  );
  const long = compressBlock(filled(513, 9));
  rejects(
    rawV3(incremental, [{ pgno: 2, page: p, block: long }], { postApply: POST }),
    "ELTXLZ4",
    "lz4 output size",
  );
  rejects(
    rawV3(incremental, [{ pgno: 2, page: p }], {
      postApply: POST,
      terminator: Uint8Array.of(0, 0, 0, 0, 0, 1),
    }),
    "ELTXFRAME",
    "terminator flags zero",
  );
});

test("v3 index: must list exactly the frames, canonically, with its true length", () => {
  const frames = [
    { pgno: 2, page: page(2) },
    { pgno: 7, page: page(7) },
  ];
  const opts = { postApply: POST };
  rejects(
    rawV3(incremental, frames, { ...opts, editIndex: (e) => [[e[0][0], e[0][1] + 1, e[0][2]], e[1]] }),
    "ELTXINDEX",
    "index matches frames",
  );
  rejects(
    rawV3(incremental, frames, { ...opts, editIndex: (e) => [e[1], e[0]] }),
    "ELTXINDEX",
    "index matches frames",
  );
  rejects(
    rawV3(incremental, frames, { ...opts, editIndex: (e) => [e[0]] }),
    "ELTXINDEX",
    "index lists every frame",
  );
  rejects(
    rawV3(incremental, frames, { ...opts, editIndex: (e) => [...e, [9, 999, 20]] }),
    "ELTXINDEX",
    "index lists every frame",
  );
  rejects(rawV3(incremental, frames, { ...opts, indexLength: 1000n }), "ELTXINDEX", "index length");
  const overlong = concat([
    Uint8Array.of(0x82, 0x00),
    uvarint(100),
    uvarint(10 + compressBlock(page(2)).length),
    uvarint(0),
  ]);
  rejects(
    rawV3(incremental, [frames[0]], { ...opts, indexBytes: overlong }),
    "ELTXINDEX",
    "canonical varint",
  );
});

test("random access checks the index and the frame it points at", async (t) => {
  const dir = tempDir(t);
  const frames = [
    { pgno: 2, page: page(2) },
    { pgno: 7, page: page(7) },
  ];
  const write = (name: string, bytes: Uint8Array): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    return file;
  };
  const good = write("good.ltx", rawV3(incremental, frames, { postApply: POST }));
  assert.deepEqual(await readPageAt(good, 7), page(7));
  assert.equal(await readPageAt(good, 3), undefined);
  const shifted = write(
    "shifted.ltx",
    rawV3(incremental, frames, {
      postApply: POST,
      editIndex: (e) => [[e[0][0], e[0][1] + 1, e[0][2]], e[1]],
    }),
  );
  await assert.rejects(
    readPageAt(shifted, 7),
    (err) => err instanceof LtxError && err.rule === "index offsets contiguous",
  );
  const renamed = write(
    "renamed.ltx",
    rawV3(incremental, frames, { postApply: POST, editIndex: (e) => [[3, e[0][1], e[0][2]], e[1]] }),
  );
  await assert.rejects(
    readPageAt(renamed, 3),
    (err) => err instanceof LtxError && err.code === "ELTXFRAME" && err.rule === "index matches frames",
  );
  const longIndex = write("long.ltx", rawV3(incremental, frames, { postApply: POST, indexLength: 5000n }));
  await assert.rejects(
    readPageAt(longIndex, 2),
    (err) => err instanceof LtxError && err.rule === "index length",
  );
});

test("trailer: file checksum, post-apply rules, nothing after it", () => {
  const frames = [{ pgno: 2, page: page(2) }];
  rejects(
    rawV3(incremental, frames, { postApply: POST, fileChecksum: 0x8000000000000001n }),
    "ELTXCHECKSUM",
    "file checksum",
  );
  rejects(rawV3(incremental, frames, { postApply: 0x1234n }), "ELTXCHECKSUM", "post-apply checksum flag");
  rejects(
    rawV3(makeHeader({ ...incremental, flags: 2, preApplyChecksum: 0n }), frames, { postApply: POST }),
    "ELTXCHECKSUM",
    "no-checksum post-apply zero",
  );
  rejects(
    rawV3(makeHeader({ ...incremental, commit: 0 }), [], { postApply: POST }),
    "ELTXCHECKSUM",
    "commit 0 post-apply empty",
  );
  const extra = rejects(
    rawV3(incremental, frames, { postApply: POST, trailing: Uint8Array.of(0) }),
    "ELTXTRAILING",
    "nothing after trailer",
  );
  assert.equal(extra.offset, rawV3(incremental, frames, { postApply: POST }).length);
});

test("header rules, each named", () => {
  const cases: Array<[Partial<Header>, string]> = [
    [{ flags: 4 }, "header flags"],
    [{ flags: 1 }, "header flags"], // v3 (detected from its frames) may not carry CompressLZ4
    [{ pageSize: 1000 }, "page size"],
    [{ pageSize: 256 }, "page size"],
    [{ pageSize: 131072 }, "page size"],
    [{ minTxid: 0n }, "min TXID non-zero"],
    [{ maxTxid: 4n }, "max TXID ≥ min TXID"],
    [{ walOffset: -1 }, "WAL offset ≥ 0"],
    [{ walSize: -5, walOffset: 32 }, "WAL size ≥ 0"],
    [{ walSize: 100 }, "WAL size needs WAL offset"],
    [{ walSalt1: 1 }, "WAL salts need WAL offset"],
    [{ preApplyChecksum: 0x123n }, "pre-apply checksum flag"],
    [{ preApplyChecksum: 0n }, "pre-apply checksum flag"],
    [{ flags: 2 }, "no-checksum pre-apply zero"],
    [{ minTxid: 1n, preApplyChecksum: PRE }, "snapshot pre-apply zero"],
  ];
  for (const [fields, rule] of cases) {
    const header = { ...incremental, ...fields };
    const bytes = rawV3(header, [{ pgno: 2, page: page(2) }], { postApply: POST });
    const err = rejects(bytes, "ELTXHEADER", rule);
    assert.ok(err.offset !== undefined && err.offset < 100, rule);
  }
  const good = rawV3(incremental, [{ pgno: 2, page: page(2) }], { postApply: POST });
  const badMagic = new Uint8Array(good);
  badMagic[3] = 0x32;
  rejects(badMagic, "ELTXHEADER", "magic");
  const reserved = new Uint8Array(good);
  reserved[90] = 1;
  rejects(reserved, "ELTXHEADER", "reserved bytes zero");
  const hugeTime = new Uint8Array(good);
  new DataView(hugeTime.buffer).setBigInt64(32, 1n << 60n);
  rejects(hugeTime, "ELTXHEADER", "timestamp range");
  rejects(good.subarray(0, 50), "ELTXTRUNCATED", "complete header");
  rejects(good.subarray(0, 108), "ELTXTRUNCATED", "complete file");
});

test("v1-lz4: the frame must hold nothing after the terminator, and be a frame", () => {
  const header = { ...incremental, flags: 1 };
  const pages = [{ pgno: 2, page: page(2) }];
  assert.equal(decodeLtx(rawV1(header, pages, { postApply: POST })).format, "v1-lz4");
  rejects(
    rawV1(header, pages, { postApply: POST, afterTerminator: Uint8Array.of(1, 2, 3) }),
    "ELTXFRAME",
    "nothing after terminator",
  );
  const plain = rawV1({ ...incremental }, pages, { postApply: POST });
  const flagged = new Uint8Array(plain);
  flagged.set(encodeHeader(header).subarray(0, 100));
  rejects(flagged, "ELTXHEADER", "header flags");
  rejects(plain, "ELTXHEADER", "header flags", { format: "v1-lz4" });
});

test("format detection: a v1 page starting 00 01 reads like v3; its first frame tells them apart", async () => {
  const odd = new Uint8Array(512);
  odd[1] = 1; // bytes 104..105 of the file: 00 01, v3's page flags
  odd[5] = 0x20; // a v3 size of 32: the "block" is zeros, which is no LZ4 block
  const bytes = rawV1(incremental, [{ pgno: 3, page: odd }], { postApply: POST });
  const decoded = decodeLtx(bytes);
  assert.equal(decoded.format, "v1");
  assert.deepEqual(decoded.pages[0].data, odd);
  // The streaming decoder settles it from the first frame: no retry needed.
  const streamed = new LtxDecoder([bytes]);
  await streamed.readHeader();
  assert.deepEqual([streamed.format, streamed.formatCertain], ["v1", true]);
  assert.equal((await streamed.finish()).pageCount, 1);
  // A v3 file too short for a v1 page is v3 for certain.
  const v3 = new LtxDecoder([encodeLtx(incremental, [{ pgno: 3, data: odd }], POST)]);
  await v3.readHeader();
  assert.deepEqual([v3.format, v3.formatCertain], ["v3", true]);

  // A v1 page that is a whole v3 frame (flags, size, an LZ4 block of a page) followed by zeros reads
  // both ways: detection stays unsure and guesses v3; the whole-file reader retries v1.
  const block = compressBlock(filled(512, 9));
  const both = new Uint8Array(512);
  both[1] = 1;
  new DataView(both.buffer).setUint32(2, block.length);
  both.set(block, 6);
  const ambiguous = rawV1(incremental, [{ pgno: 3, page: both }], { postApply: POST });
  const guessed = new LtxDecoder([ambiguous]);
  await guessed.readHeader();
  assert.deepEqual([guessed.format, guessed.formatCertain], ["v3", false]);
  await assert.rejects(guessed.finish(), LtxError);
  assert.deepEqual(decodeLtx(ambiguous).pages[0].data, both);
  const told = new LtxDecoder([ambiguous], { format: "v1" });
  assert.equal((await told.finish()).pageCount, 1);

  // Early v3 and empty v3 are told apart from v1 too.
  const early = rawEarlyV3(incremental, [{ pgno: 2, page: page(2) }], POST);
  assert.equal(decodeLtx(early).format, "v3-frame");
  const emptyV3 = encodeLtx({ ...incremental, commit: 0 }, [], undefined);
  assert.equal(decodeLtx(emptyV3).format, "v3");
  const emptyV1 = encodeLtx({ ...incremental, commit: 0 }, [], undefined, { format: "v1" });
  assert.equal(decodeLtx(emptyV1).format, "v1");
});

test("the streaming decoder holds about a page, however large the file", async () => {
  // A 64 MiB snapshot streamed through the decoder without ever existing whole: memory growth (heap
  // and array buffers) stays
  // far below the file size.
  const pageSize = 4096;
  const commit = 16384;
  const header = makeHeader({ pageSize, commit });
  const pageOf = (pgno: number): Uint8Array => {
    const p = new Uint8Array(pageSize);
    new DataView(p.buffer).setUint32(0, pgno);
    for (let i = 4; i < pageSize; i += 64) p[i] = (pgno * 31 + i) & 0xff;
    return p;
  };
  async function* produce(): AsyncGenerator<Uint8Array> {
    const chunks: Uint8Array[] = [];
    const { LtxEncoder } = await import("../../src/ltx/index.js");
    const encoder = new LtxEncoder((chunk) => chunks.push(chunk));
    encoder.writeHeader(header);
    for (let pgno = 1; pgno <= commit; pgno++) {
      encoder.writePage(pgno, pageOf(pgno));
      while (chunks.length > 0) yield chunks.shift()!;
    }
    encoder.finish();
    while (chunks.length > 0) yield chunks.shift()!;
  }
  const used = (): number => {
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  global.gc?.();
  const before = used();
  let peak = before;
  const decoder = new LtxDecoder(produce());
  await decoder.readHeader();
  let count = 0;
  for await (const p of decoder.pages()) {
    assert.equal(new DataView(p.data.buffer, p.data.byteOffset).getUint32(0), p.pgno);
    if (++count % 1024 === 0) peak = Math.max(peak, used());
  }
  assert.equal(count, commit);
  assert.ok(
    peak - before < 48 << 20,
    `heap grew by ${((peak - before) / 1048576).toFixed(1)} MiB for a 64 MiB file`,
  );
});
