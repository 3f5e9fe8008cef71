// Shared by the LTX tests: where the reference vectors are, the page contents their README describes,
// and small builders for headers and page sets.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Header } from "../../src/ltx/index.js";

/** The repository root (tests run from dist/test/ltx/). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const vectorsDir = path.join(repoRoot, "test", "fixtures", "ltx-vectors");

export const VECTOR_NAMES = [
  "0000000000000001-0000000000000001.ltx",
  "0000000000000002-0000000000000002.ltx",
  "0000000000000003-0000000000000003.ltx",
  "0000000000000005-0000000000000007.ltx",
  "legacy-v3-frame-0000000000000001-0000000000000001.ltx",
  "v1-uncompressed-0000000000000001-0000000000000001.ltx",
  "v1-lz4-0000000000000001-0000000000000001.ltx",
] as const;

export function vectorPath(name: string): string {
  return path.join(vectorsDir, name);
}

export function readVector(name: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(vectorPath(name)));
}

/** README: zeros; "SQLite format 3\0"; BE16(n) at 16; 18 = 1; 19 = 1; 31 = 2; a 32-byte tail. */
export function sqliteLike(n: number): Uint8Array {
  const page = new Uint8Array(n);
  page.set(Buffer.from("SQLite format 3\0", "latin1"), 0);
  page[16] = (n >> 8) & 0xff;
  page[17] = n & 0xff;
  page[18] = 1;
  page[19] = 1;
  page[31] = 2;
  page.set(Buffer.from("hello world, this is the tail!!\0", "latin1"), n - 32);
  return page;
}

/** README: byte i = (i * 7) % 251. */
export function patterned(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7) % 251);
}

export function filled(n: number, value: number): Uint8Array {
  return new Uint8Array(n).fill(value);
}

export function makeHeader(fields: Partial<Header> = {}): Header {
  return {
    flags: 0,
    pageSize: 512,
    commit: 1,
    minTxid: 1n,
    maxTxid: 1n,
    timestamp: 0,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
    ...fields,
  };
}

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: { after(fn: () => void): void }, prefix = "ltx-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
