// The static lease, as in LiteFS: the configuration names one primary for good. The node configured as
// `candidate` is the primary and its lease is never lost; every other node learns the primary's
// hostname and advertise URL from its own configuration. No coordinator, hence no failover, no handoff
// and no shared storage: the cluster id is kept only in this process (the node persists it itself).
import { type Clock, systemClock } from "./clock.js";
import { LeaseError, LeaseExistsError } from "./lease-error.js";
import type { Lease, Leaser, LeaseState, NodeIdentity, PrimaryInfo } from "./leaser.js";

export interface StaticLeaserOptions {
  /**
   * On the primary: its own identity. On a replica: the primary's hostname and advertise URL (the
   * node id is this node's own, used only to name it).
   */
  identity: NodeIdentity;
  /** True on the one node that is the primary. */
  candidate: boolean;
  clock?: Clock;
}

/** The fixed epoch of a static primary: there is only ever one holder. */
export const STATIC_LEASE_EPOCH = 1n;

export class StaticLeaser implements Leaser {
  readonly type = "static";
  readonly identity: NodeIdentity;
  readonly candidate: boolean;
  readonly #clock: Clock;
  readonly #closing = new AbortController();
  #clusterId: string | null = null;
  #held: StaticLease | undefined;

  constructor(options: StaticLeaserOptions) {
    this.identity = options.identity;
    this.candidate = options.candidate;
    this.#clock = options.clock ?? systemClock;
  }

  /** On the candidate: a lease that never expires. Elsewhere: LeaseExistsError naming the primary. */
  async acquire(): Promise<Lease> {
    this.#assertOpen();
    if (!this.candidate) throw new LeaseExistsError(this.#primary(), { where: "static lease" });
    if (this.#held?.state === "held") {
      throw new LeaseError("ELEASESTATE", "this node already holds the static lease", {
        where: "static lease",
      });
    }
    this.#held = new StaticLease(this.#clock.now());
    return this.#held;
  }

  /** The configured primary (on the primary itself: its own identity). */
  async primaryInfo(): Promise<PrimaryInfo | null> {
    this.#assertOpen();
    return this.#primary();
  }

  /** Yields the configured primary once, then waits for `signal` (it never changes). */
  async *watch(signal: AbortSignal): AsyncGenerator<PrimaryInfo | null> {
    this.#assertOpen();
    yield this.#primary();
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    if (stop.aborted) return;
    await new Promise<void>((resolve) => stop.addEventListener("abort", () => resolve(), { once: true }));
  }

  async clusterId(): Promise<string | null> {
    this.#assertOpen();
    return this.#clusterId;
  }

  async setClusterIdIfAbsent(id: string): Promise<string> {
    this.#assertOpen();
    if (id === "") throw new LeaseError("ELEASECONFIG", "cluster id must not be empty");
    this.#clusterId ??= id;
    return this.#clusterId;
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new LeaseError("ELEASECLOSED", "static leaser closed"));
    await this.#held?.release();
  }

  #primary(): PrimaryInfo {
    return {
      hostname: this.identity.hostname,
      advertiseURL: this.identity.advertiseURL,
      nodeId: undefined,
      epoch: STATIC_LEASE_EPOCH,
    };
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) throw new LeaseError("ELEASECLOSED", "static leaser is closed");
  }
}

/** Held until released; never renewed, never lost. */
class StaticLease implements Lease {
  readonly epoch = STATIC_LEASE_EPOCH;
  readonly ttlMs = Number.POSITIVE_INFINITY;
  readonly renewedAt: number;
  readonly expiresAt = Number.POSITIVE_INFINITY;
  readonly viaHandoff = false;
  #state: LeaseState = "held";

  constructor(acquiredAt: number) {
    this.renewedAt = acquiredAt;
  }

  get state(): LeaseState {
    return this.#state;
  }

  isHeld(): boolean {
    return this.#state === "held";
  }

  assertHeld(): void {
    if (this.#state !== "held") {
      throw new LeaseError("ELEASESTATE", `static lease is ${this.#state}`, { where: "static lease" });
    }
  }

  async renew(): Promise<void> {
    this.assertHeld();
  }

  async release(): Promise<void> {
    this.#state = "released";
  }

  async handoff(toNodeId: string): Promise<void> {
    this.assertHeld();
    throw new LeaseError(
      "ELEASENOTSUPPORTED",
      `a static lease cannot be handed off (to node ${toNodeId}); change the configuration instead`,
      { where: "static lease" },
    );
  }

  onLost(): () => void {
    return () => undefined; // a static lease is never lost
  }
}
