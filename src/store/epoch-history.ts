// Which lease epoch every transaction was written under, kept beside the data so it survives restarts:
//
//   <data>/epoch             the highest lease epoch this node has seen (decimal, one line): a replica
//                            sends it as `epochSeen` and refuses any primary below it, also after a restart
//   <data>/dbs/<db>/epochs   one line "<epoch> <firstTXID>" (decimal epoch, 16 hex digits TXID) per epoch
//                            change: from firstTXID on, the database's transactions were written under epoch
//
// A line is appended (and fsynced) when a primary commits its first transaction of a database under a
// new epoch, or a replica applies the first transaction streamed under a new epoch. Lines only ever go
// up in epoch. A later line with a lower firstTXID (a replica whose history was replaced by a snapshot
// from a newer primary) supersedes every earlier line from that TXID on: the file is a log, and
// `epochOfTxid` replays it.

import fs from "node:fs";
import path from "node:path";

import { fsyncPathAsync, writeFileDurablyAsync } from "./durable-file.js";
import { StoreError } from "./store-error.js";

/** One line of a database's epoch history. */
export interface EpochChange {
  readonly epoch: bigint;
  readonly firstTxid: bigint;
}

export const EPOCH_FILE_NAME = "epoch";
export const EPOCH_HISTORY_FILE_NAME = "epochs";

/** The highest epoch recorded in `<dataRoot>/epoch`, 0 when there is none yet. */
export function readHighestEpoch(dataRoot: string): bigint {
  const file = path.join(dataRoot, EPOCH_FILE_NAME);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0n;
    throw err;
  }
  const trimmed = text.trim();
  if (!/^[0-9]{1,20}$/.test(trimmed)) {
    throw new StoreError("EDBFILE", `${file}: not a decimal epoch: ${JSON.stringify(trimmed.slice(0, 40))}`);
  }
  return BigInt(trimmed);
}

/**
 * Records `epoch` as the highest seen, durably (temp file, fsync, rename, fsync of the directory; the
 * fsyncs on the thread pool).
 */
export async function writeHighestEpochAsync(
  dataRoot: string,
  epoch: bigint,
  opts: { noSync?: boolean } = {},
): Promise<void> {
  if (epoch < 0n) throw new RangeError(`epoch ${epoch} is negative`);
  fs.mkdirSync(dataRoot, { recursive: true });
  await writeFileDurablyAsync(path.join(dataRoot, EPOCH_FILE_NAME), [Buffer.from(`${epoch}\n`)], opts);
}

/** Parses an epoch history file's text; throws EDBFILE on a malformed line or an epoch going down. */
export function parseEpochHistory(text: string, where: string): EpochChange[] {
  const out: EpochChange[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const match = /^([0-9]{1,20}) ([0-9a-f]{16})$/.exec(line);
    if (match === null) {
      // A crash can leave a torn last line (appends are not atomic): ignore only that one.
      if (i === lines.length - 1) break;
      throw new StoreError("EDBFILE", `${where}:${i + 1}: not "<epoch> <16 hex TXID>": ${line.slice(0, 60)}`);
    }
    const change = { epoch: BigInt(match[1]), firstTxid: BigInt("0x" + match[2]) };
    const last = out.at(-1);
    if (last !== undefined && change.epoch <= last.epoch) {
      throw new StoreError("EDBFILE", `${where}:${i + 1}: epoch ${change.epoch} after ${last.epoch}`);
    }
    out.push(change);
  }
  return out;
}

/** The lines of `history` still in force: each line cuts what earlier lines said from its firstTXID on. */
export function effectiveEpochHistory(history: readonly EpochChange[]): EpochChange[] {
  const effective: EpochChange[] = [];
  for (const change of history) {
    while (effective.length > 0 && effective[effective.length - 1].firstTxid >= change.firstTxid) {
      effective.pop();
    }
    effective.push(change);
  }
  return effective;
}

/**
 * The lines of `history` in force from `fromTxid` on: the one covering `fromTxid` (when any), then every
 * later one, ascending. What a primary tells a replica at `fromTxid - 1` (the stream's answer header),
 * so that the replica attributes each transaction it receives to the epoch it was written under.
 */
export function epochHistoryFrom(history: readonly EpochChange[], fromTxid: bigint): EpochChange[] {
  const effective = effectiveEpochHistory(history);
  let start = 0;
  for (let i = 0; i < effective.length; i++) if (effective[i].firstTxid <= fromTxid) start = i;
  return effective.slice(start);
}

