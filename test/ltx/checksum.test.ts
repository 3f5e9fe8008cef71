// Page and database checksums: the reference values, the vector chain 1-1 → 2-2 → 3-3, the rolling
// checksum against full recomputation, lock-page skipping, database files (chunked, header page size,
// errors), and the JS fallback (a child process with LITEFS_CRC64=js) against the WASM path.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import {
  CHECKSUM_FLAG,
  checksumDatabaseBytes,
  checksumDatabaseFile,
  databaseChecksum,
  EMPTY_DATABASE_CHECKSUM,
  lockPgno,
  pageChecksum,
  pageSizeFromHeader,
  RollingChecksum,
} from "../../src/ltx/checksum.js";
import { crc64 } from "../../src/ltx/crc64.js";
import { crc64Js } from "../../src/ltx/crc64-js.js";
import { decompressBlock } from "../../src/ltx/lz4-block.js";
import { LtxError } from "../../src/ltx/errors.js";
import { REPO_ROOT } from "../support/paths.js";

const VECTORS = path.join(REPO_ROOT, "test", "fixtures", "ltx-vectors");

function filled(n: number, byte: number): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

function patterned(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7) % 251);
}

/** FLAG | crc64(be32(pgno) ‖ page) through the plain JS CRC — the reference for the fast paths. */
function pageChecksumRef(pgno: number, page: Uint8Array): bigint {
  const buf = new Uint8Array(4 + page.length);
  new DataView(buf.buffer).setUint32(0, pgno);
  buf.set(page, 4);
  return CHECKSUM_FLAG | crc64Js(buf);
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ltx-checksum-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const hex = (v: bigint): string => v.toString(16).padStart(16, "0");

test("page checksums, database checksum and lock pages from the reference", () => {
  assert.equal(hex(pageChecksum(1, filled(512, 0))), "efb1f44fecd99000");
  assert.equal(hex(pageChecksum(1, filled(4096, 0))), "d9328f592d9e733d");
  assert.equal(hex(pageChecksum(1, filled(512, 1))), "e4e4aaa102377eee");
  assert.equal(hex(pageChecksum(2, filled(512, 2))), "c9c9554231044ddd");
  assert.equal(hex(pageChecksum(3, filled(512, 3))), "c2d2001cdfeaa333");
  assert.equal(hex(pageChecksum(1, patterned(512))), "b55b86821617ff1f");
  const pages = [1, 2, 3].map((pgno) => ({ pgno, data: filled(512, pgno) }));
  assert.equal(hex(databaseChecksum(pages, 512)), "efffffffecd99000");
  const db = new Uint8Array(1536);
  pages.forEach((p, i) => db.set(p.data, i * 512));
  assert.equal(hex(checksumDatabaseBytes(db, 512)), "efffffffecd99000");
  assert.deepEqual([512, 1024, 4096, 65536].map(lockPgno), [2097153, 1048577, 262145, 16385]);
  assert.equal(CHECKSUM_FLAG, 0x8000000000000000n);
  assert.equal(EMPTY_DATABASE_CHECKSUM, 0x8000000000000000n);
  assert.equal(databaseChecksum([], 4096), EMPTY_DATABASE_CHECKSUM);
  assert.equal(checksumDatabaseBytes(new Uint8Array(0), 4096), EMPTY_DATABASE_CHECKSUM);
});

interface VectorFile {
  commit: number;
  preApply: bigint;
  postApply: bigint;
  pages: { pgno: number; data: Uint8Array }[];
}

/** Just enough of a v3 reader for this test: frames of LZ4 blocks, then the trailer. */
function readV3(name: string): VectorFile {
  const buf = fs.readFileSync(path.join(VECTORS, name));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const pageSize = view.getUint32(8);
  const pages: VectorFile["pages"] = [];
  for (let off = 100; ;) {
    const pgno = view.getUint32(off);
    if (pgno === 0) break;
    const size = view.getUint32(off + 6);
    const data = new Uint8Array(pageSize);
    assert.equal(decompressBlock(buf.subarray(off + 10, off + 10 + size), data), pageSize);
    pages.push({ pgno, data });
    off += 10 + size;
  }
  return {
    commit: view.getUint32(12),
    preApply: view.getBigUint64(40),
    postApply: view.getBigUint64(buf.length - 16),
    pages,
  };
}

test("the vector chain walks the rolling checksum 8000… → a172… → d3e4… → 8000…", () => {
  const db = new Map<number, Uint8Array>();
  const rolling = new RollingChecksum();
  assert.equal(rolling.value, EMPTY_DATABASE_CHECKSUM);
  const names = [
    "0000000000000001-0000000000000001.ltx",
    "0000000000000002-0000000000000002.ltx",
    "0000000000000003-0000000000000003.ltx",
  ];
  const seen: string[] = [hex(rolling.value)];
  for (const name of names) {
    const file = readV3(name);
    if (file.preApply !== 0n) assert.equal(file.preApply, rolling.value, `${name} pre-apply`);
    for (const { pgno, data } of file.pages) {
      const old = db.get(pgno);
      rolling.replace(old && pageChecksum(pgno, old), pageChecksum(pgno, data));
      db.set(pgno, data);
    }
    for (const [pgno, data] of db) {
      if (pgno > file.commit) {
        rolling.replace(pageChecksum(pgno, data), undefined);
        db.delete(pgno);
      }
    }
    assert.equal(rolling.value, file.postApply, `${name} post-apply`);
    const recomputed = databaseChecksum(
      [...db].map(([pgno, data]) => ({ pgno, data })),
      512,
    );
    assert.equal(recomputed, file.postApply, `${name} recomputed`);
    seen.push(hex(rolling.value));
  }
  assert.deepEqual(seen, ["8000000000000000", "a17215b615a8a47b", "d3e43abaed51b58a", "8000000000000000"]);
});

test("rolling checksum == full recomputation == naive reference after random writes and truncations", () => {
  const pageSize = 512;
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("write" as const),
      pgno: fc.integer({ min: 1, max: 40 }),
      seed: fc.nat(255),
    }),
    fc.record({ kind: fc.constant("truncate" as const), commit: fc.integer({ min: 0, max: 40 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60, size: "max" }), (ops) => {
      const db = new Map<number, Uint8Array>();
      const rolling = new RollingChecksum();
      for (const o of ops) {
        if (o.kind === "write") {
          const data = Uint8Array.from({ length: pageSize }, (_, i) => (i * o.seed + o.pgno) & 0xff);
          const old = db.get(o.pgno);
          rolling.replace(old && pageChecksum(o.pgno, old), pageChecksum(o.pgno, data));
          db.set(o.pgno, data);
        } else {
          for (const [pgno, data] of db) {
            if (pgno > o.commit) {
              rolling.replace(pageChecksum(pgno, data), undefined);
              db.delete(pgno);
            }
          }
        }
      }
      const pages = [...db].map(([pgno, data]) => ({ pgno, data }));
      let naive = 0n;
      for (const p of pages) naive ^= pageChecksumRef(p.pgno, p.data);
      assert.equal(rolling.value, CHECKSUM_FLAG | naive);
      assert.equal(databaseChecksum(pages, pageSize), rolling.value);
      assert.equal(databaseChecksum(pages.reverse(), pageSize), rolling.value, "order does not matter");
      const max = Math.max(0, ...db.keys());
      if (db.size === max) {
        const image = new Uint8Array(max * pageSize);
        for (const [pgno, data] of db) image.set(data, (pgno - 1) * pageSize);
        assert.equal(checksumDatabaseBytes(image, pageSize), rolling.value);
      }
    }),
    { numRuns: 200 },
  );
});

