// Properties over random page sets and random transaction chains, checked against naive models:
//   - encode → decode is the identity (every format, any chunking);
//   - compacting any contiguous run of a chain, then applying, equals applying file by file, and
//     equals the in-memory model of the database;
//   - the checksum apply maintains page by page equals recomputing it from the database file.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import {
  applyLtxFiles,
  checksumDatabaseFile,
  compactLtxFiles,
  databaseChecksum,
  decodeLtx,
  EMPTY_DATABASE_CHECKSUM,
  encodeLtx,
  formatFileName,
  LtxDecoder,
  readLtxFile,
  type Header,
  type LtxWriteFormat,
} from "../../src/ltx/index.js";
import { makeHeader, tempDir } from "./ltx-fixtures.js";

const FORMATS: LtxWriteFormat[] = ["v3", "v1", "v1-lz4"];

/** Pages that compress well, badly, or not at all. */
function arbPage(pageSize: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.nat(255).map((v) => new Uint8Array(pageSize).fill(v)),
    fc.uint8Array({ minLength: pageSize, maxLength: pageSize }),
    fc
      .tuple(fc.nat(255), fc.array(fc.tuple(fc.nat(pageSize - 1), fc.nat(255)), { maxLength: 20 }))
      .map(([fill, pokes]) => {
        const page = new Uint8Array(pageSize).fill(fill);
        for (const [at, v] of pokes) page[at] = v;
        return page;
      }),
  );
}

test("encode → decode is the identity over random page sets", () => {
  const arbFile = fc
    .record({
      pageSize: fc.constantFrom(512, 1024, 4096),
      commit: fc.integer({ min: 1, max: 60 }),
      minTxid: fc.bigInt({ min: 2n, max: 1000n }),
      span: fc.bigInt({ min: 0n, max: 5n }),
      timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
      noChecksum: fc.boolean(),
      format: fc.constantFrom(...FORMATS),
      chunk: fc.integer({ min: 1, max: 5000 }),
    })
    .chain((r) =>
      fc.record({
        r: fc.constant(r),
        pages: fc
          .uniqueArray(fc.integer({ min: 1, max: r.commit }), { maxLength: Math.min(r.commit, 25) })
          .chain((pgnos) =>
            fc.tuple(
              ...pgnos
                .sort((a, b) => a - b)
                .map((pgno) => arbPage(r.pageSize).map((data) => ({ pgno, data }))),
            ),
          ),
      }),
    );
  fc.assert(
    fc.property(arbFile, ({ r, pages }) => {
      const header: Header = makeHeader({
        pageSize: r.pageSize,
        commit: r.commit,
        minTxid: r.minTxid,
        maxTxid: r.minTxid + r.span,
        timestamp: r.timestamp,
        flags: r.noChecksum ? 2 : 0,
        preApplyChecksum: r.noChecksum ? 0n : 0x8000000000000000n | BigInt(r.commit),
      });
      const post = r.noChecksum ? 0n : 0x8000000000000000n | BigInt(pages.length);
      const bytes = encodeLtx(header, pages, post, { format: r.format });
      const decoded = decodeLtx(bytes, { canonicalLz4: true });
      assert.equal(decoded.format, r.format);
      assert.deepEqual(decoded.header, { ...header, flags: header.flags | (r.format === "v1-lz4" ? 1 : 0) });
      assert.deepEqual(
        decoded.pages.map((p) => [p.pgno, p.data]),
        pages.map((p) => [p.pgno, p.data]),
      );
      assert.equal(decoded.trailer.postApplyChecksum, post);
      assert.deepEqual(encodeLtx(decoded.header, decoded.pages, post, { format: r.format }), bytes);
      return true;
    }),
    { numRuns: 150 },
  );
});

