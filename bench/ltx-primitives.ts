// Speed of the LTX primitives, side by side with native baselines over the same bytes in the same run:
//   CRC-64/GO-ISO (WASM, JS, per 4 KiB page) vs zlib.crc32 (native CRC-32);
//   the database checksum over a page set (pages_xor batches, the per-page rolling path, a file);
//   LZ4 blocks per 4 KiB page (the v3 LTX path) vs zlib deflateRaw level 1 / inflateRaw;
//   LZ4 frames (the v1 LTX path) and xxh32.
// Goals (issue): database checksum ≥ 1 GB/s; LZ4 block decode ≥ 500 MB/s.
//
//   node dist/bench/ltx-primitives.js [--mib 256] [--repeat 3]
//
// Every figure is the best of --repeat runs, in MB/s (10^6 bytes per second) of input processed.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { crc64, Crc64Hash, WASM_MIN_BYTES } from "../src/ltx/crc64.js";
import { absorbBytes, crc64Js } from "../src/ltx/crc64-js.js";
import { absorbBytesWasm, crc64Wasm, wasmCrc64Available } from "../src/ltx/crc64-wasm.js";
import {
  checksumDatabaseBytes,
  checksumDatabaseFile,
  databaseChecksum,
  pageChecksum,
  RollingChecksum,
} from "../src/ltx/checksum.js";
import { compressBlockBound, compressBlockInto, decompressBlock } from "../src/ltx/lz4-block.js";
import { lz4FrameCompress, lz4FrameDecompress } from "../src/ltx/lz4-frame.js";
import { xxh32 } from "../src/ltx/xxh32.js";

interface Options {
  mib: number;
  repeat: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { mib: 256, repeat: 3 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (argv[i] === "--mib" && value > 0) options.mib = value;
    else if (argv[i] === "--repeat" && value > 0) options.repeat = value;
    else throw new Error(`usage: node dist/bench/ltx-primitives.js [--mib N] [--repeat N] (at ${argv[i]})`);
    i++;
  }
  return options;
}

const PAGE = 4096;

/** Pages that look like SQLite b-tree pages: records from a small vocabulary, then free space (zeros). */
function sqliteLikePages(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const words = [
    "alice",
    "bob",
    "carol",
    "order",
    "invoice",
    "pending",
    "shipped",
    "2024-05-",
    "user_",
    "@example.com",
  ];
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const encoder = new TextEncoder();
  for (let page = 0; page < bytes; page += PAGE) {
    out[page] = 0x0d; // leaf table page
    const used = PAGE * (0.5 + (next() % 40) / 100);
    let at = page + PAGE - 1;
    while (at > page + PAGE - used) {
      const record = `${words[next() % words.length]}${next() % 100000}|${words[next() % words.length]}|${next() % 1000}`;
      const bytesOf = encoder.encode(record);
      at -= bytesOf.length + 4;
      if (at < page + 16) break;
      out.set(bytesOf, at);
      out[at + bytesOf.length] = next() & 0xff; // varints/header bytes of the cell
    }
  }
  return out;
}

function best(repeat: number, fn: () => void): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let r = 0; r < repeat; r++) {
    const start = process.hrtime.bigint();
    fn();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return fastest;
}

