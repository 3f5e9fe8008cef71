// What the node's lease role manager (lease-role.ts) switches on the node, and its refusals. The node
// (litefs-node.ts) implements `RoleHost`: it owns the replica client, the stream server and the epoch
// files; the role manager owns the decision of which role the node has.

import type { Lease, PrimaryInfo } from "../lease/index.js";

/** A replica's stream on this primary, as the handoff needs it. */
export interface HandoffTarget {
  readonly candidate: boolean;
  caughtUp(): boolean;
  handOff(fromEpoch: bigint): Promise<void>;
}

/** Why the node stopped being primary. */
export type DemotionReason = "lease-lost" | "handed-off" | "shutdown";

/** What the role manager switches on the node. */
export interface RoleHost {
  /** Stops replicating, takes the cluster id, records the epoch; throws to refuse (lease released). */
  enterPrimary(lease: Lease): Promise<void>;
  /** Ends the streams with `reason` and starts following the primary (`primaryChanged` follows). */
  enterReplica(reason: DemotionReason | "start"): Promise<void>;
  /** The holder changed while this node is a replica (null: none known). */
  primaryChanged(holder: PrimaryInfo | null): void;
  /**
   * This node holds a lease handed over by `from` and waits for its HANDOFF frame: replicate from
   * `from` (now, if the stream to it is down) — it sends what this node lacks, then the frame.
   */
  awaitingHandoffFrom(from: PrimaryInfo): void;
  /** True once the replica caught up with the primary it follows now. */
  replicaSynced(): boolean;
  /**
   * A value that changes whenever this node applies a replicated transaction (the sum of its
   * databases' TXIDs). A handoff's target keeps waiting for the HANDOFF frame while it changes: the
   * frame comes after the transactions still arriving. Absent: the wait has its fixed bound only.
   */
  replicationProgress?(): bigint;
  /** The connected replica `nodeId` (16 hex digits) on this primary. */
  handoffTarget(nodeId: string): HandoffTarget | undefined;
  /** True while a local connection's write transaction on any database is in flight (a handoff's drain). */
  localWritersActive(): boolean;
  /** Writes the node's proxy has passed to the local application and not yet answered (0: no proxy). */
  proxyWritesInFlight(): number;
  /** A connected, caught-up candidate replica to hand off to on shutdown. */
  shutdownTarget(): string | undefined;
  /**
   * A handoff's first step, before anything stops: while replica `nodeId` is applying a backlog, this
   * node's commits are answered at the pace it applies them until it is close behind (bounded; never
   * throws), so that what it lacks when the commits stop — applied inside the write gap — is little.
   * `abandoned`: true once the handoff cannot go on (the step ends at once).
   */
  paceHandoff(nodeId: string, abandoned: () => boolean): Promise<void>;
  /** Asks the primary at `url` to hand its lease to this node (`lease.promote`). */
  requestHandoff(url: string): Promise<void>;
  /** Lease events for metrics and `/events`. */
  leaseAcquired(epoch: bigint): void;
  leaseLost(reason: string): void;
}

/** A refusal with a stable code, for the node API's answers. */
export class RoleError extends Error {
  override readonly name = "RoleError";
  constructor(
    readonly code: "ENOTPRIMARY" | "ENOTCANDIDATE" | "ENOREPLICA" | "EHANDOFFTIMEOUT" | "ELEASENOTSUPPORTED",
    message: string,
  ) {
    super(`${message} (${code})`);
  }
}
