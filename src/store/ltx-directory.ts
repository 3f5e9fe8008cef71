// The LTX files of one database on disk (`<db>/ltx/`): listing in TXID order, and clearing leftovers of
// an interrupted write (temporary files never renamed into place).

import fs from "node:fs";
import path from "node:path";

import { ltxFileNameRange } from "../ltx/file-name.js";
import { removeFile, TEMP_SUFFIX } from "./durable-file.js";

export interface LtxFileEntry {
  readonly name: string;
  readonly path: string;
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
}

/** LTX files in `dir`, ascending by TXID; other names are ignored. A missing directory lists nothing. */
export function listLtxFiles(dir: string): LtxFileEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const entries: LtxFileEntry[] = [];
  const prefix = path.join(dir, "/"); // one join, not one per file (100,000 files: ~0.1 s)
  for (const name of names) {
    const range = ltxFileNameRange(name);
    if (range === null) continue;
    entries.push({ name, path: prefix + name, minTxid: range.minTxid, maxTxid: range.maxTxid });
  }
  // Fixed-width hex names: name order is TXID order.
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Removes temporary files left by a write that crashed before its rename; returns their names. */
export function removeTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed = names.filter((name) => name.endsWith(TEMP_SUFFIX));
  for (const name of removed) removeFile(path.join(dir, name));
  return removed;
}
