// The lease contract every coordinator (static, etcd, Consul) implements. The lease layer knows nothing
// of SQLite: it answers "who is primary, since which epoch" and "am I still primary, until when".
//
// Contract for the node that uses it:
// - Write only while `lease.isHeld()` is true, and check it synchronously right before each commit;
//   the `onLost` callback is the prompt to turn read-only, but a callback can run late when the event
//   loop is busy, while `isHeld()` compares the clock with the deadline itself.
// - `lease.epoch` is the fencing token: strictly greater for every new holder than for any earlier
//   holder of the same lease, so replicas can refuse writes stamped with an older epoch.
// - A lease, once not held, never becomes held again: acquire a new one.

/** Who holds the lease, as the coordinator records it. */
export interface PrimaryInfo {
  /** The holder's name as other nodes show it. */
  hostname: string;
  /** The holder's node API URL, e.g. "http://node1:20202". */
  advertiseURL: string;
  /** The holder's node id when the coordinator records it (etcd and Consul do; static does not). */
  nodeId: string | undefined;
  /** The holder's fencing epoch (see `Lease.epoch`). */
  epoch: bigint;
}

/** What this node asks the coordinator to record as the primary when it holds the lease. */
export interface NodeIdentity {
  /** Stable id of this node (used to address handoffs). */
  nodeId: string;
  hostname: string;
  advertiseURL: string;
}

export type LeaseState =
  | "held" // renewing; still check `isHeld()`, which also compares the deadline with the clock
  | "lost" // taken away: renewal failed until the deadline, or the coordinator says it is gone
  | "released" // given up by `release()` (or `close()`)
  | "handed-off"; // given to another node by `handoff()`

export interface Lease {
  /** Fencing token, strictly increasing across holders (etcd: create revision; Consul: ModifyIndex). */
  readonly epoch: bigint;
  /** The TTL the lease was acquired with, in milliseconds. */
  readonly ttlMs: number;
  /** Clock time (ms, monotonic) at which the last successful renewal (or the grant) was *sent*. */
  readonly renewedAt: number;
  /**
   * Clock time (ms, monotonic) after which this node must not act as primary: the send time of the last
   * successful renewal + TTL − safety margin, i.e. strictly before the coordinator can expire the lease.
   */
  readonly expiresAt: number;
  readonly state: LeaseState;
  /**
   * True when this lease was taken through a handoff reservation naming this node (the previous holder
   * handed it over, `handoff()`), false for an ordinary acquire. A node taking a handed-over lease must
   * first have everything the previous holder committed (docs/lease.md, "Handoff").
   */
  readonly viaHandoff: boolean;
  /** True while the state is "held" and the clock is before `expiresAt`. Cheap; call before writes. */
  isHeld(): boolean;
  /** Throws the LeaseLostError (or an ELEASESTATE error) when `isHeld()` is false. */
  assertHeld(): void;
  /** Renews now (also done automatically every TTL/3). Rejects if the lease is not held. */
  renew(): Promise<void>;
  /** Stops acting as primary at once, then tells the coordinator so another node can acquire at once. */
  release(): Promise<void>;
  /**
   * Stops acting as primary at once, then passes the lease to `toNodeId`: that node's next `acquire()`
   * succeeds without waiting for the TTL, and other nodes are refused until the reservation lapses
   * (≤ TTL). If the handoff cannot be confirmed the lease ends as "lost" and the call rejects.
   */
  handoff(toNodeId: string): Promise<void>;
  /**
   * Calls `callback` once if the lease is lost involuntarily (not on release or handoff). If it is
   * already lost, calls it on a later microtask. Returns a function that unsubscribes.
   */
  onLost(callback: (error: Error) => void): () => void;
}

/** Options of one `acquire()`. */
export interface AcquireOptions {
  /**
   * The caller has just seen the lease free or handed to it (a watch showing no holder, a HANDOFF
   * frame): the etcd leaser then asks for its etcd lease alongside the first read instead of after it,
   * one coordinator round trip less (a grant that goes unused is revoked). A hint: it changes the
   * speed, never the outcome. Ignored by the others.
   */
  readonly likelyFree?: boolean;
  /**
   * Asked when the coordinator shows the lease free although the caller believed it held (an attempt
   * made in case its view was stale): false refuses the acquire with ELEASERANKED before anything is
   * written — candidate ranking (a more up-to-date candidate may take it first). Not asked for a lease
   * handed to this node. etcd only (the only lease with ranking); ignored by the others.
   */
  readonly vacancyCheck?: () => Promise<boolean>;
  /**
   * A handoff to this node is expected (it asked for one, or read HANDOFF): when the leaser's watch has
   * just seen the holder's key go, the etcd leaser first tries to take the lease reserved for it in
   * one transaction that names what it expects to find (the reservation for this node, written with
   * that deletion) instead of reading the keys first — one coordinator round trip less on the way to
   * becoming primary. A hint like `likelyFree`: a wrong guess costs that transaction, then the usual
   * read. Ignored by the others.
   */
  readonly handoffExpected?: boolean;
}

export interface Leaser {
  readonly type: "static" | "etcd" | "consul";
  /** This node's identity as it is recorded when it holds the lease. */
  readonly identity: NodeIdentity;
  /**
   * Takes the lease for this node. Rejects with LeaseExistsError (ELEASEEXISTS, with the holder) when
   * another node holds it, LeaseHandoffPendingError (ELEASEHANDOFF) while it is reserved for another
   * node, ELEASEDELAY when a lock delay outlasts the attempt, ELEASEUNAVAILABLE when the coordinator
   * cannot be reached, ELEASESTATE if this leaser holds the lease or is already acquiring. May wait up
   * to the lock delay when the previous holder lost the lease without releasing it.
   */
  acquire(options?: AcquireOptions): Promise<Lease>;
  /**
   * An acquire is expected soon (this node asked for a handoff): work that does not depend on the
   * lease's state may start now, so that the acquire has less left to do. Optional; never throws.
   */
  prepareAcquire?(): void;
  /** The current holder, or null when nobody holds the lease. */
  primaryInfo(): Promise<PrimaryInfo | null>;
  /**
   * The current holder first, then every change of holder (deduplicated), until `signal` aborts or
   * the leaser is closed; then the iteration ends without an error. Coordinator outages are retried;
   * nothing is yielded while the holder is unknown.
   */
  watch(signal: AbortSignal): AsyncIterable<PrimaryInfo | null>;
  /** The cluster id stored beside the lease, or null when none has been set. */
  clusterId(): Promise<string | null>;
  /** Stores `id` as the cluster id unless one is already stored; returns the id that is stored now. */
  setClusterIdIfAbsent(id: string): Promise<string>;
  /** Releases a held lease (if any), ends watches, and refuses further calls with ELEASECLOSED. */
  close(): Promise<void>;
}