async function bestAsync(repeat: number, fn: () => Promise<unknown>): Promise<number> {
  let fastest = Number.POSITIVE_INFINITY;
  for (let r = 0; r < repeat; r++) {
    const start = process.hrtime.bigint();
    await fn();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return fastest;
}

/** Prints one figure; `note` may depend on the figure (e.g. a ratio to a baseline). */
function report(
  name: string,
  bytes: number,
  seconds: number,
  note: string | ((mbps: number) => string) = "",
): number {
  const mbps = bytes / 1e6 / seconds;
  const text = typeof note === "function" ? note(mbps) : note;
  console.log(`${name.padEnd(58)} ${mbps.toFixed(0).padStart(6)} MB/s  ${text}`);
  return mbps;
}

async function main(): Promise<void> {
  const { mib, repeat } = parseOptions(process.argv.slice(2));
  const bytes = mib << 20;
  console.log(
    `LTX primitives — Node ${process.version}, ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}`,
  );
  console.log(
    `page set ${mib} MiB of ${PAGE}-byte SQLite-like pages; best of ${repeat}; WASM: ${wasmCrc64Available}\n`,
  );
  const data = sqliteLikePages(bytes, 12345);
  const pages = Array.from({ length: bytes / PAGE }, (_, i) => ({
    pgno: i + 1,
    data: data.subarray(i * PAGE, (i + 1) * PAGE),
  }));

  // --- CRC ---
  const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  let native = Number.NaN;
  if (zlibCrc32 !== undefined) {
    native = report(
      "zlib.crc32 (native CRC-32), one buffer",
      bytes,
      best(repeat, () => zlibCrc32(data)),
      "baseline",
    );
  } else {
    console.log("zlib.crc32 is not in this Node; no native CRC baseline");
  }
  const vsNative = (mbps: number): string =>
    Number.isNaN(native) ? "" : `${(mbps / native).toFixed(2)} × zlib.crc32`;
  const wasm = report(
    "crc64 WASM, one buffer",
    bytes,
    best(repeat, () => crc64Wasm(data)),
    vsNative,
  );
  const js = report(
    "crc64 JS, one buffer",
    bytes,
    best(repeat, () => crc64Js(data)),
    vsNative,
  );
  let nativePerPage = Number.NaN;
  if (zlibCrc32 !== undefined) {
    const seconds = best(repeat, () => {
      let c = 0;
      for (const p of pages) c = zlibCrc32(p.data, c);
    });
    nativePerPage = report("zlib.crc32 per 4 KiB page", bytes, seconds, "baseline");
  }
  const perPageSeconds = best(repeat, () => {
    const hash = new Crc64Hash();
    for (const p of pages) hash.update(p.data);
  });
  report("crc64 per 4 KiB page (Crc64Hash.update)", bytes, perPageSeconds, (mbps) =>
    Number.isNaN(nativePerPage) ? "" : `${(mbps / nativePerPage).toFixed(2)} × zlib.crc32`,
  );
  // What WASM_MIN_BYTES decides between: the raw-register paths, without BigInt.
  const sizes = [16, 64, 128, 256, 512, 1024, 4096];
  const line = sizes.map((size) => {
    const input = data.subarray(0, size);
    const n = Math.floor((32 << 20) / size);
    const reg = { hi: 0, lo: 0 };
    const w = best(repeat, () => {
      for (let i = 0; i < n; i++) absorbBytesWasm(reg, input);
    });
    const j = best(repeat, () => {
      for (let i = 0; i < n; i++) absorbBytes(reg, input);
    });
    return `${size}: ${((n * size) / 1e6 / w).toFixed(0)}/${((n * size) / 1e6 / j).toFixed(0)}`;
  });
  console.log(`crc64 by input size, WASM/JS MB/s (JS below ${WASM_MIN_BYTES} bytes): ${line.join(", ")}`);
  if (crc64(data) !== crc64Js(data)) throw new Error("crc64: WASM and JS disagree");

  // --- database checksum ---
  console.log("");
  let expected = 0n;
  const batch = report(
    `database checksum, ${mib} MiB page set (databaseChecksum)`,
    bytes,
    best(repeat, () => {
      expected = databaseChecksum(pages, PAGE);
    }),
    "goal ≥ 1000",
  );
  report(
    `database checksum, ${mib} MiB image (checksumDatabaseBytes)`,
    bytes,
    best(repeat, () => checksumDatabaseBytes(data, PAGE)),
  );
  const rolling = report(
    "rolling checksum page by page (pageChecksum+replace)",
    bytes,
    best(repeat, () => {
      const sum = new RollingChecksum();
      for (const p of pages) sum.replace(undefined, pageChecksum(p.pgno, p.data));
      if (sum.value !== expected) throw new Error("rolling checksum disagrees");
    }),
    "goal ≥ 1000",
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ltx-bench-"));
  try {
    const file = path.join(dir, "db");
    fs.writeFileSync(file, data);
    report(
      `database checksum, ${mib} MiB file (page cache)`,
      bytes,
      await bestAsync(repeat, async () => {
        if ((await checksumDatabaseFile(file, PAGE)) !== expected) throw new Error("file checksum disagrees");
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // --- LZ4 blocks per page (v3) ---
  console.log("");
  const lzBytes = Math.min(bytes, 64 << 20);
  const lzPages = pages.slice(0, lzBytes / PAGE);
  const dst = new Uint8Array(compressBlockBound(PAGE));
  const blocks: Uint8Array[] = [];
  const compressSeconds = best(repeat, () => {
    blocks.length = 0;
    for (const p of lzPages) blocks.push(dst.slice(0, compressBlockInto(p.data, dst)));
  });
  const compressedBytes = blocks.reduce((n, b) => n + b.length, 0);
  report(
    "lz4 compressBlock per 4 KiB page",
    lzBytes,
    compressSeconds,
    `ratio ${(lzBytes / compressedBytes).toFixed(2)}`,
  );
  const page = new Uint8Array(PAGE);
  const lz4Decode = report(
    "lz4 decompressBlock per 4 KiB page",
    lzBytes,
    best(repeat, () => {
      for (const b of blocks) decompressBlock(b, page);
    }),
    "goal ≥ 500",
  );
  const deflated: Buffer[] = [];
  const deflateSeconds = best(repeat, () => {
    deflated.length = 0;
    for (const p of lzPages) deflated.push(zlib.deflateRawSync(p.data, { level: 1 }));
  });
  const deflatedBytes = deflated.reduce((n, b) => n + b.length, 0);
  report(
    "zlib deflateRaw level 1 per 4 KiB page (native)",
    lzBytes,
    deflateSeconds,
    `ratio ${(lzBytes / deflatedBytes).toFixed(2)}, baseline`,
  );
  const inflate = report(
    "zlib inflateRaw per 4 KiB page (native)",
    lzBytes,
    best(repeat, () => {
      for (const b of deflated) zlib.inflateRawSync(b);
    }),
    "baseline",
  );
  console.log(`lz4 block decode = ${(lz4Decode / inflate).toFixed(2)} × zlib inflate per page`);

  // --- LZ4 frames (v1) and xxh32 ---
  console.log("");
  const frameData = data.subarray(0, lzBytes);
  let frame: Uint8Array = new Uint8Array(0);
  report(
    "lz4 frame compress (64 KiB blocks)",
    lzBytes,
    best(repeat, () => {
      frame = lz4FrameCompress(frameData);
    }),
    `ratio ${(lzBytes / frame.length).toFixed(2)}`,
  );
  report(
    "lz4 frame decompress",
    lzBytes,
    best(repeat, () => lz4FrameDecompress(frame, lzBytes)),
  );
  report(
    "xxh32",
    lzBytes,
    best(repeat, () => xxh32(frameData)),
  );

  console.log(
    `\nsummary: database checksum ${batch.toFixed(0)} MB/s (rolling ${rolling.toFixed(0)}), crc64 WASM ${wasm.toFixed(0)} / JS ${js.toFixed(0)} MB/s, lz4 block decode ${lz4Decode.toFixed(0)} MB/s`,
  );
}

await main();
