// The `checksums` file of a database: the page-checksum array and the position it belongs to, so that
// a restart does not have to reread every page.
//
// Layout (little-endian; 64-byte header, then 8 bytes per page, then a CRC-64 of all of it):
//   0  "LFSPGCKS"   magic
//   8  u32 version (1)
//  12  u32 flags    bit 0 = CLEAN: written at a clean shutdown; nothing touched the database after.
//                   Excluded from the CRC so that `markDirty` can clear it with one 4-byte write.
//  16  u32 page size          20  u32 page count
//  24  u64 TXID               32  u64 rolling checksum (position)
//  40  u64 database file size 48  u64 database mtime (ns)     56  u64 database inode
//  64  page count × u64 page checksums (lock page 0)
//  end u64 CRC-64 (ltx crc64) of bytes [0, end) with the flags word read as 0
//
// Written temp → fsync → rename (durable-file.ts). A clean file whose recorded size/mtime/inode still
// match the database proves nothing changed since: a restart trusts it without reading a page. At open
// the store clears CLEAN, so a crash afterwards is visible as "not clean".

import fs from "node:fs";

import { crc64 } from "../ltx/crc64.js";
import type { Pos } from "../ltx/pos.js";
import { writeFileDurably } from "./durable-file.js";
import { PageChecksums } from "./page-checksums.js";
import { StoreError } from "./store-error.js";

const MAGIC = "LFSPGCKS";
const VERSION = 1;
const HEADER_BYTES = 64;
const FLAGS_OFFSET = 12;
const FLAG_CLEAN = 1;

/** What a database file looked like when its checksums were saved. */
export interface DatabaseFileStamp {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
}

export interface SavedChecksums {
  pos: Pos;
  clean: boolean;
  stamp: DatabaseFileStamp;
  checksums: PageChecksums;
}

/** The stamp of the file at `path` now, or null if it does not exist. */
export function stampOf(path: string): DatabaseFileStamp | null {
  const st = fs.statSync(path, { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return null;
  return { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino };
}

export function stampsEqual(a: DatabaseFileStamp, b: DatabaseFileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;
}

export function writeChecksumsFile(
  file: string,
  saved: SavedChecksums,
  opts: { noSync?: boolean } = {},
): void {
  const sums = saved.checksums.toBytes();
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, "latin1");
  header.writeUInt32LE(VERSION, 8);
  header.writeUInt32LE(0, FLAGS_OFFSET);
  header.writeUInt32LE(saved.checksums.pageSize, 16);
  header.writeUInt32LE(saved.checksums.pageCount, 20);
  header.writeBigUInt64LE(saved.pos.txid, 24);
  header.writeBigUInt64LE(saved.pos.checksum, 32);
  header.writeBigUInt64LE(saved.stamp.size, 40);
  header.writeBigUInt64LE(saved.stamp.mtimeNs, 48);
  header.writeBigUInt64LE(saved.stamp.ino, 56);
  const crc = Buffer.alloc(8);
  crc.writeBigUInt64LE(crc64(sums, crc64(header)));
  if (saved.clean) header.writeUInt32LE(FLAG_CLEAN, FLAGS_OFFSET);
  writeFileDurably(file, [header, sums, crc], opts);
}

/**
 * Reads a checksums file. Returns null when there is none; throws EDATADIR when it is damaged (the
 * caller logs it and falls back to a full pass: the file is an optimisation, never the truth).
 */
export function readChecksumsFile(file: string): SavedChecksums | null {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const bad = (why: string): StoreError =>
    new StoreError("EDATADIR", `checksums file is damaged: ${why}`, { file });
  if (bytes.length < HEADER_BYTES + 8) throw bad(`${bytes.length} bytes is too short`);
  if (bytes.toString("latin1", 0, 8) !== MAGIC) throw bad("bad magic");
  if (bytes.readUInt32LE(8) !== VERSION) throw bad(`unknown version ${bytes.readUInt32LE(8)}`);
  const flags = bytes.readUInt32LE(FLAGS_OFFSET);
  const pageSize = bytes.readUInt32LE(16);
  const pageCount = bytes.readUInt32LE(20);
  if (bytes.length !== HEADER_BYTES + pageCount * 8 + 8)
    throw bad(`length ${bytes.length} for ${pageCount} pages`);
  const body = Buffer.from(bytes.subarray(0, bytes.length - 8));
  body.writeUInt32LE(0, FLAGS_OFFSET);
  if (crc64(body) !== bytes.readBigUInt64LE(bytes.length - 8)) throw bad("CRC mismatch");
  let checksums: PageChecksums;
  try {
    checksums = PageChecksums.fromBytes(pageSize, bytes.subarray(HEADER_BYTES, bytes.length - 8));
  } catch (err) {
    throw new StoreError("EDATADIR", "checksums file is damaged", { file, cause: err });
  }
  return {
    pos: { txid: bytes.readBigUInt64LE(24), checksum: bytes.readBigUInt64LE(32) },
    clean: (flags & FLAG_CLEAN) !== 0,
    stamp: {
      size: bytes.readBigUInt64LE(40),
      mtimeNs: bytes.readBigUInt64LE(48),
      ino: bytes.readBigUInt64LE(56),
    },
    checksums,
  };
}

/** Clears the CLEAN flag in place (one 4-byte write + fsync); a missing file is fine. */
export function markChecksumsFileDirty(file: string, opts: { noSync?: boolean } = {}): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "r+");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    const zero = Buffer.alloc(4);
    fs.writeSync(fd, zero, 0, 4, FLAGS_OFFSET);
    if (opts.noSync !== true) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
