// What subscribers (replication, events, metrics) learn about each transaction the store commits: the
// LTX file is durable before the event is emitted, and positions only ever move forward by one TXID.

import type { Pos } from "../ltx/pos.js";

export interface CommitEvent {
  readonly db: string;
  /** The position after the transaction (its TXID and post-apply checksum). */
  readonly pos: Pos;
  /** The position before it (pre-apply checksum; TXID 0 before a database's first transaction). */
  readonly prevPos: Pos;
  readonly pageSize: number;
  /** Database size in pages after the transaction; 0 when it deleted the database. */
  readonly commit: number;
  /** Pages carried by the LTX file. */
  readonly pageCount: number;
  readonly ltxPath: string;
  readonly ltxBytes: number;
  /** Milliseconds since the Unix epoch, as written in the LTX header. */
  readonly timestamp: number;
  /** How the commit was detected. */
  readonly source: "journal" | "wal" | "delete" | "import" | "recovery" | "replication";
}

export type CommitListener = (event: CommitEvent) => void;
