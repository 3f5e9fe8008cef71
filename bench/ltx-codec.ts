// Throughput of the LTX file codec on a database-sized page set, beside native baselines measured in
// the same run over the same bytes:
//   encode / decode of v3 (per-page LZ4 blocks + index), v1 (raw pages) and v1-lz4 (one LZ4 frame),
//   decode through the async streaming LtxDecoder, the snapshot's rolling checksum;
//   baselines: zlib.crc32 (native CRC-32), zlib deflateRaw level 1 and inflateRaw (native codec).
// Goal (issue): decode ≥ 500 MB/s.
//
//   node dist/bench/ltx-codec.js [--mib 256] [--repeat 3] [--page 4096]
//
// MB/s = 10^6 bytes of page data per second; every figure is the best of --repeat runs.

import * as zlib from "node:zlib";
import { databaseChecksum } from "../src/ltx/checksum.js";
import { LtxDecoder } from "../src/ltx/decoder.js";
import { LtxEncoder } from "../src/ltx/encoder.js";
import type { LtxWriteFormat } from "../src/ltx/format.js";
import type { Header } from "../src/ltx/header.js";
import { compressBlock, decompressBlock } from "../src/ltx/lz4-block.js";
import { LtxParser, NEED_INPUT } from "../src/ltx/parser.js";

interface Options {
  mib: number;
  repeat: number;
  page: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { mib: 256, repeat: 3, page: 4096 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!(value > 0))
      throw new Error(`usage: node dist/bench/ltx-codec.js [--mib N] [--repeat N] [--page N]`);
    if (argv[i] === "--mib") options.mib = value;
    else if (argv[i] === "--repeat") options.repeat = value;
    else if (argv[i] === "--page") options.page = value;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return options;
}

/**
 * Pages like a SQLite table's: a header, records of text and numbers from a small vocabulary growing
 * from the end, and free space (zeros) in between — they compress about 2-4×, as real databases do.
 */
function databasePages(count: number, pageSize: number): Uint8Array[] {
  const words = [
    "alice",
    "bob",
    "carol",
    "order",
    "invoice",
    "pending",
    "shipped",
    "2024-05-",
    "EUR",
    "note: ",
  ];
  let state = 12345;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 8;
  };
  const pages: Uint8Array[] = [];
  const backing = new Uint8Array(count * pageSize);
  for (let p = 0; p < count; p++) {
    const page = backing.subarray(p * pageSize, (p + 1) * pageSize);
    page[0] = 0x0d;
    const fill = 0.3 + (next() % 60) / 100; // 30-90 % used
    let at = pageSize;
    while (at > pageSize * (1 - fill)) {
      const word = words[next() % words.length] + String(next() % 100000);
      const start = at - word.length - 6;
      if (start < 16) break;
      for (let i = 0; i < word.length; i++) page[start + i] = word.charCodeAt(i);
      page[start + word.length] = next() & 0xff;
      page[start + word.length + 1] = next() & 0xff;
      at = start;
    }
    pages.push(page);
  }
  return pages;
}

function best(repeat: number, bytes: number, run: () => void): number {
  let fastest = Infinity;
  for (let r = 0; r < repeat; r++) {
    const start = process.hrtime.bigint();
    run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    fastest = Math.min(fastest, seconds);
  }
  return bytes / fastest / 1e6;
}

async function bestAsync(repeat: number, bytes: number, run: () => Promise<void>): Promise<number> {
  let fastest = Infinity;
  for (let r = 0; r < repeat; r++) {
    const start = process.hrtime.bigint();
    await run();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return bytes / fastest / 1e6;
}

function encode(
  header: Header,
  pages: Uint8Array[],
  format: LtxWriteFormat,
  postApply?: bigint,
): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((chunk) => chunks.push(chunk), { format });
  encoder.writeHeader(header);
  for (let i = 0; i < pages.length; i++) encoder.writePage(i + 1, pages[i]);
  encoder.finish(postApply);
  return chunks;
}

