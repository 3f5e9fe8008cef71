// Ranking lease candidates by how much of the replicated history they hold (docs/lease.md, "Choosing
// among candidates"). Pure: no I/O, no clock of its own.
//
// A node's position is, per database, the pair (epoch of its last transaction, TXID of its last
// transaction). Pairs compare lexicographically: a later epoch wins whatever the TXIDs, because a
// history that continues under a newer lease supersedes the older branch (a deposed primary may have
// higher TXIDs of its own that the cluster will quarantine). A database a node does not have counts as
// (0, 0). Node A is strictly newer than node B when A is ahead on at least one database and behind on
// none; two nodes each ahead somewhere are not ordered, and neither waits for the other.

import { parseJsonObject } from "../lease/candidate-board.js";

export interface DatabasePosition {
  /** The lease epoch the database's last transaction was written under (0 when unknown). */
  readonly epoch: bigint;
  /** The database's last transaction (0 when empty). */
  readonly txid: bigint;
}

/** A node's replication position: database name → position. */
export type ReplicationPosition = ReadonlyMap<string, DatabasePosition>;

/** Encodes `position` so that equal positions give equal text (databases sorted by name). */
export function encodePosition(position: ReplicationPosition): string {
  const entries = [...position.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const dbs: Record<string, string> = {};
  for (const [name, { epoch, txid }] of entries) dbs[name] = `${epoch.toString()}/${txid.toString(16)}`;
  return JSON.stringify({ v: 1, dbs });
}

/** The position in `text`, or null when it is not one this version understands. */
export function decodePosition(text: string): ReplicationPosition | null {
  const record = parseJsonObject(text);
  if (record === null) return null;
  if (record.v !== 1 || typeof record.dbs !== "object" || record.dbs === null) return null;
  const position = new Map<string, DatabasePosition>();
  for (const [name, field] of Object.entries(record.dbs as Record<string, unknown>)) {
    const match = typeof field === "string" ? /^([0-9]{1,20})\/([0-9a-f]{1,16})$/.exec(field) : null;
    if (match === null) return null;
    position.set(name, { epoch: BigInt(match[1]), txid: BigInt(`0x${match[2]}`) });
  }
  return position;
}

/** -1, 0 or 1 as `a` is behind, level with or ahead of `b` on one database. */
export function compareDatabasePositions(a: DatabasePosition, b: DatabasePosition): -1 | 0 | 1 {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch ? 1 : -1;
  if (a.txid !== b.txid) return a.txid > b.txid ? 1 : -1;
  return 0;
}

const NOTHING: DatabasePosition = { epoch: 0n, txid: 0n };

/** True when `a` is ahead of `b` on at least one database and behind on none. */
export function isStrictlyNewer(a: ReplicationPosition, b: ReplicationPosition): boolean {
  let ahead = false;
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const order = compareDatabasePositions(a.get(name) ?? NOTHING, b.get(name) ?? NOTHING);
    if (order < 0) return false;
    if (order > 0) ahead = true;
  }
  return ahead;
}

/** Another live candidate as the election sees it. */
export interface RankedCandidate {
  readonly nodeId: string;
  readonly hostname: string;
  /** Null when its record could not be decoded (another version): never waited for. */
  readonly position: ReplicationPosition | null;
}

export interface ElectionContext {
  readonly self: ReplicationPosition;
  readonly others: readonly RankedCandidate[];
  readonly nowMs: number;
  /** When this node first let a newer candidate go first in this vacancy; null when it has not. */
  readonly waitingSinceMs: number | null;
  /** The longest it lets newer candidates go first (ms); ≤ 0 turns ranking off. */
  readonly maxWaitMs: number;
}

export type ElectionVerdict =
  | { readonly kind: "acquire"; readonly reason: "newest" | "ranking-off" | "waited-out" }
  | {
      readonly kind: "wait";
      /** The newer candidate it waits for (the first found). */
      readonly newer: RankedCandidate;
      /** When the wait started (keep it for the next call). */
      readonly waitingSinceMs: number;
      /** Give up waiting at this time. */
      readonly untilMs: number;
    };

/**
 * Should this candidate try to take the free lease now? Yes unless another live candidate is strictly
 * newer and this node has let newer candidates go first for less than `maxWaitMs` in this vacancy.
 * The bound is what keeps a newer candidate that cannot take the lease (its record still alive) from
 * blocking failover.
 */
export function electionVerdict(ctx: ElectionContext): ElectionVerdict {
  if (ctx.maxWaitMs <= 0) return { kind: "acquire", reason: "ranking-off" };
  const newer = ctx.others.find((c) => c.position !== null && isStrictlyNewer(c.position, ctx.self));
  if (newer === undefined) return { kind: "acquire", reason: "newest" };
  const waitingSinceMs = ctx.waitingSinceMs ?? ctx.nowMs;
  const untilMs = waitingSinceMs + ctx.maxWaitMs;
  if (ctx.nowMs >= untilMs) return { kind: "acquire", reason: "waited-out" };
  return { kind: "wait", newer, waitingSinceMs, untilMs };
}

/** A short text of a position for logs: "db@epoch/txid, …". */
export function describePosition(position: ReplicationPosition | null): string {
  if (position === null) return "unknown";
  if (position.size === 0) return "empty";
  return [...position.entries()]
    .map(([name, { epoch, txid }]) => `${name}@${epoch}/${txid.toString(16).padStart(16, "0")}`)
    .join(", ");
}
