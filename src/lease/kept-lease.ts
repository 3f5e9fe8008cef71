// A lease held at a coordinator (etcd or Consul): the Lease contract on top of a LeaseKeeper (timing)
// and a LeaseBackend (the coordinator's requests). The state only ever moves away from "held", and
// every move away happens *before* the coordinator is told, so this node stops acting as primary first.
import { type Clock } from "./clock.js";
import { LeaseError, LeaseLostError } from "./lease-error.js";
import { LeaseKeeper, type RenewalConfirmation } from "./lease-keeper.js";
import type { Lease, LeaseState } from "./leaser.js";

/** The coordinator-specific half of a held lease. */
export interface LeaseBackend {
  /** Names the lease in errors and logs. */
  readonly where: string;
  /** One renewal (see RenewOnce): LeaseLostError when the coordinator says it is gone. */
  renew(signal: AbortSignal): Promise<RenewalConfirmation>;
  /** Gives the lease up at the coordinator so another node can acquire it at once. */
  release(): Promise<void>;
  /** Passes the lease to `toNodeId` (see Lease.handoff). Rejects if that cannot be confirmed. */
  handoff(toNodeId: string): Promise<void>;
  /** After an involuntary loss: lets go of whatever is left at the coordinator, so nobody waits for it. */
  abandon(): Promise<void>;
}

export interface KeptLeaseOptions {
  backend: LeaseBackend;
  epoch: bigint;
  clock: Clock;
  ttlMs: number;
  safetyMarginMs: number;
  grantSentAt: number;
  grantedTtlMs: number;
  /** Taken through a handoff reservation naming this node (Lease.viaHandoff). Default false. */
  viaHandoff?: boolean;
  renewIntervalMs?: number;
  attemptTimeoutMs?: number;
  /** Failures nobody awaits (cleanup after a loss). Default: ignored. */
  onBackgroundError?: (error: Error) => void;
  /** Each renewal that failed while the lease was held (LeaseKeeperOptions.onRenewFailed). */
  onRenewFailed?: (error: unknown, msLeft: number) => void;
  /** Called once when the lease stops being held, whatever the reason (the leaser forgets it). */
  onEnd?: (lease: KeptLease) => void;
}

export class KeptLease implements Lease {
  readonly epoch: bigint;
  readonly ttlMs: number;
  readonly viaHandoff: boolean;
  readonly #backend: LeaseBackend;
  readonly #keeper: LeaseKeeper;
  readonly #onBackgroundError: (error: Error) => void;
  readonly #onEnd: (lease: KeptLease) => void;
  #state: LeaseState = "held";
  #lostError: LeaseLostError | undefined;
  readonly #lostCallbacks = new Set<(error: Error) => void>();

  constructor(options: KeptLeaseOptions) {
    this.epoch = options.epoch;
    this.ttlMs = options.ttlMs;
    this.viaHandoff = options.viaHandoff ?? false;
    this.#backend = options.backend;
    this.#onBackgroundError = options.onBackgroundError ?? (() => undefined);
    this.#onEnd = options.onEnd ?? (() => undefined);
    this.#keeper = new LeaseKeeper({
      clock: options.clock,
      ttlMs: options.ttlMs,
      safetyMarginMs: options.safetyMarginMs,
      renewIntervalMs: options.renewIntervalMs,
      attemptTimeoutMs: options.attemptTimeoutMs,
      grantSentAt: options.grantSentAt,
      grantedTtlMs: options.grantedTtlMs,
      renew: (signal) => this.#backend.renew(signal),
      onRenewFailed: options.onRenewFailed,
      onLost: (error) => this.#onKeeperLost(error),
      where: options.backend.where,
    });
    this.#keeper.start();
  }

  get renewedAt(): number {
    return this.#keeper.renewedAt;
  }

  get expiresAt(): number {
    return this.#keeper.deadline;
  }

  get state(): LeaseState {
    if (this.#state === "held") this.#keeper.isValid(); // turns a passed deadline into "lost" now
    return this.#state;
  }

  isHeld(): boolean {
    return this.#state === "held" && this.#keeper.isValid();
  }

  assertHeld(): void {
    if (this.isHeld()) return;
    if (this.#lostError !== undefined) throw this.#lostError;
    throw new LeaseError("ELEASESTATE", `lease at epoch ${this.epoch} is ${this.#state}`, {
      where: this.#backend.where,
    });
  }

  async renew(): Promise<void> {
    this.assertHeld();
    await this.#keeper.renewNow();
  }

  async release(): Promise<void> {
    if (this.state !== "held") return; // already ended: released, handed off, or lost
    this.#end("released");
    await this.#backend.release();
  }

  async handoff(toNodeId: string): Promise<void> {
    this.assertHeld();
    this.#end("handed-off");
    try {
      await this.#backend.handoff(toNodeId);
    } catch (error) {
      this.#state = "lost";
      this.#lostError = new LeaseLostError(
        "handoff-failed",
        `handoff to node ${toNodeId} could not be confirmed; this node stepped down`,
        { where: this.#backend.where, cause: error },
      );
      this.#abandonInBackground();
      throw this.#lostError;
    }
  }

  onLost(callback: (error: Error) => void): () => void {
    if (this.#state === "lost" && this.#lostError !== undefined) {
      const error = this.#lostError;
      queueMicrotask(() => callback(error));
      return () => undefined;
    }
    this.#lostCallbacks.add(callback);
    return () => this.#lostCallbacks.delete(callback);
  }

  /** Stops acting as primary and renewing, before the coordinator hears about it. */
  #end(state: "released" | "handed-off"): void {
    this.#state = state;
    this.#keeper.stop();
    this.#lostCallbacks.clear();
    this.#onEnd(this);
  }

  #onKeeperLost(error: LeaseLostError): void {
    if (this.#state !== "held") return;
    this.#state = "lost";
    this.#lostError = error;
    // Callbacks run on a microtask so that a loss noticed inside isHeld() never re-enters the caller.
    for (const callback of this.#lostCallbacks) queueMicrotask(() => callback(error));
    this.#lostCallbacks.clear();
    this.#onEnd(this);
    this.#abandonInBackground();
  }

  #abandonInBackground(): void {
    this.#backend.abandon().catch((error: unknown) => {
      this.#onBackgroundError(
        new LeaseError("ELEASEUNAVAILABLE", "could not clean up a lost lease at the coordinator", {
          where: this.#backend.where,
          cause: error,
        }),
      );
    });
  }
}
