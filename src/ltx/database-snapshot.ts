// A snapshot LTX file of a SQLite database file: every page (but the lock page) from 1 to the page
// count, as the first transaction (min TXID 1). The post-apply checksum is the database's rolling
// checksum, which the encoder computes from the pages and checks. The database is read 1 MiB at a
// time and the file written as it goes, so any size streams.

import { open } from "node:fs/promises";
import type { Writable } from "node:stream";
import { assertNoPendingJournal, readDatabasePages, readDatabaseShape } from "./database-file.js";
import { LtxStreamEncoder, writeFileAtomically, type ByteSink } from "./encode-stream.js";
import type { LtxWriteFormat } from "./format.js";
import type { Header } from "./header.js";
import type { Trailer } from "./trailer.js";

export interface DatabaseSnapshotOptions {
  /** Default "v3". */
  format?: LtxWriteFormat;
  /** Max TXID to record (default 1: the snapshot stands for transactions 1..maxTxid). */
  maxTxid?: bigint;
  /** Milliseconds since the epoch (default: now). */
  timestamp?: number;
  nodeId?: bigint;
}

export interface DatabaseSnapshotResult {
  header: Header;
  trailer: Trailer;
  size: number;
}

/** Streams a snapshot of the database at `dbPath` into `sink`. */
export async function encodeDatabaseSnapshot(
  dbPath: string,
  sink: Writable | ByteSink,
  options: DatabaseSnapshotOptions = {},
  outputName?: string,
): Promise<DatabaseSnapshotResult> {
  await assertNoPendingJournal(dbPath);
  const handle = await open(dbPath, "r");
  try {
    const shape = await readDatabaseShape(handle, dbPath);
    const header: Header = {
      flags: 0,
      pageSize: shape.pageSize,
      commit: shape.pageCount,
      minTxid: 1n,
      maxTxid: options.maxTxid ?? 1n,
      timestamp: options.timestamp ?? Date.now(),
      preApplyChecksum: 0n,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: options.nodeId ?? 0n,
    };
    const encoder = new LtxStreamEncoder(sink, { format: options.format ?? "v3", file: outputName });
    await encoder.writeHeader(header);
    for await (const { pgno, data } of readDatabasePages(handle, dbPath, shape))
      await encoder.writePage(pgno, data);
    const trailer = await encoder.finish();
    return { header: encoder.header, trailer, size: encoder.size };
  } finally {
    await handle.close();
  }
}

/** Writes a snapshot of `dbPath` to `outPath` crash-safely (temp → fsync → rename). */
export async function writeDatabaseSnapshotFile(
  dbPath: string,
  outPath: string,
  options: DatabaseSnapshotOptions = {},
): Promise<DatabaseSnapshotResult> {
  return writeFileAtomically(outPath, (sink) => encodeDatabaseSnapshot(dbPath, sink, options, outPath));
}
