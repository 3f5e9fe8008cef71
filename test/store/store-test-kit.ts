// Shared pieces of the store's unit tests: temp dirs, a store on them, replaying LTX chains onto an
// empty image, and SQLite databases produced by better-sqlite3 on a plain directory (no mount).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import { decodeLtx } from "../../src/ltx/decoder.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { Store, type StoreOptions } from "../../src/store/store.js";

export function tempDir(t: { after(fn: () => void | Promise<void>): void }, label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `litefs-store-${label}-`));
  // Asynchronous, with retries: a store closed by an earlier hook may still have a spare LTX file being
  // created on the thread pool (spare-ltx-file.ts removes it when that open completes), racing this.
  t.after(() => fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 }));
  return dir;
}

export function openStore(dataDir: string, opts: Partial<StoreOptions> = {}): Store {
  return Store.open({ dataDir, noSync: true, ...opts });
}

/** Applies every LTX file of `db` in `dataDir`, in order, to an empty image; checks the chain. */
export function replayChain(
  dataDir: string,
  db: string,
): { image: Buffer; files: number; lastPostApply: bigint } {
  const files = listLtxFiles(path.join(dataDir, "dbs", db, "ltx"));
  let image = Buffer.alloc(0);
  let expected = 1n;
  let lastPostApply = 0n;
  for (const file of files) {
    if (file.minTxid !== expected)
      throw new Error(`chain broken at ${file.name}: expected min TXID ${expected}`);
    const decoded = decodeLtx(fs.readFileSync(file.path), { file: file.path });
    const { header } = decoded;
    // The chain rule: each file starts from the previous file's post-apply checksum.
    if (header.minTxid !== 1n && header.preApplyChecksum !== lastPostApply) {
      throw new Error(
        `${file.name}: pre-apply ${header.preApplyChecksum.toString(16)} != previous post-apply ${lastPostApply.toString(16)}`,
      );
    }
    const size = header.commit * header.pageSize;
    const next = Buffer.alloc(size);
    image.copy(next, 0, 0, Math.min(size, image.length));
    for (const page of decoded.pages) next.set(page.data, (page.pgno - 1) * header.pageSize);
    image = next;
    const post = image.length === 0 ? 0x8000000000000000n : checksumDatabaseBytes(image, header.pageSize);
    if (post !== decoded.trailer.postApplyChecksum) {
      throw new Error(
        `${file.name}: post-apply ${decoded.trailer.postApplyChecksum.toString(16)} != ${post.toString(16)}`,
      );
    }
    lastPostApply = post;
    expected = file.maxTxid + 1n;
  }
  return { image, files: files.length, lastPostApply };
}

/** Pages of `next` that differ from `prev` (whole pages), as [offset, bytes] writes. */
export function changedPages(prev: Buffer, next: Buffer, pageSize: number): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = 0; off < next.length; off += pageSize) {
    const a = prev.subarray(off, off + pageSize);
    const b = next.subarray(off, off + pageSize);
    if (a.length !== b.length || !a.equals(b)) out.push([off, Buffer.from(b)]);
  }
  return out;
}

/**
 * Writes through the store the bytes of SQLite's `-wal` that differ between `prev` and `next`, the way
 * SQLite writes them (header, then each frame's 24-byte header and page separately).
 */
export function feedNewWalBytes(
  db: { write(kind: "wal", offset: number, data: Uint8Array): void },
  prev: Buffer,
  next: Buffer,
): void {
  // SQLite appends frames and rewrites the header on a restart: write whatever differs, in order.
  if (next.length >= 32 && (prev.length < 32 || !prev.subarray(0, 32).equals(next.subarray(0, 32)))) {
    db.write("wal", 0, next.subarray(0, 32));
  }
  if (next.length < 32) return;
  const frameSize = 24 + next.readUInt32BE(8);
  let start = 32;
  while (
    start < next.length &&
    start < prev.length &&
    prev.subarray(start, start + frameSize).equals(next.subarray(start, start + frameSize))
  ) {
    start += frameSize;
  }
  for (let at = start; at + frameSize <= next.length; at += frameSize) {
    db.write("wal", at, next.subarray(at, at + 24));
    db.write("wal", at + 24, next.subarray(at + 24, at + frameSize));
  }
}