test("page checksums of every page size match the naive reference (WASM batches and single pages)", () => {
  for (const pageSize of [512, 1024, 4096, 65536]) {
    const count = Math.max(3, Math.floor((3 << 20) / pageSize)); // several 4-page groups plus a remainder
    const pages = Array.from({ length: count }, (_, i) => ({
      pgno: i + 1,
      data: Uint8Array.from({ length: pageSize }, (_, j) => (j * 31 + i * 17 + (j >> 9)) & 0xff),
    }));
    let naive = 0n;
    for (const p of pages) naive ^= pageChecksumRef(p.pgno, p.data);
    assert.equal(databaseChecksum(pages, pageSize), CHECKSUM_FLAG | naive, `databaseChecksum ${pageSize}`);
    assert.equal(pageChecksum(pages[2].pgno, pages[2].data), pageChecksumRef(pages[2].pgno, pages[2].data));
  }
});

test("the lock page is skipped, inside a run of consecutive pages too", () => {
  const pageSize = 65536;
  const lock = lockPgno(pageSize);
  const pages = [lock - 2, lock - 1, lock, lock + 1, lock + 2].map((pgno) => ({
    pgno,
    data: filled(pageSize, pgno),
  }));
  const withoutLock = pages.filter((p) => p.pgno !== lock);
  let naive = 0n;
  for (const p of withoutLock) naive ^= pageChecksumRef(p.pgno, p.data);
  assert.equal(databaseChecksum(pages, pageSize), CHECKSUM_FLAG | naive);
  assert.equal(databaseChecksum(withoutLock, pageSize), CHECKSUM_FLAG | naive);
});

