// Who committed which transaction, read back from the LTX files every node keeps: its `ltx/` folder
// and its quarantine (a replica's diverged transactions, moved aside instead of dropped). Each LTX
// header names the node that wrote the transaction (`nodeId`) and when (`timestamp`), and a replica
// keeps the primary's files as they were, so the union over all nodes is the cluster's history.
import * as fs from "node:fs";
import * as path from "node:path";

import { readLtxHeaderAndTrailer } from "../../src/store/ltx-file-reader.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import type { LitefsNode } from "../support/litefs-node.js";

export interface LtxRecord {
  /** The node whose disk holds the file. */
  readonly holder: string;
  readonly file: string;
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  /** The node that wrote the transactions (the LTX header's node id). */
  readonly writer: bigint;
  /** Milliseconds since the Unix epoch, when the writer committed. */
  readonly timestamp: number;
  readonly quarantined: boolean;
}

/** Every LTX file of `db` on the node's disk (live history and quarantine). */
export function readLtxHistory(holder: string, node: LitefsNode, db: string): LtxRecord[] {
  const dirs: Array<{ dir: string; quarantined: boolean }> = [{ dir: node.ltxDir(db), quarantined: false }];
  const quarantine = path.join(node.dataDir, "quarantine", db);
  if (fs.existsSync(quarantine)) {
    for (const entry of fs.readdirSync(quarantine)) {
      dirs.push({ dir: path.join(quarantine, entry), quarantined: true });
    }
  }
  const records: LtxRecord[] = [];
  for (const { dir, quarantined } of dirs) {
    for (const file of listLtxFiles(dir)) {
      let header;
      try {
        header = readLtxHeaderAndTrailer(file.path).header;
      } catch (err) {
        // Retention may remove a file between the listing and the read.
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      records.push({
        holder,
        file: file.path,
        minTxid: header.minTxid,
        maxTxid: header.maxTxid,
        writer: header.nodeId,
        timestamp: header.timestamp,
        quarantined,
      });
    }
  }
  return records;
}

/**
 * TXIDs committed by more than one node, as "txid: writer, writer (files)" lines; [] when every TXID has
 * one writer. Snapshots (min TXID 1, max > 1) are left out: a catch-up snapshot carries the node id
 * of the primary that built it for TXIDs other primaries wrote.
 */
export function doubleCommits(records: readonly LtxRecord[]): string[] {
  const writers = new Map<bigint, Map<bigint, string[]>>();
  for (const r of records) {
    if (r.minTxid === 1n && r.maxTxid > 1n) continue;
    for (let txid = r.minTxid; txid <= r.maxTxid; txid++) {
      let byWriter = writers.get(txid);
      if (byWriter === undefined) writers.set(txid, (byWriter = new Map()));
      const files = byWriter.get(r.writer) ?? [];
      files.push(`${r.holder}:${path.basename(r.file)}${r.quarantined ? " (quarantined)" : ""}`);
      byWriter.set(r.writer, files);
    }
  }
  const problems: string[] = [];
  for (const [txid, byWriter] of [...writers].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (byWriter.size < 2) continue;
    const detail = [...byWriter].map(([w, files]) => `${hex(w)} [${files.join(", ")}]`).join("; ");
    problems.push(`TXID ${txid}: ${detail}`);
  }
  return problems;
}

export function hex(n: bigint): string {
  return n.toString(16).padStart(16, "0");
}
