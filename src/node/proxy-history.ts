// Which checksum each recent TXID has in a node's own history, for the proxy's read-your-writes check
// (src/proxy/read-your-writes.ts): a read carrying the position TXID/CHECKSUM of the client's last write
// is served only where the local history holds that TXID with that checksum.
//
// Kept in memory from the store's commit events (the last RECENT_PER_DATABASE commits of each
// database), with the LTX files on disk as the fallback for older TXIDs and after a restart: a
// database's LTX directory holds exactly its current history (a snapshot removes the files it
// supersedes, a diverged history is moved to quarantine before it is replaced). A commit that does not
// continue the previous one — a snapshot, or a history replaced from another primary — starts the
// in-memory record over, so a replaced branch is never remembered as the current one.

import path from "node:path";

import { formatFileName, parseFileName } from "../ltx/file-name.js";
import { posEqual, type Pos } from "../ltx/pos.js";
import type { CommitEvent } from "../store/commit-event.js";
import { readLtxHeaderAndTrailer } from "../store/ltx-file-reader.js";
import type { Store } from "../store/store.js";

/** Commits remembered per database (16 bytes of data each, plus the map's overhead). */
export const RECENT_PER_DATABASE = 4096;

interface DatabaseRecord {
  /** The position after the last commit recorded. */
  last: Pos;
  /** TXID → post-apply checksum, in TXID order (oldest first: evicted first). */
  readonly checksums: Map<bigint, bigint>;
}

export class RecentPositions {
  readonly #store: Store;
  readonly #perDatabase: number;
  readonly #records = new Map<string, DatabaseRecord>();

  constructor(store: Store, perDatabase = RECENT_PER_DATABASE) {
    if (!(perDatabase >= 1)) throw new RangeError(`RecentPositions: perDatabase ${perDatabase} < 1`);
    this.#store = store;
    this.#perDatabase = perDatabase;
  }

  /** Records a commit (call for every commit event of the store, in order). */
  record(event: CommitEvent): void {
    const record = this.#records.get(event.db);
    const minTxid = minTxidOf(event);
    const continues =
      record !== undefined &&
      posEqual(record.last, event.prevPos) &&
      minTxid === event.prevPos.txid + 1n &&
      event.pos.txid >= minTxid;
    if (!continues) {
      this.#records.set(event.db, {
        last: event.pos,
        checksums: new Map([[event.pos.txid, event.pos.checksum]]),
      });
      return;
    }
    record.last = event.pos;
    record.checksums.set(event.pos.txid, event.pos.checksum);
    while (record.checksums.size > this.#perDatabase) {
      const oldest = record.checksums.keys().next().value as bigint;
      record.checksums.delete(oldest);
    }
  }

  /**
   * The post-apply checksum of `txid` in `db`'s current history; undefined when the history does not
   * reach it or nothing records it (no LTX file ends at exactly that TXID any more).
   */
  checksumAt(db: string, txid: bigint): bigint | undefined {
    const database = this.#store.db(db);
    if (database === undefined) return undefined;
    const pos = database.pos;
    if (txid > pos.txid || txid <= 0n) return undefined;
    if (txid === pos.txid) return pos.checksum;
    const record = this.#records.get(db);
    if (record !== undefined && posEqual(record.last, pos)) {
      const known = record.checksums.get(txid);
      if (known !== undefined) return known;
    }
    try {
      const file = path.join(database.dir.ltxDir, formatFileName(txid, txid));
      const { header, trailer } = readLtxHeaderAndTrailer(file);
      return header.maxTxid === txid ? trailer.postApplyChecksum : undefined;
    } catch {
      return undefined; // no such file (retention, a snapshot), or unreadable: not known
    }
  }
}

/** The first TXID of the event's LTX file (its name says), or the TXID itself when it does not parse. */
function minTxidOf(event: CommitEvent): bigint {
  try {
    return parseFileName(path.basename(event.ltxPath)).minTxid;
  } catch {
    return event.pos.txid;
  }
}
