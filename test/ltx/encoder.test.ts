// The encoder's rules, each refused with ELTXENCODE before anything is written, and the encoder still
// usable afterwards; formats, chunked output, the stream and file writers.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import {
  databaseChecksum,
  decodeLtx,
  encodeLtx,
  lockPgno,
  LtxEncoder,
  LtxError,
  LtxStreamEncoder,
  readLtxFile,
  writeLtxFile,
  type Header,
} from "../../src/ltx/index.js";
import { filled, makeHeader, tempDir } from "./ltx-fixtures.js";

const POST = 0x8000000000000abcn;
const incremental = makeHeader({
  commit: 10,
  minTxid: 5n,
  maxTxid: 6n,
  preApplyChecksum: 0x8000000000000123n,
});

function refused(fn: () => unknown, rule: string): void {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof LtxError, String(err));
    assert.equal(err.code, "ELTXENCODE", err.message);
    assert.equal(err.rule, rule, err.message);
    return true;
  });
}

function encoderWith(
  header: Header,
  format: "v3" | "v1" | "v1-lz4" = "v3",
): { encoder: LtxEncoder; bytes: () => Uint8Array } {
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((c) => chunks.push(c), { format });
  encoder.writeHeader(header);
  return { encoder, bytes: () => Buffer.concat(chunks) };
}

test("page rules are refused and leave the encoder usable", () => {
  for (const format of ["v3", "v1", "v1-lz4"] as const) {
    const { encoder, bytes } = encoderWith(incremental, format);
    encoder.writePage(3, filled(512, 3));
    refused(() => encoder.writePage(0, filled(512, 0)), "pgno non-zero");
    refused(() => encoder.writePage(2.5, filled(512, 0)), "pgno non-zero");
    refused(() => encoder.writePage(11, filled(512, 0)), "pgno ≤ commit");
    refused(() => encoder.writePage(3, filled(512, 3)), "no duplicate pages");
    refused(() => encoder.writePage(2, filled(512, 2)), "pages ascending");
    refused(() => encoder.writePage(4, filled(511, 4)), "page size");
    encoder.writePage(4, filled(512, 4));
    refused(() => encoder.finish(), "post-apply checksum required");
    refused(() => encoder.finish(0x1234n), "post-apply checksum flag");
    encoder.finish(POST);
    refused(() => encoder.writePage(5, filled(512, 5)), "pages after header");
    refused(() => encoder.finish(POST), "finish once");
    const decoded = decodeLtx(bytes());
    assert.equal(decoded.format, format);
    assert.deepEqual(
      decoded.pages.map((p) => p.pgno),
      [3, 4],
    );
  }
});

test("the lock page is refused", () => {
  const header = makeHeader({
    pageSize: 65536,
    commit: 20000,
    minTxid: 2n,
    maxTxid: 2n,
    preApplyChecksum: POST,
  });
  const { encoder } = encoderWith(header);
  refused(() => encoder.writePage(lockPgno(65536), new Uint8Array(65536)), "no lock page");
});

test("snapshots: consecutive from 1, complete, checksum computed and checked", () => {
  const header = makeHeader({ commit: 3 });
  const pages = [1, 2, 3].map((pgno) => ({ pgno, data: filled(512, pgno) }));
  const sum = databaseChecksum(pages, 512);
  {
    const { encoder } = encoderWith(header);
    refused(() => encoder.writePage(2, pages[1].data), "snapshot complete");
    encoder.writePage(1, pages[0].data);
    refused(() => encoder.writePage(3, pages[2].data), "snapshot complete");
    encoder.writePage(2, pages[1].data);
    refused(() => encoder.finish(sum), "snapshot complete");
    encoder.writePage(3, pages[2].data);
    refused(() => encoder.finish(sum ^ 1n), "snapshot post-apply checksum");
    assert.equal(encoder.finish().postApplyChecksum, sum);
  }
  // Snapshots across the lock page skip it (page size 512: lock page 2,097,153 — use 65536 for size).
  const big = makeHeader({ pageSize: 65536, commit: lockPgno(65536) + 1 });
  const { encoder } = encoderWith(big);
  const zero = new Uint8Array(65536);
  for (let pgno = 1; pgno < lockPgno(65536); pgno++) encoder.writePage(pgno, zero);
  encoder.writePage(lockPgno(65536) + 1, zero);
  encoder.finish();
});