test("an iterable that computes CRCs itself between pages does not disturb the batch", () => {
  const pageSize = 4096;
  function* pages(): Generator<{ pgno: number; data: Uint8Array }> {
    for (let pgno = 1; pgno <= 40; pgno++) {
      crc64(filled(100_000, pgno)); // uses the shared WASM instance
      yield { pgno, data: filled(pageSize, pgno * 3) };
    }
  }
  let naive = 0n;
  for (let pgno = 1; pgno <= 40; pgno++) naive ^= pageChecksumRef(pgno, filled(pageSize, pgno * 3));
  assert.equal(databaseChecksum(pages(), pageSize), CHECKSUM_FLAG | naive);
});

test("bad arguments are refused", () => {
  assert.throws(() => databaseChecksum([{ pgno: 1, data: new Uint8Array(100) }], 512), RangeError);
  assert.throws(() => databaseChecksum([{ pgno: 0, data: new Uint8Array(512) }], 512), RangeError);
  assert.throws(() => databaseChecksum([], 1000), RangeError);
  assert.throws(() => pageChecksum(-1, new Uint8Array(512)), RangeError);
  assert.throws(() => new RollingChecksum(-1n), RangeError);
  assert.throws(
    () => checksumDatabaseBytes(new Uint8Array(700), 512),
    (err: unknown) => err instanceof LtxError && err.code === "ELTXTRUNCATED" && err.offset === 512,
  );
});

/** A database image whose header says `pageSize` (SQLite stores 65536 as 1). */
function databaseImage(pageSize: number, pages: number): Uint8Array {
  const image = new Uint8Array(pageSize * pages);
  for (let i = 0; i < image.length; i += 4096) image[i] = (i / 4096) & 0xff;
  for (let i = 0; i < image.length; i += 997) image[i] ^= 0x5a;
  image.set(new TextEncoder().encode("SQLite format 3\0"), 0);
  image[16] = pageSize === 65536 ? 0 : pageSize >> 8;
  image[17] = pageSize === 65536 ? 1 : pageSize & 0xff;
  return image;
}

test("database files: chunked reads agree with the in-memory checksum; page size from the header", async (t) => {
  const dir = tempDir(t);
  for (const [pageSize, pages] of [
    [4096, 2600], // ~10 MiB: three 4 MiB chunks, the last one partial
    [65536, 70],
    [512, 3],
  ] as const) {
    const image = databaseImage(pageSize, pages);
    const file = path.join(dir, `db-${pageSize}`);
    fs.writeFileSync(file, image);
    assert.equal(pageSizeFromHeader(image), pageSize);
    const expected = checksumDatabaseBytes(image, pageSize);
    assert.equal(await checksumDatabaseFile(file), expected, `header page size ${pageSize}`);
    assert.equal(await checksumDatabaseFile(file, pageSize), expected, `given page size ${pageSize}`);
  }
  // Several at once: each takes its own WASM instances.
  const file = path.join(dir, "db-4096");
  const expected = checksumDatabaseBytes(fs.readFileSync(file), 4096);
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => checksumDatabaseFile(file)));
  assert.deepEqual(results, [expected, expected, expected, expected, expected]);
});