test("streaming decode in random chunks equals whole decode", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...FORMATS),
      fc.array(arbPage(512), { minLength: 1, maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 10 }),
      async (format, datas, sizes) => {
        const pages = datas.map((data, i) => ({ pgno: i + 1, data }));
        const bytes = encodeLtx(makeHeader({ commit: pages.length }), pages, undefined, { format });
        const chunks: Uint8Array[] = [];
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const n = sizes[i % sizes.length];
          chunks.push(bytes.subarray(at, at + n));
          at += n;
        }
        const streamed = async (options: { format?: "v1" } = {}): Promise<unknown[]> => {
          const decoder = new LtxDecoder(chunks, options);
          await decoder.readHeader();
          const got = [];
          try {
            for await (const page of decoder.pages()) got.push(page);
          } catch (err) {
            // A v1 page starting `00 01` reads like a v3 frame (src/ltx/format.ts): detection says it
            // is not sure, and a streaming caller retries as v1, as whole-file readers do by themselves.
            if (format !== "v1" || decoder.formatCertain || options.format !== undefined) throw err;
            return streamed({ format: "v1" });
          }
          return got;
        };
        assert.deepEqual(await streamed(), decodeLtx(bytes).pages);
      },
    ),
    { numRuns: 60 },
  );
});

test("streaming decode of a v1 file that looks like v3: the first frame settles it", async () => {
  // Found by the property above (seed 2113882674): page 1 starts `00 01`, like a v3 frame's flags.
  // Until detection looked at the whole first frame, the streaming decoder guessed v3 and failed.
  const first = new Uint8Array(512);
  first[1] = 1;
  const pages = [
    { pgno: 1, data: first },
    { pgno: 2, data: new Uint8Array(512) },
  ];
  const bytes = encodeLtx(makeHeader({ commit: 2 }), pages, undefined, { format: "v1" });
  const streamed = new LtxDecoder([bytes]);
  await streamed.readHeader();
  assert.deepEqual([streamed.format, streamed.formatCertain], ["v1", true]);
  const got = [];
  for await (const page of streamed.pages()) got.push(page);
  assert.deepEqual(got, decodeLtx(bytes).pages);
  assert.deepEqual(
    got.map((p) => p.pgno),
    [1, 2],
  );
});

/** A naive database: page number → contents, and its size in pages. */
interface Model {
  pages: Map<number, Uint8Array>;
  commit: number;
}

function modelChecksum(model: Model, pageSize: number): bigint {
  if (model.commit === 0) return EMPTY_DATABASE_CHECKSUM;
  return databaseChecksum(
    [...model.pages].map(([pgno, data]) => ({ pgno, data })),
    pageSize,
  );
}

function modelBytes(model: Model, pageSize: number): Buffer {
  return Buffer.concat(
    Array.from({ length: model.commit }, (_, i) => model.pages.get(i + 1) ?? new Uint8Array(pageSize)),
  );
}

interface Txn {
  commit: number;
  writes: Array<{ pgno: number; data: Uint8Array }>;
}

const PAGE = 512;

/** Page 1 keeps a SQLite header (magic and page size): apply reads the page size from it. */
function withSqliteHeader(
  writes: Array<{ pgno: number; data: Uint8Array }>,
): Array<{ pgno: number; data: Uint8Array }> {
  return writes.map(({ pgno, data }) => {
    if (pgno !== 1) return { pgno, data };
    const page = new Uint8Array(data);
    page.set(Buffer.from("SQLite format 3\0", "latin1"));
    page[16] = PAGE >> 8;
    page[17] = PAGE & 0xff;
    return { pgno, data: page };
  });
}

