// What the proxy needs to know about the node it runs on. The node layer implements it over the store
// and the lease; tests implement it with a small object whose positions they move by hand. The proxy
// imports nothing from store or lease: this interface is its whole view of replication.

import type { TxPosition } from "./txid-token.js";

export interface ProxyNodeView {
  /** True while this node holds the lease; writes then go to the local app. */
  isPrimary(): boolean;
  /**
   * True while this primary hands its lease off (its new write transactions are refused): a write
   * arriving now waits until the handoff is over, then goes to whichever node is primary — this one
   * again if the handoff failed. Optional: never, when absent.
   */
  handingOff?(): boolean;
  /**
   * The lease epoch this primary commits under, read when a write goes to the local app; undefined on
   * a replica. Optional, with `mayAcknowledge`: a view without them has every answer relayed.
   */
  primaryEpoch?(): bigint | undefined;
  /**
   * Whether the app's success answer to a write it ran while this node was primary under `epoch` may
   * reach the client: false once that term ended in a way the next primary may not have the write
   * (the lease expired or was taken, not handed off) — the answer would promise what replication,
   * being asynchronous, does not keep. The proxy then answers EPROXYLEASELOST instead.
   */
  mayAcknowledge?(epoch: bigint): boolean;
  /**
   * Base URL of the primary's proxy (e.g. "http://10.0.0.2:8080"), where writes reaching a replica are
   * forwarded; undefined while no primary is known (or on the primary itself).
   */
  primaryProxyURL(): string | undefined;
  /** The primary's hostname as the lease records it, for `fly-replay: instance=<hostname>`. */
  primaryHostname(): string | undefined;
  /** The local TXID of database `db` (0n when it does not exist yet). Cheap: called on every read. */
  txid(db: string): bigint;
  /** The local position of `db` (TXID 0, checksum 0 when it does not exist). Cheap: called on every write. */
  position(db: string): TxPosition;
  /**
   * The post-apply checksum of TXID `txid` in the local history of `db`; undefined when the history
   * does not reach `txid` or this node no longer knows it (a snapshot replaced the files, retention).
   * Cheap for recent TXIDs: called on reads that carry a token.
   */
  checksumAt(db: string, txid: bigint): bigint | undefined;
  /**
   * Resolves once the local TXID of `db` is ≥ `txid`. Rejects (with any error) when `signal` aborts;
   * the proxy aborts it on timeout and when the client goes away, so it must not leak waiters.
   */
  waitForTxid(db: string, txid: bigint, signal: AbortSignal): Promise<void>;
  /** How far this node is behind the primary, in milliseconds (0 on the primary). */
  lagMs(): number;
}
