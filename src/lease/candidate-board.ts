// Where lease candidates publish how far their replication has come, so that when the lease is free
// the most up-to-date live candidate can take it first (docs/lease.md, "Choosing among candidates").
// The lease layer knows nothing of SQLite: a position is an opaque string the node layer encodes and
// ranks. A record lives only as long as its publisher's session at the coordinator (an etcd lease):
// a dead or cut-off candidate's record disappears by itself within about one TTL.

/** One candidate's published record. */
export interface CandidateRecord {
  /** The publisher's node id (16 hex digits). */
  readonly nodeId: string;
  readonly hostname: string;
  /** The publisher's replication position, as the node layer encoded it. */
  readonly position: string;
}

export interface CandidateBoard {
  /**
   * Sets what this node publishes: `position`, or nothing (`null`: the record is withdrawn). Returns at
   * once; the coordinator is written in the background, one request at a time, always with the latest
   * value (intermediate values may be skipped).
   */
  publish(position: string | null): void;
  /** The records of every other candidate whose session is alive now (one read at the coordinator). */
  others(signal?: AbortSignal): Promise<CandidateRecord[]>;
  /** Withdraws this node's record and stops; later calls of `others` reject with ELEASECLOSED. */
  close(): Promise<void>;
}

/** The JSON object in `text` (a record's or a position's encoding), or null when `text` is not one. */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}
