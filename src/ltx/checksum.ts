// LTX checksums of SQLite pages and whole databases (superfly/ltx semantics).
//
//   page checksum      FLAG | crc64iso(be32(pgno) ‖ page)
//   database checksum  FLAG | XOR of the page checksums of every page except the lock page
//                      (the empty database: FLAG = 0x8000000000000000)
//
// Being an XOR, the database checksum is maintained page by page (RollingChecksum): replacing a page
// XORs out its old checksum and XORs in the new one. Whole-database passes batch consecutive pages into
// the WASM `pages_xor` kernel (four pages side by side); without WebAssembly they fall back to JS. Either
// way BigInt is used once per call or per page, never per byte.

import { open } from "node:fs/promises";
import { pageCrcHalves, type Crc64Register } from "./crc64-js.js";
import { pageCrc64Halves } from "./crc64.js";
import {
  acquireCrc64Instance,
  releaseCrc64Instance,
  wasmCrc64Available,
  WASM_DATA_BYTES,
  type Crc64WasmInstance,
} from "./crc64-wasm.js";
import { LtxError } from "./errors.js";

export const CHECKSUM_FLAG = 1n << 63n;
export const EMPTY_DATABASE_CHECKSUM = 0x8000000000000000n;

const MIN_PAGE_SIZE = 512;
const MAX_PAGE_SIZE = 65536;

/** Whether `pageSize` is a valid SQLite/LTX page size: a power of two in 512..65536. */
export function isValidPageSize(pageSize: number): boolean {
  return (
    Number.isInteger(pageSize) &&
    pageSize >= MIN_PAGE_SIZE &&
    pageSize <= MAX_PAGE_SIZE &&
    (pageSize & (pageSize - 1)) === 0
  );
}

function assertPageSize(pageSize: number): void {
  if (!isValidPageSize(pageSize))
    throw new RangeError(`page size ${pageSize} is not a power of two in 512..65536`);
}

/** The page that holds SQLite's lock bytes (offset 1 GiB); it is never written and never checksummed. */
export function lockPgno(pageSize: number): number {
  return Math.floor(0x40000000 / pageSize) + 1;
}

/** FLAG | crc64iso(be32(pgno) ‖ page). */
export function pageChecksum(pgno: number, page: Uint8Array): bigint {
  if (!Number.isInteger(pgno) || pgno < 0 || pgno > 0xffffffff)
    throw new RangeError(`bad page number ${pgno}`);
  const crc: Crc64Register = { hi: 0, lo: 0 };
  pageCrc64Halves(pgno, page, crc);
  return (BigInt((crc.hi | 0x80000000) >>> 0) << 32n) | BigInt(crc.lo);
}

/** The database checksum maintained page by page. */
export class RollingChecksum {
  #value: bigint;

  constructor(initial: bigint = EMPTY_DATABASE_CHECKSUM) {
    if (initial < 0n || initial > 0xffffffffffffffffn)
      throw new RangeError(`checksum ${initial} is not a u64`);
    this.#value = initial;
  }

  get value(): bigint {
    return this.#value;
  }

  /** Replaces one page's checksum; `undefined` means the page is absent (before or after). */
  replace(oldPageChecksum: bigint | undefined, newPageChecksum: bigint | undefined): void {
    let value = this.#value;
    if (oldPageChecksum !== undefined) value ^= oldPageChecksum;
    if (newPageChecksum !== undefined) value ^= newPageChecksum;
    this.#value = CHECKSUM_FLAG | value;
  }
}

/** XOR of page checksums as two uint32 halves (JS path), so that no BigInt is made per page. */
class JsPageXor {
  hi = 0;
  lo = 0;
  readonly #crc: Crc64Register = { hi: 0, lo: 0 };