/**
 * Attributes the transactions `first`…`last` to epochs: [firstTxid, epoch] runs, ascending, per
 * `primaryLines` (the primary's history, epochHistoryFrom) — a TXID no line covers, or covered by a line
 * above `streamEpoch`, goes to `streamEpoch`.
 */
export function epochRuns(
  primaryLines: readonly EpochChange[],
  first: bigint,
  last: bigint,
  streamEpoch: bigint,
): EpochChange[] {
  const clamp = (epoch: bigint | null): bigint =>
    epoch === null || epoch > streamEpoch ? streamEpoch : epoch;
  // One pass over the lines in force (ascending): called for every replicated commit.
  let covering: bigint | null = null;
  const runs: EpochChange[] = [];
  for (const line of effectiveEpochHistory(primaryLines)) {
    if (line.firstTxid <= first) {
      covering = line.epoch;
      continue;
    }
    if (line.firstTxid > last) break;
    if (runs.length === 0) runs.push({ epoch: clamp(covering), firstTxid: first });
    const epoch = clamp(line.epoch);
    if (epoch !== runs[runs.length - 1].epoch) runs.push({ epoch, firstTxid: line.firstTxid });
  }
  return runs.length > 0 ? runs : [{ epoch: clamp(covering), firstTxid: first }];
}

/** The epoch `txid` was written under according to `history`, or null when no line covers it. */
export function epochOfTxid(history: readonly EpochChange[], txid: bigint): bigint | null {
  const effective = effectiveEpochHistory(history);
  let found: bigint | null = null;
  for (const change of effective) {
    if (change.firstTxid <= txid) found = change.epoch;
    else break;
  }
  return found;
}

/** One database's `epochs` file: read once, then appended to. */
export class EpochHistoryFile {
  readonly file: string;
  readonly #noSync: boolean;
  #history: EpochChange[];

  constructor(dbDir: string, opts: { noSync?: boolean } = {}) {
    this.file = path.join(dbDir, EPOCH_HISTORY_FILE_NAME);
    this.#noSync = opts.noSync === true;
    let text = "";
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    this.#history = parseEpochHistory(text, this.file);
  }

  get history(): readonly EpochChange[] {
    return this.#history;
  }

  /** The epoch of the last line, 0 when the file is empty. */
  get lastEpoch(): bigint {
    return this.#history.at(-1)?.epoch ?? 0n;
  }

  /**
   * Appends "<epoch> <firstTxid>" unless `epoch` is already the last line's; resolves once the line is
   * durable, true when one was added. The append is made here (quick system calls), so lines reach the
   * file and `history` (which candidate ranking reads) in call order at once; the fsyncs run on the
   * thread pool. A replica records an epoch at its first transaction applied under it, per database:
   * with the fsyncs on the event loop, a handoff held its FUSE requests for one fsync per database
   * written (0.3–11 ms each, session 18). Rejects with a RangeError for an epoch below the last one, or
   * with the write's error (nothing added: the next transaction under that epoch tries again); a failed
   * fsync rejects with the line kept (appending it again would repeat its epoch, which the parser refuses).
   */
  async record(epoch: bigint, firstTxid: bigint): Promise<boolean> {
    const line = this.#lineFor(epoch, firstTxid);
    if (line === null) return false;
    const created = !fs.existsSync(this.file);
    const fd = fs.openSync(this.file, "a", 0o644);
    try {
      fs.writeSync(fd, line);
    } finally {
      fs.closeSync(fd);
    }
    this.#history.push({ epoch, firstTxid });
    if (!this.#noSync) {
      await fsyncPathAsync(this.file); // through a descriptor of its own: fsync is per file
      if (created) await fsyncPathAsync(path.dirname(this.file));
    }
    return true;
  }

  /** The line recording `epoch` from `firstTxid`; null when it is the last line's epoch already. */
  #lineFor(epoch: bigint, firstTxid: bigint): string | null {
    if (epoch === this.lastEpoch) return null;
    if (epoch < this.lastEpoch) {
      throw new RangeError(`${this.file}: epoch ${epoch} is below the recorded ${this.lastEpoch}`);
    }
    return `${epoch} ${firstTxid.toString(16).padStart(16, "0")}\n`;
  }
}