test("post-apply defaults: deletion, NoChecksum", () => {
  const deletion = makeHeader({ commit: 0, minTxid: 4n, maxTxid: 4n, preApplyChecksum: POST });
  assert.equal(decodeLtx(encodeLtx(deletion, [])).trailer.postApplyChecksum, 0x8000000000000000n);
  refused(() => encodeLtx(deletion, [], POST), "commit 0 post-apply empty");
  const noChecksum = makeHeader({ flags: 2, commit: 2, minTxid: 4n, maxTxid: 4n });
  assert.equal(
    decodeLtx(encodeLtx(noChecksum, [{ pgno: 1, data: filled(512, 1) }])).trailer.postApplyChecksum,
    0n,
  );
  refused(() => encodeLtx(noChecksum, [], POST), "no-checksum post-apply zero");
});

test("header rules are the decoder's, raised as ELTXENCODE; flag 0x1 belongs to the format", () => {
  refused(() => encodeLtx(makeHeader({ pageSize: 1000 }), []), "page size");
  refused(() => encodeLtx(makeHeader({ minTxid: 0n }), []), "min TXID non-zero");
  refused(() => encodeLtx(makeHeader({ minTxid: 3n, maxTxid: 3n }), []), "pre-apply checksum flag");
  refused(() => encodeLtx(makeHeader({ commit: -1 }), []), "commit u32");
  refused(() => encodeLtx(makeHeader({ timestamp: 1.5 }), []), "timestamp range");
  refused(() => encodeLtx(makeHeader({ nodeId: 1n << 64n }), []), "node ID u64");
  refused(() => encodeLtx(makeHeader({ flags: 1, commit: 0 }), []), "header flags");
  refused(
    () => encodeLtx(makeHeader({ flags: 1, commit: 0 }), [], undefined, { format: "v1" }),
    "header flags",
  );
  const lz4 = decodeLtx(encodeLtx(makeHeader({ commit: 0 }), [], undefined, { format: "v1-lz4" }));
  assert.equal(lz4.header.flags, 1);
  assert.equal(lz4.format, "v1-lz4");
  const { encoder } = encoderWith(makeHeader({ commit: 0 }));
  refused(() => encoder.writeHeader(makeHeader()), "header first");
  refused(() => new LtxEncoder(() => undefined).writePage(1, filled(512, 0)), "pages after header");
});

test("output comes in chunks of at most 256 KiB, each a new array", () => {
  const header = makeHeader({ pageSize: 4096, commit: 300 });
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((c) => chunks.push(c), { format: "v1" });
  encoder.writeHeader(header);
  for (let pgno = 1; pgno <= 300; pgno++) encoder.writePage(pgno, filled(4096, pgno & 0xff));
  encoder.finish();
  assert.ok(chunks.length > 4);
  assert.ok(chunks.every((c) => c.length <= 256 * 1024));
  assert.equal(new Set(chunks.map((c) => c.buffer)).size, chunks.length);
  assert.equal(decodeLtx(Buffer.concat(chunks)).pageCount, 300);
});

test("LtxStreamEncoder waits for a slow Writable; writeLtxFile is atomic", async (t) => {
  const stream = new PassThrough({ highWaterMark: 1024 });
  const received: Buffer[] = [];
  const encoder = new LtxStreamEncoder(stream);
  const header = makeHeader({ pageSize: 4096, commit: 200 });
  const done = (async () => {
    await encoder.writeHeader(header);
    for (let pgno = 1; pgno <= 200; pgno++) await encoder.writePage(pgno, filled(4096, pgno));
    await encoder.finish();
    stream.end();
  })();
  for await (const chunk of stream) {
    received.push(chunk as Buffer);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  assert.equal(decodeLtx(Buffer.concat(received)).pageCount, 200);

  const dir = tempDir(t);
  const file = path.join(dir, "0000000000000001-0000000000000001.ltx");
  const pages = [{ pgno: 1, data: filled(512, 7) }];
  const { trailer } = await writeLtxFile(file, makeHeader(), pages);
  assert.equal((await readLtxFile(file)).trailer.fileChecksum, trailer.fileChecksum);
  // A refused file leaves nothing behind, not even the temporary file.
  await assert.rejects(writeLtxFile(path.join(dir, "bad.ltx"), makeHeader({ commit: 2 }), pages), LtxError);
  assert.deepEqual(fs.readdirSync(dir), ["0000000000000001-0000000000000001.ltx"]);
});