/** A snapshot followed by transactions that change, add and remove pages (and sometimes delete all). */
const arbChain = fc
  .tuple(
    fc.integer({ min: 1, max: 12 }),
    fc.array(fc.tuple(fc.integer({ min: -4, max: 4 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 6 })), {
      minLength: 1,
      maxLength: 7,
    }),
  )
  .chain(([firstCommit, steps]) => {
    const txns: Array<fc.Arbitrary<Txn>> = [];
    let commit = firstCommit;
    txns.push(
      fc.tuple(...Array.from({ length: commit }, () => arbPage(PAGE))).map((datas) => ({
        commit: firstCommit,
        writes: withSqliteHeader(datas.map((data, i) => ({ pgno: i + 1, data }))),
      })),
    );
    for (const [delta, deleteAll, picks] of steps) {
      const previous = commit;
      commit = deleteAll && previous > 0 && delta < -2 ? 0 : Math.max(1, previous + delta);
      const grown = Array.from({ length: Math.max(0, commit - previous) }, (_, i) => previous + i + 1);
      const touched =
        commit === 0
          ? []
          : [...new Set([...grown, ...picks.map((p) => (p % commit) + 1)])].sort((a, b) => a - b);
      const c = commit;
      txns.push(
        fc.tuple(...touched.map(() => arbPage(PAGE))).map((datas) => ({
          commit: c,
          writes: withSqliteHeader(datas.map((data, i) => ({ pgno: touched[i], data }))),
        })),
      );
    }
    return fc.tuple(
      fc.tuple(...txns),
      fc.array(fc.constantFrom(...FORMATS), { minLength: txns.length, maxLength: txns.length }),
      fc.nat(),
      fc.nat(),
    );
  });

test("compacting a chain equals applying it file by file, and the model", async (t) => {
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(arbChain, fc.constantFrom(...FORMATS), async ([txns, formats, a, b], outFormat) => {
      const runDir = path.join(dir, String(run++));
      fs.mkdirSync(runDir);
      // Write the chain as LTX files, checksums from the model.
      const model: Model = { pages: new Map(), commit: 0 };
      const files: string[] = [];
      const states: Model[] = [];
      for (const [i, txn] of txns.entries()) {
        const txid = BigInt(i + 1);
        const pre = i === 0 ? 0n : modelChecksum(model, PAGE);
        for (const { pgno, data } of txn.writes) model.pages.set(pgno, data);
        for (const pgno of [...model.pages.keys()]) if (pgno > txn.commit) model.pages.delete(pgno);
        model.commit = txn.commit;
        const header = makeHeader({
          commit: txn.commit,
          minTxid: txid,
          maxTxid: txid,
          preApplyChecksum: pre,
          timestamp: i,
        });
        const file = path.join(runDir, formatFileName(txid, txid));
        fs.writeFileSync(
          file,
          encodeLtx(header, txn.writes, modelChecksum(model, PAGE), { format: formats[i] }),
        );
        files.push(file);
        states.push({ pages: new Map(model.pages), commit: model.commit });
      }

      // File by file: the database matches the model after every step, and so does its checksum.
      const stepDb = path.join(runDir, "step.db");
      for (const [i, file] of files.entries()) {
        const result = await applyLtxFiles(stepDb, [file]);
        assert.deepEqual(fs.readFileSync(stepDb), modelBytes(states[i], PAGE));
        assert.equal(result.position.checksum, modelChecksum(states[i], PAGE));
        assert.equal(await checksumDatabaseFile(stepDb, PAGE), result.position.checksum);
      }

      // Files before a compacted run are applied as they are; the run [from..to] as one file.
      const from = a % files.length;
      const to = from + (b % (files.length - from));
      const compacted = path.join(runDir, "compacted.ltx");
      const result = await compactLtxFiles(files.slice(from, to + 1), compacted, { format: outFormat });
      const decoded = await readLtxFile(compacted);
      assert.equal(decoded.header.minTxid, BigInt(from + 1));
      assert.equal(decoded.header.maxTxid, BigInt(to + 1));
      assert.equal(decoded.trailer.postApplyChecksum, modelChecksum(states[to], PAGE));
      assert.equal(result.pageCount, decoded.pageCount);
      const compactDb = path.join(runDir, "compact.db");
      const applied = await applyLtxFiles(compactDb, [...files.slice(0, from), compacted]);
      assert.deepEqual(fs.readFileSync(compactDb), modelBytes(states[to], PAGE));
      assert.equal(applied.position.txid, BigInt(to + 1));
      fs.rmSync(runDir, { recursive: true });
    }),
    { numRuns: 40 },
  );
});
