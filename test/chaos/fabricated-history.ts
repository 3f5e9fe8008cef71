// Fabricated node data directories for the checker's self-tests: LTX files written with the real
// encoder into `<data>/dbs/<db>/ltx/` or `<data>/quarantine/<db>/<dir>/`, and small real SQLite
// databases for the SQL side (integrity_check, the acks table). Fabricated so that each test can
// break exactly one rule and show that the checker catches it.
import * as fs from "node:fs";
import * as path from "node:path";

import { CHECKSUM_FLAG } from "../../src/ltx/checksum.js";
import { encodeLtx } from "../../src/ltx/encoder.js";
import { formatFileName } from "../../src/ltx/file-name.js";
import { runCommand } from "../support/litefs-cli.js";
import { SQLITE3_CLI } from "../support/paths.js";
import { ackToken } from "./ack-token.js";

const PAGE_SIZE = 4096;

export interface FabricatedTx {
  txid: bigint;
  nodeId: bigint;
  timestampMs: number;
  /** Post-apply checksum of the previous TXID (ignored for TXID 1, a snapshot). */
  preApply: bigint;
  /** Any distinct value; CHECKSUM_FLAG is set on it. Ignored for TXID 1 (computed from its page). */
  postApply: bigint;
  /** Ack ids whose tokens the page carries. */
  tokens?: readonly number[];
  /** A quarantine folder name, or undefined for the live chain. */
  quarantine?: string;
}

/** Writes one single-transaction LTX file; returns its post-apply checksum. */
export function writeFabricatedTx(dataDir: string, db: string, tx: FabricatedTx): bigint {
  const dir =
    tx.quarantine === undefined
      ? path.join(dataDir, "dbs", db, "ltx")
      : path.join(dataDir, "quarantine", db, tx.quarantine);
  fs.mkdirSync(dir, { recursive: true });
  const page = new Uint8Array(PAGE_SIZE);
  const text = Buffer.from(`fabricated ${tx.txid} ${(tx.tokens ?? []).map(ackToken).join(" ")}`, "latin1");
  page.set(text, 100);
  const snapshot = tx.txid === 1n;
  const bytes = encodeLtx(
    {
      flags: 0,
      pageSize: PAGE_SIZE,
      commit: 1,
      minTxid: tx.txid,
      maxTxid: tx.txid,
      timestamp: tx.timestampMs,
      preApplyChecksum: snapshot ? 0n : tx.preApply,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: tx.nodeId,
    },
    [{ pgno: 1, data: page }],
    snapshot ? undefined : CHECKSUM_FLAG | tx.postApply,
  );
  fs.writeFileSync(path.join(dir, formatFileName(tx.txid, tx.txid)), bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset + bytes.byteLength - 16, 8);
  return view.getBigUint64(0);
}

/**
 * Writes a snapshot file covering TXIDs 1..`maxTxid` (as a replica that was sent a snapshot holds);
 * returns its post-apply checksum (computed from its one page).
 */
export function writeFabricatedSnapshot(
  dataDir: string,
  db: string,
  snap: { maxTxid: bigint; nodeId: bigint; timestampMs: number },
): bigint {
  const dir = path.join(dataDir, "dbs", db, "ltx");
  fs.mkdirSync(dir, { recursive: true });
  const page = new Uint8Array(PAGE_SIZE);
  page.set(Buffer.from(`fabricated snapshot at ${snap.maxTxid}`, "latin1"), 100);
  const bytes = encodeLtx(
    {
      flags: 0,
      pageSize: PAGE_SIZE,
      commit: 1,
      minTxid: 1n,
      maxTxid: snap.maxTxid,
      timestamp: snap.timestampMs,
      preApplyChecksum: 0n,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: snap.nodeId,
    },
    [{ pgno: 1, data: page }],
  );
  fs.writeFileSync(path.join(dir, formatFileName(1n, snap.maxTxid)), bytes);
  return new DataView(bytes.buffer, bytes.byteOffset + bytes.byteLength - 16, 8).getBigUint64(0);
}

/**
 * Writes a chain of transactions `from..to` by `nodeId`, continuing from `preApply`, with timestamps
 * `startMs + 1000 * i`; returns every TXID's post-apply checksum. `salt` makes a different history.
 */
export function writeFabricatedChain(
  dataDir: string,
  db: string,
  options: {
    from: bigint;
    to: bigint;
    nodeId: bigint;
    startMs: number;
    preApply?: bigint;
    salt?: bigint;
    quarantine?: string;
    tokens?: Map<bigint, number[]>;
  },
): Map<bigint, bigint> {
  const sums = new Map<bigint, bigint>();
  let pre = options.preApply ?? 0n;
  for (let txid = options.from; txid <= options.to; txid++) {
    const post = writeFabricatedTx(dataDir, db, {
      txid,
      nodeId: options.nodeId,
      timestampMs: options.startMs + 1000 * Number(txid - options.from),
      preApply: pre,
      postApply: (options.salt ?? 0n) * 1_000_000n + txid * 7919n,
      tokens: options.tokens?.get(txid),
      quarantine: options.quarantine,
    });
    sums.set(txid, post);
    pre = post;
  }
  return sums;
}

/** A real SQLite database at `file` with the chaos app's schema and rows `ids`. */
export async function writeAcksDatabase(file: string, ids: readonly number[]): Promise<void> {
  const inserts = ids.map((id) => `INSERT INTO acks VALUES (${id}, '${ackToken(id)}');`).join("\n");
  const script = `BEGIN;\nCREATE TABLE acks (id INTEGER PRIMARY KEY, token TEXT NOT NULL);\n${inserts}\nCOMMIT;\n`;
  const result = await runCommand(SQLITE3_CLI, [file], { input: script });
  if (result.code !== 0) throw new Error(`sqlite3 ${file}: ${result.stderr}`);
}
