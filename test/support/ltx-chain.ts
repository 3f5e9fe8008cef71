// The LTX files of one database as a chain: listing and contiguity, replaying them onto an empty file
// with `litefs ltx apply`, and comparing the result with the live database byte for byte. This is the
// end-to-end proof that the mount captured every transaction: a replica that applies the chain must end
// up with exactly the primary's bytes.
import * as fs from "node:fs";
import * as path from "node:path";
import { litefsCliOk } from "./litefs-cli.js";

export interface LtxFileInfo {
  path: string;
  minTxid: bigint;
  maxTxid: bigint;
}

/** Fields of the 100-byte LTX header that the checks below use (big-endian, see docs/ltx.md). */
export interface LtxHeaderFields {
  pageSize: number;
  commit: number;
  minTxid: bigint;
  maxTxid: bigint;
  preApplyChecksum: string;
}

const LTX_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/;
const APPLY_BATCH_FILES_MAX = 400;

/** LTX files in `ltxDir`, ascending by TXID (names are fixed-width hex, so name order is TXID order). */
export function listLtxFiles(ltxDir: string): LtxFileInfo[] {
  if (!fs.existsSync(ltxDir)) return [];
  return fs
    .readdirSync(ltxDir)
    .filter((name) => LTX_NAME.test(name))
    .sort()
    .map((name) => {
      const match = LTX_NAME.exec(name)!;
      return {
        path: path.join(ltxDir, name),
        minTxid: BigInt("0x" + match[1]),
        maxTxid: BigInt("0x" + match[2]),
      };
    });
}

/**
 * Throws unless the files form one unbroken chain from TXID 1: each starts right after the previous
 * one ends. Replaying from an empty file needs exactly that (retention must not have removed any).
 */
export function assertContiguousFromOne(files: readonly LtxFileInfo[], where: string): void {
  if (files.length === 0) throw new Error(`${where}: no LTX files`);
  let expectedMin = 1n;
  for (const file of files) {
    if (file.minTxid !== expectedMin || file.maxTxid < file.minTxid) {
      throw new Error(
        `${where}: LTX chain broken at ${path.basename(file.path)} (expected min TXID ${expectedMin}); ` +
          `files: ${files.map((f) => path.basename(f.path)).join(" ")}`,
      );
    }
    expectedMin = file.maxTxid + 1n;
  }
}

export function readLtxHeader(file: string): LtxHeaderFields {
  const header = Buffer.alloc(100);
  const fd = fs.openSync(file, "r");
  try {
    if (fs.readSync(fd, header, 0, 100, 0) !== 100) throw new Error(`${file}: shorter than an LTX header`);
  } finally {
    fs.closeSync(fd);
  }
  if (header.toString("latin1", 0, 4) !== "LTX1") throw new Error(`${file}: no LTX1 magic`);
  return {
    pageSize: header.readUInt32BE(8),
    commit: header.readUInt32BE(12),
    minTxid: header.readBigUInt64BE(16),
    maxTxid: header.readBigUInt64BE(24),
    preApplyChecksum: header.readBigUInt64BE(40).toString(16).padStart(16, "0"),
  };
}

/** The post-apply checksum from an LTX file's trailer (the 16 bytes at its end: post-apply, file checksum). */
export function readLtxPostApplyChecksum(file: string): string {
  const size = fs.statSync(file).size;
  if (size < 116) throw new Error(`${file}: ${size} bytes is too short for an LTX file`);
  const trailer = Buffer.alloc(16);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, trailer, 0, 16, size - 16);
  } finally {
    fs.closeSync(fd);
  }
  return trailer.readBigUInt64BE(0).toString(16).padStart(16, "0");
}

/** Applies `files` in order to a new empty database `outFile` with `litefs ltx apply --db`. */
export async function replayLtxFiles(files: readonly string[], outFile: string): Promise<void> {
  fs.writeFileSync(outFile, "");
  for (let i = 0; i < files.length; i += APPLY_BATCH_FILES_MAX) {
    await litefsCliOk(["ltx", "apply", "--db", outFile, ...files.slice(i, i + APPLY_BATCH_FILES_MAX)]);
  }
}

/** `litefs ltx checksum DB`: the database file's rolling checksum as 16 lowercase hex digits. */
export async function ltxChecksumOfDatabase(dbFile: string): Promise<string> {
  const out = (await litefsCliOk(["ltx", "checksum", dbFile])).trim();
  if (!/^[0-9a-f]{16}$/.test(out))
    throw new Error(`litefs ltx checksum ${dbFile}: unexpected output "${out}"`);
  return out;
}

/**
 * Compares two database files; undefined when byte-identical, else a description of the first
 * difference (sizes, page number and byte offset) for the assertion message.
 */
export function describeDatabaseDifference(expectedFile: string, actualFile: string): string | undefined {
  const expected = fs.readFileSync(expectedFile);
  const actual = fs.readFileSync(actualFile);
  if (expected.equals(actual)) return undefined;
  const pageSize = pageSizeOf(expected) ?? pageSizeOf(actual) ?? 4096;
  const common = Math.min(expected.length, actual.length);
  let offset = 0;
  while (offset < common && expected[offset] === actual[offset]) offset++;
  const where =
    offset < common
      ? `first difference at byte ${offset} (page ${Math.floor(offset / pageSize) + 1}, page size ${pageSize})`
      : `identical for the first ${common} bytes`;
  return `${expectedFile} (${expected.length} bytes) vs ${actualFile} (${actual.length} bytes): ${where}`;
}

/** Page size from a SQLite header (offset 16, big-endian; 1 means 65536), or undefined if not a database. */
export function pageSizeOf(db: Buffer): number | undefined {
  if (db.length < 100 || db.toString("latin1", 0, 15) !== "SQLite format 3") return undefined;
  const raw = db.readUInt16BE(16);
  return raw === 1 ? 65536 : raw;
}