  add(pgno: number, page: Uint8Array): void {
    pageCrcHalves(pgno, page, this.#crc);
    this.hi = (this.hi ^ this.#crc.hi ^ 0x80000000) >>> 0;
    this.lo = (this.lo ^ this.#crc.lo) >>> 0;
  }

  value(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
}

/**
 * Collects runs of consecutive pages in a WASM instance's data area and folds them through `pages_xor`.
 * The caller owns `instance` for the collector's lifetime.
 */
class WasmPageRun {
  readonly #instance: Crc64WasmInstance;
  readonly #pageSize: number;
  readonly #lock: number;
  readonly #capacity: number;
  #first = 0;
  #count = 0;
  acc = 0n;

  constructor(instance: Crc64WasmInstance, pageSize: number) {
    this.#instance = instance;
    this.#pageSize = pageSize;
    this.#lock = lockPgno(pageSize);
    this.#capacity = Math.floor(WASM_DATA_BYTES / pageSize);
  }

  add(pgno: number, page: Uint8Array): void {
    if (this.#count > 0 && (pgno !== this.#first + this.#count || this.#count === this.#capacity))
      this.flush();
    if (this.#count === 0) this.#first = pgno;
    this.#instance.data.set(page, this.#count * this.#pageSize);
    this.#count++;
  }

  flush(): void {
    if (this.#count === 0) return;
    this.acc ^= this.#instance.pagesXor(this.#count, this.#pageSize, this.#first, this.#lock);
    this.#count = 0;
  }
}

/** FLAG | XOR of the checksums of `pages` (any order), skipping the lock page. */
export function databaseChecksum(
  pages: Iterable<{ pgno: number; data: Uint8Array }>,
  pageSize: number,
): bigint {
  assertPageSize(pageSize);
  const lock = lockPgno(pageSize);
  const check = (pgno: number, data: Uint8Array): void => {
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > 0xffffffff)
      throw new RangeError(`bad page number ${pgno}`);
    if (data.length !== pageSize)
      throw new RangeError(`page ${pgno} has ${data.length} bytes, not ${pageSize}`);
  };
  if (!wasmCrc64Available) {
    const xor = new JsPageXor();
    for (const { pgno, data } of pages) {
      check(pgno, data);
      if (pgno !== lock) xor.add(pgno, data);
    }
    return CHECKSUM_FLAG | xor.value();
  }
  // A private instance: the iterable may itself compute CRCs (e.g. an LTX decoder) on the shared one.
  const instance = acquireCrc64Instance();
  try {
    const run = new WasmPageRun(instance, pageSize);
    for (const { pgno, data } of pages) {
      check(pgno, data);
      run.add(pgno, data);
    }
    run.flush();
    return CHECKSUM_FLAG | run.acc;
  } finally {
    releaseCrc64Instance(instance);
  }
}

function checkWholePages(size: number, pageSize: number, file: string | undefined): void {
  if (size % pageSize !== 0) {
    throw new LtxError(
      "ELTXTRUNCATED",
      `database size ${size} is not a multiple of the page size ${pageSize}`,
      {
        file,
        offset: size - (size % pageSize),
        rule: "whole pages",
      },
    );
  }
}

/** Database checksum of a database image held in memory (page n at offset (n-1)·pageSize). */
export function checksumDatabaseBytes(db: Uint8Array, pageSize: number): bigint {
  assertPageSize(pageSize);
  checkWholePages(db.length, pageSize, undefined);
  const count = db.length / pageSize;
  if (!wasmCrc64Available) {
    const xor = new JsPageXor();
    const lock = lockPgno(pageSize);
    for (let i = 0; i < count; i++) {
      if (i + 1 !== lock) xor.add(i + 1, db.subarray(i * pageSize, (i + 1) * pageSize));
    }
    return CHECKSUM_FLAG | xor.value();
  }
  const instance = acquireCrc64Instance();
  try {
    const perChunk = Math.floor(WASM_DATA_BYTES / pageSize);
    let acc = 0n;
    for (let first = 0; first < count; first += perChunk) {
      const n = Math.min(perChunk, count - first);
      instance.data.set(db.subarray(first * pageSize, (first + n) * pageSize), 0);
      acc ^= instance.pagesXor(n, pageSize, first + 1, lockPgno(pageSize));
    }
    return CHECKSUM_FLAG | acc;
  } finally {
    releaseCrc64Instance(instance);
  }
}

/** SQLite's page size from a database header (offset 16, big-endian u16; 1 means 65536). */
export function pageSizeFromHeader(header: Uint8Array): number {
  const raw = (header[16] << 8) | header[17];
  return raw === 1 ? 65536 : raw;
}

/**
 * Database checksum of a database file, read in chunks of up to 4 MiB (never the whole file at once).
 * The page size comes from the SQLite header unless given. Reads of the next chunk overlap the checksum
 * of the current one (two buffers). Throws LtxError ELTXTRUNCATED when the size is not whole pages.
 */
export async function checksumDatabaseFile(path: string, pageSize?: number): Promise<bigint> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    if (size === 0) return EMPTY_DATABASE_CHECKSUM;
    if (pageSize === undefined) {
      const header = new Uint8Array(100);
      const { bytesRead } = await handle.read(header, 0, 100, 0);
      if (bytesRead < 100) {
        throw new LtxError("ELTXTRUNCATED", `database file of ${size} bytes has no SQLite header`, {
          file: path,
          offset: bytesRead,
          rule: "sqlite header",
        });
      }
      pageSize = pageSizeFromHeader(header);
      if (!isValidPageSize(pageSize)) {
        throw new LtxError("ELTXHEADER", `SQLite header has an invalid page size ${pageSize}`, {
          file: path,
          offset: 16,
          rule: "page size",
        });
      }
    }
    const bytesPerPage: number = pageSize;
    assertPageSize(bytesPerPage);
    checkWholePages(size, bytesPerPage, path);
    const chunkBytes = Math.floor(WASM_DATA_BYTES / bytesPerPage) * bytesPerPage;
    const lock = lockPgno(bytesPerPage);

    const readFull = async (into: Uint8Array, position: number): Promise<number> => {
      const want = Math.min(into.length, size - position);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await handle.read(into, got, want - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== want) {
        throw new LtxError("ELTXTRUNCATED", `database file shrank while being read`, {
          file: path,
          offset: position + got,
          rule: "stable size",
        });
      }
      return got;
    };

    // Two buffers: the next chunk is read while the current one is checksummed. With WASM the buffers are
    // the data areas of two private instances, so chunks are read straight into WASM memory.
    const instances = wasmCrc64Available ? [acquireCrc64Instance(), acquireCrc64Instance()] : [];
    const buffers =
      instances.length > 0
        ? instances.map((instance) => instance.data.subarray(0, chunkBytes))
        : [new Uint8Array(chunkBytes), new Uint8Array(chunkBytes)];
    const xor = new JsPageXor();
    let acc = 0n;
    const checksumChunk = (turn: number, got: number, position: number): void => {
      const firstPgno = position / bytesPerPage + 1;
      if (instances.length > 0) {
        acc ^= instances[turn].pagesXor(got / bytesPerPage, bytesPerPage, firstPgno, lock);
        return;
      }
      for (let off = 0, pgno = firstPgno; off < got; off += bytesPerPage, pgno++) {
        if (pgno !== lock) xor.add(pgno, buffers[turn].subarray(off, off + bytesPerPage));
      }
    };
    let pending: Promise<number> = readFull(buffers[0], 0);
    let inFlight = true; // whether `pending` may still write into one of the buffers
    try {
      for (let position = 0, turn = 0; position < size; turn ^= 1) {
        const got = await pending;
        inFlight = false;
        const next = position + got;
        if (next < size) {
          pending = readFull(buffers[turn ^ 1], next);
          inFlight = true;
        }
        checksumChunk(turn, got, position);
        position = next;
      }
      return CHECKSUM_FLAG | (acc ^ xor.value());
    } finally {
      // Never hand a buffer back (or drop a rejection) while a read may still be writing into it.
      if (inFlight) await pending.catch(() => undefined);
      for (const instance of instances) releaseCrc64Instance(instance);
    }
  } finally {
    await handle.close();
  }
}
