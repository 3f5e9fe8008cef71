// The cluster id in `<data>/clusterid`: which cluster a node's data belongs to, so that two clusters
// that share a network (a staging replica pointed at the production primary by mistake) refuse each
// other instead of mixing databases. The primary generates it once; a replica adopts the primary's the
// first time it connects and refuses any other primary from then on.
//
// Format: this node generates LiteFS's ("LFSC" followed by 16 uppercase hex digits) and accepts any id
// the stream protocol allows (1..64 of [A-Za-z0-9_-]) from a primary. One line, written crash-safely.

import crypto from "node:crypto";
import fs from "node:fs";

import type { DataDir } from "./data-dir.js";
import { writeFileDurably } from "./durable-file.js";
import { StoreError } from "./store-error.js";

const CLUSTER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Why `text` cannot be a cluster id, or null when it can. */
export function clusterIdFormatProblem(text: string): string | null {
  return CLUSTER_ID.test(text) ? null : `${JSON.stringify(text.slice(0, 40))} is not 1..64 of [A-Za-z0-9_-]`;
}

export function generateClusterId(): string {
  return "LFSC" + crypto.randomBytes(8).toString("hex").toUpperCase();
}

/** The stored cluster id, or null when the data directory has none yet. Throws EDATADIR when damaged. */
export function readClusterId(dataDir: DataDir): string | null {
  let text: string;
  try {
    text = fs.readFileSync(dataDir.clusterIdFile, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const problem = clusterIdFormatProblem(text);
  if (problem !== null) {
    throw new StoreError("EDATADIR", `cluster id file holds ${problem}`, { file: dataDir.clusterIdFile });
  }
  return text;
}

/** Stores `id` (temp → fsync → rename). Throws EDATADIR for an id of the wrong format. */
export function writeClusterId(dataDir: DataDir, id: string, opts: { noSync?: boolean } = {}): void {
  const problem = clusterIdFormatProblem(id);
  if (problem !== null) throw new StoreError("EDATADIR", `refusing to store cluster id ${problem}`);
  writeFileDurably(dataDir.clusterIdFile, [Buffer.from(id + "\n")], opts);
}

/** The stored cluster id, generating and storing a new one when there is none (on a primary). */
export function loadOrCreateClusterId(dataDir: DataDir, opts: { noSync?: boolean } = {}): string {
  const existing = readClusterId(dataDir);
  if (existing !== null) return existing;
  const id = generateClusterId();
  writeClusterId(dataDir, id, opts);
  return id;
}