test("database files: empty, partial page, no header, bad header page size", async (t) => {
  const dir = tempDir(t);
  const empty = path.join(dir, "empty");
  fs.writeFileSync(empty, new Uint8Array(0));
  assert.equal(await checksumDatabaseFile(empty), EMPTY_DATABASE_CHECKSUM);

  const partial = path.join(dir, "partial");
  fs.writeFileSync(partial, databaseImage(4096, 3).subarray(0, 4096 * 2 + 10));
  await assert.rejects(checksumDatabaseFile(partial), (err: unknown) => {
    return (
      err instanceof LtxError && err.code === "ELTXTRUNCATED" && err.file === partial && err.offset === 8192
    );
  });

  const tiny = path.join(dir, "tiny");
  fs.writeFileSync(tiny, new Uint8Array(50));
  await assert.rejects(
    checksumDatabaseFile(tiny),
    (err: unknown) => err instanceof LtxError && err.code === "ELTXTRUNCATED",
  );
  assert.equal(await checksumDatabaseFile(tiny, 512).catch((e: LtxError) => e.code), "ELTXTRUNCATED");

  const badHeader = path.join(dir, "bad-header");
  const image = databaseImage(4096, 2);
  image[16] = 0x03; // 0x0300 = 768, not a power of two
  image[17] = 0x00;
  fs.writeFileSync(badHeader, image);
  await assert.rejects(checksumDatabaseFile(badHeader), (err: unknown) => {
    return err instanceof LtxError && err.code === "ELTXHEADER" && err.offset === 16;
  });
  await assert.rejects(checksumDatabaseFile(path.join(dir, "missing")), { code: "ENOENT" });
});

test("the JS fallback (LITEFS_CRC64=js, no WebAssembly) gives the same results", (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "db");
  const image = databaseImage(4096, 1100); // > one 4 MiB chunk
  fs.writeFileSync(file, image);
  const script = `
    const c = await import(${JSON.stringify(new URL("../../src/ltx/checksum.js", import.meta.url).href)});
    const w = await import(${JSON.stringify(new URL("../../src/ltx/crc64-wasm.js", import.meta.url).href)});
    const k = await import(${JSON.stringify(new URL("../../src/ltx/crc64.js", import.meta.url).href)});
    const fs = await import("node:fs");
    const image = fs.readFileSync(${JSON.stringify(file)});
    const pages = [];
    for (let i = 0; i < 50; i++) pages.push({ pgno: i + 1, data: image.subarray(i * 4096, (i + 1) * 4096) });
    console.log(JSON.stringify({
      wasm: w.wasmCrc64Available,
      crc: k.crc64(image).toString(16),
      page: c.pageChecksum(7, image.subarray(0, 4096)).toString(16),
      pages: c.databaseChecksum(pages, 4096).toString(16),
      bytes: c.checksumDatabaseBytes(image, 4096).toString(16),
      file: (await c.checksumDatabaseFile(${JSON.stringify(file)})).toString(16),
    }));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, LITEFS_CRC64: "js" },
    encoding: "utf8",
  });
  const js = JSON.parse(out) as Record<string, unknown>;
  const pages = Array.from({ length: 50 }, (_, i) => ({
    pgno: i + 1,
    data: image.subarray(i * 4096, (i + 1) * 4096),
  }));
  assert.deepEqual(js, {
    wasm: false,
    crc: crc64(image).toString(16),
    page: pageChecksum(7, image.subarray(0, 4096)).toString(16),
    pages: databaseChecksum(pages, 4096).toString(16),
    bytes: checksumDatabaseBytes(image, 4096).toString(16),
    file: checksumDatabaseBytes(image, 4096).toString(16),
  });
});