function decode(chunks: Uint8Array[]): number {
  const parser = new LtxParser();
  let next = 0;
  let pages = 0;
  for (;;) {
    const event = parser.next();
    if (event === NEED_INPUT) {
      if (next < chunks.length) parser.push(chunks[next++]);
      else parser.end();
      continue;
    }
    if (event === undefined) return pages;
    if (event.kind === "page") pages++;
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const pageSize = options.page;
  const count = Math.floor((options.mib * 1048576) / pageSize);
  const bytes = count * pageSize;
  const pages = databasePages(count, pageSize);
  const all = new Uint8Array(pages[0].buffer, 0, bytes);
  const header: Header = {
    flags: 0, pageSize, commit: count, minTxid: 1n, maxTxid: 1n, timestamp: 0, preApplyChecksum: 0n,
    walOffset: 0, walSize: 0, walSalt1: 0, walSalt2: 0, nodeId: 0n,
  }; // prettier-ignore
  process.stdout.write(
    `LTX codec: ${count} pages of ${pageSize} bytes (${options.mib} MiB), best of ${options.repeat}\n\n`,
  );

  const rows: Array<[string, number, string]> = [];
  const MIB = 1 << 20;
  const crc32 = best(options.repeat, bytes, () => {
    for (let at = 0; at < bytes; at += MIB) zlib.crc32(all.subarray(at, at + MIB));
  });
  let deflated: Buffer[] = [];
  const deflate = best(options.repeat, bytes, () => {
    deflated = [];
    for (let at = 0; at < bytes; at += MIB)
      deflated.push(zlib.deflateRawSync(all.subarray(at, at + MIB), { level: 1 }));
  });
  const inflate = best(options.repeat, bytes, () => {
    for (const d of deflated) zlib.inflateRawSync(d);
  });
  const deflatedBytes = deflated.reduce((n, d) => n + d.length, 0);
  rows.push(["baseline: zlib.crc32 (native)", crc32, ""]);
  rows.push([
    "baseline: zlib deflateRaw level 1 (1 MiB chunks)",
    deflate,
    `ratio ${(bytes / deflatedBytes).toFixed(2)}`,
  ]);
  rows.push(["baseline: zlib inflateRaw", inflate, ""]);

  // What v3 decoding cannot beat: LZ4 block decompression of every page on its own.
  const blocks = pages.map((page) => compressBlock(page));
  const scratch = new Uint8Array(pageSize);
  const lz4 = best(options.repeat, bytes, () => {
    for (const block of blocks) decompressBlock(block, scratch);
  });
  rows.push(["bound: lz4 decompressBlock alone, per page", lz4, `${(lz4 / inflate).toFixed(2)}× inflate`]);

  const checksum = best(options.repeat, bytes, () => {
    databaseChecksum(
      pages.map((data, i) => ({ pgno: i + 1, data })),
      pageSize,
    );
  });
  rows.push([
    "rolling checksum of the pages (snapshot post-apply)",
    checksum,
    `${(checksum / crc32).toFixed(2)}× crc32`,
  ]);

  for (const format of ["v3", "v1", "v1-lz4"] as LtxWriteFormat[]) {
    let chunks: Uint8Array[] = [];
    const enc = best(options.repeat, bytes, () => {
      chunks = encode(header, pages, format);
    });
    const size = chunks.reduce((n, c) => n + c.length, 0);
    rows.push([
      `encode ${format}`,
      enc,
      `${(enc / deflate).toFixed(2)}× deflate; file ${(size / MIB).toFixed(1)} MiB`,
    ]);
    const dec = best(options.repeat, bytes, () => {
      if (decode(chunks) !== count) throw new Error("decode lost pages");
    });
    rows.push([
      `decode ${format} (verify everything)`,
      dec,
      `${(dec / inflate).toFixed(2)}× inflate` +
        (format === "v3" ? `, ${(dec / lz4).toFixed(2)}× lz4 alone` : ""),
    ]);
    if (format === "v3") {
      // The same pages as a non-snapshot file: no rolling checksum to recompute while decoding.
      const incremental = encode(
        { ...header, minTxid: 2n, maxTxid: 2n, preApplyChecksum: 1n << 63n },
        pages,
        format,
        1n << 63n,
      );
      const inc = best(options.repeat, bytes, () => {
        if (decode(incremental) !== count) throw new Error("decode lost pages");
      });
      rows.push([
        `decode v3, not a snapshot (no rolling checksum)`,
        inc,
        `${(inc / inflate).toFixed(2)}× inflate, ${(inc / lz4).toFixed(2)}× lz4 alone`,
      ]);
      const stream = await bestAsync(options.repeat, bytes, async () => {
        const decoder = new LtxDecoder(chunks);
        await decoder.finish();
      });
      rows.push([`decode v3 via async LtxDecoder`, stream, `${(stream / inflate).toFixed(2)}× inflate`]);
    }
  }

  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [name, mbs, note] of rows) {
    process.stdout.write(`${name.padEnd(width)}  ${mbs.toFixed(0).padStart(6)} MB/s  ${note}\n`);
  }
}

await main();
