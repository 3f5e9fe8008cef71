// Builds the node's candidate election (candidate-election.ts) from `lease.*`, and reads the node's
// replication position from its store and epoch files. Only etcd leases rank candidates: a static
// lease has one candidate, and Consul (never run against a real server here) races as before.

import type { LeaseConfig } from "../config/config.js";
import { EtcdCandidateBoard } from "../lease/etcd-candidate-board.js";
import { epochOfTxid } from "../store/epoch-history.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { CandidateElection } from "./candidate-election.js";
import type { DatabasePosition, ReplicationPosition } from "./candidate-ranking.js";
import type { EpochRecorder } from "./epoch-recorder.js";

export interface CandidateElectionFromConfigOptions {
  readonly lease: LeaseConfig;
  /** This node's id (16 hex digits). */
  readonly nodeId: string;
  readonly store: Store;
  readonly epochs: EpochRecorder;
  readonly log: StoreLogger;
}

/** The election for this node, or undefined when its lease does not rank candidates. */
export function candidateElectionFromConfig(
  opts: CandidateElectionFromConfigOptions,
): CandidateElection | undefined {
  const { lease, log } = opts;
  if (lease.type !== "etcd" || !lease.candidate || lease.electionWaitMs <= 0) return undefined;
  // A missing endpoint or key is reported by leaserFromConfig, which refuses to start.
  if (lease.etcd.endpoints.length === 0 || lease.etcd.key === undefined) return undefined;
  const board = new EtcdCandidateBoard({
    endpoints: lease.etcd.endpoints,
    key: lease.etcd.key,
    nodeId: opts.nodeId,
    hostname: lease.hostname,
    ttlMs: lease.ttlMs,
    onBackgroundError: (err) => log.debug("candidate record not written; retrying", { error: err.message }),
  });
  return new CandidateElection({
    board,
    position: () => replicationPosition(opts.store, opts.epochs, lease.databases),
    maxWaitMs: lease.electionWaitMs,
    log,
  });
}

/**
 * Per database (only `databases` when not empty): the TXID of its last transaction and the epoch that
 * transaction was written under, from the `epochs` file (0 when no line covers it).
 */
export function replicationPosition(
  store: Store,
  epochs: EpochRecorder,
  databases: readonly string[],
): ReplicationPosition {
  const only = databases.length === 0 ? null : new Set(databases);
  const position = new Map<string, DatabasePosition>();
  for (const db of store.databases()) {
    if (only !== null && !only.has(db.name)) continue;
    const txid = db.pos.txid;
    const epoch = txid === 0n ? 0n : (epochOfTxid(epochs.historyOf(db.name).history, txid) ?? 0n);
    position.set(db.name, { epoch, txid });
  }
  return position;
}
