// Keeps one lease alive and decides, on this node's clock alone, the moment it stops being primary.
//
// Safety argument (why this node stops before anyone else can take the lease):
// 1. Every renewal request (and the request that created the lease) is stamped with `sentAt`, the clock
//    reading taken *before* the request leaves. The coordinator processes it no earlier than that, and a
//    successful renewal restarts the coordinator's TTL at processing time, so the coordinator cannot
//    expire the lease before sentAt + TTL (etcd and Consul both document the TTL as a lower bound).
// 2. Our deadline is `sentAt of the last successful renewal + TTL − safetyMargin`. The margin absorbs
//    the difference between our clock's rate and the coordinator's over one TTL, and timer lateness.
//    Only a *successful* renewal moves the deadline, and only forward; a hanging or failing request
//    cannot, because the deadline is enforced by its own timer and every attempt is aborted at the
//    deadline at the latest.
// 3. When the deadline passes, the lease is declared lost (callback) and `isValid()` — which compares
//    the clock with the deadline itself, so a late timer cannot stretch it — turns false. The node gates
//    every write on `isValid()`, so it has stopped writing by sentAt + TTL − margin, strictly before
//    the coordinator can hand the lease to anyone else (≥ sentAt + TTL, plus any lock delay).
// 4. A renewal answer that arrives after the deadline is ignored: loss is final.
//
// Renewals run every `renewIntervalMs` (default TTL/3) measured from the last successful send, and after
// a failure are retried every `retryIntervalMs` until one succeeds or the deadline passes.
import { type Clock, type TimerHandle } from "./clock.js";
import { LeaseError, LeaseLostError } from "./lease-error.js";

export interface RenewalConfirmation {
  /** The TTL (ms) the coordinator says the lease has from the moment it processed this renewal. */
  ttlMs: number;
}

/**
 * Sends one renewal. Resolves when the coordinator confirms it; rejects with LeaseLostError when the
 * coordinator says the lease is gone (final), with any other error for a failure worth retrying.
 * Must stop and reject promptly when `signal` aborts.
 */
export type RenewOnce = (signal: AbortSignal) => Promise<RenewalConfirmation>;

export interface LeaseKeeperOptions {
  clock: Clock;
  /** The TTL the lease was requested with (ms). */
  ttlMs: number;
  /** Subtracted from every deadline (ms); ≥ 0, and margin + renew interval < TTL. */
  safetyMarginMs: number;
  /** Default TTL/3. */
  renewIntervalMs?: number;
  /** Wait after a failed renewal before the next try (ms). Default renew interval / 4, at least 10. */
  retryIntervalMs?: number;
  /** Upper bound of one renewal attempt (ms); it is also cut at the deadline. Default: renew interval. */
  attemptTimeoutMs?: number;
  /** Clock time at which the request that created the lease was sent. */
  grantSentAt: number;
  /** TTL (ms) the coordinator confirmed when it created the lease. */
  grantedTtlMs: number;
  renew: RenewOnce;
  /** Called once, synchronously, when the lease is lost. Must not throw. */
  onLost: (error: LeaseLostError) => void;
  /**
   * Called after each renewal attempt that failed while the lease was still held, with the time left
   * before the deadline (ms; ≤ 0 when this failure ends the lease). Must not throw.
   */
  onRenewFailed?: (error: unknown, msLeft: number) => void;
  /** Names the lease in errors, e.g. "etcd lease 7587… on /litefs/c1/primary". */
  where: string;
}

export type LeaseKeeperState = "running" | "lost" | "stopped";

export class LeaseKeeper {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #marginMs: number;
  readonly #renewIntervalMs: number;
  readonly #retryIntervalMs: number;
  readonly #attemptTimeoutMs: number;
  readonly #renew: RenewOnce;
  readonly #onRenewFailed: (error: unknown, msLeft: number) => void;
  readonly #onLost: (error: LeaseLostError) => void;
  readonly #where: string;
  #state: LeaseKeeperState = "running";
  #deadline: number;
  #renewedAt: number;
  #lastFailure: unknown;
  #lostError: LeaseLostError | undefined;
  #inFlight: Promise<void> | undefined;
  #attempt: AbortController | undefined;
  #renewTimer: TimerHandle | undefined;
  #deadlineTimer: TimerHandle | undefined;
  #started = false;

  constructor(options: LeaseKeeperOptions) {
    const renewIntervalMs = options.renewIntervalMs ?? options.ttlMs / 3;
    if (!(options.ttlMs > 0) || !(options.safetyMarginMs >= 0) || !(renewIntervalMs > 0)) {
      throw new LeaseError("ELEASECONFIG", "TTL and renew interval must be > 0, safety margin ≥ 0", {
        where: options.where,
      });
    }
    if (options.safetyMarginMs + renewIntervalMs >= options.ttlMs) {
      throw new LeaseError(
        "ELEASECONFIG",
        `safety margin ${options.safetyMarginMs} ms + renew interval ${renewIntervalMs} ms must be < TTL ${options.ttlMs} ms, or no renewal could land before the deadline`,
        { where: options.where },
      );
    }
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs;
    this.#marginMs = options.safetyMarginMs;
    this.#renewIntervalMs = renewIntervalMs;
    this.#retryIntervalMs = options.retryIntervalMs ?? Math.max(10, renewIntervalMs / 4);
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? renewIntervalMs;
    this.#renew = options.renew;
    this.#onRenewFailed = options.onRenewFailed ?? (() => undefined);
    this.#onLost = options.onLost;
    this.#where = options.where;
    this.#renewedAt = options.grantSentAt;
    this.#deadline = options.grantSentAt + this.#confirmedTtl(options.grantedTtlMs) - this.#marginMs;
  }

  /** Arms the deadline and the first renewal. A lease already past its deadline is lost at once. */
  start(): void {
    if (this.#started) throw new LeaseError("ELEASESTATE", "keeper already started", { where: this.#where });
    this.#started = true;
    this.#armDeadline();
    this.#scheduleRenewal(this.#renewedAt + this.#renewIntervalMs);
  }

  get state(): LeaseKeeperState {
    return this.#state;
  }

  /** Clock time after which the lease must not be used. */
  get deadline(): number {
    return this.#deadline;
  }

  /** Send time of the last successful renewal (or of the grant). */
  get renewedAt(): number {
    return this.#renewedAt;
  }

  /** Why the lease was lost, once it is. */
  get lostError(): LeaseLostError | undefined {
    return this.#lostError;
  }

  /**
   * True while running and the clock is before the deadline. Past the deadline it declares the lease
   * lost right here (a timer may be late; this check is not).
   */
  isValid(): boolean {
    if (this.#state !== "running") return false;
    if (this.#clock.now() < this.#deadline) return true;
    this.#lose(this.#deadlineError());
    return false;
  }

  /**
   * Renews now (joining an attempt already in flight). Resolves once a renewal succeeded; rejects with
   * the attempt's error (LeaseLostError when the lease is gone; retries continue in the background
   * after any other error).
   */
  renewNow(): Promise<void> {
    if (this.#state !== "running") return Promise.reject(this.#notRunningError());
    if (this.#inFlight !== undefined) return this.#inFlight;
    const attempt = this.#runAttempt().finally(() => {
      this.#inFlight = undefined;
    });
    this.#inFlight = attempt;
    return attempt;
  }

  /** Stops renewing without declaring the lease lost (release, handoff). Aborts an attempt in flight. */
  stop(): void {
    if (this.#state !== "running") return;
    this.#state = "stopped";
    this.#cancelAll(new LeaseError("ELEASESTATE", "lease keeper stopped", { where: this.#where }));
  }

  async #runAttempt(): Promise<void> {
    this.#renewTimer?.cancel();
    const sentAt = this.#clock.now();
    const controller = new AbortController();
    this.#attempt = controller;
    const limitMs = Math.min(this.#deadline, sentAt + this.#attemptTimeoutMs) - sentAt;
    const timeout = this.#clock.setTimer(limitMs, () =>
      controller.abort(
        new LeaseError("ELEASEUNAVAILABLE", `renewal got no answer within ${Math.round(limitMs)} ms`, {
          where: this.#where,
        }),
      ),
    );
    let confirmation: RenewalConfirmation;
    try {
      confirmation = await this.#renew(controller.signal);
    } catch (error) {
      if (this.#state !== "running") throw this.#notRunningError();
      this.#onRenewFailed(error, this.#deadline - this.#clock.now());
      if (error instanceof LeaseLostError) {
        this.#lose(error);
        throw error;
      }
      this.#lastFailure = error;
      this.#scheduleRenewal(this.#clock.now() + this.#retryIntervalMs);
      throw error;
    } finally {
      timeout.cancel();
      if (this.#attempt === controller) this.#attempt = undefined;
    }
    if (this.#state !== "running") throw this.#notRunningError();
    if (!this.isValid()) throw this.#notRunningError(); // answered after the deadline: loss is final
    if (!(confirmation.ttlMs > 0)) {
      const error = new LeaseLostError("expired", `coordinator confirmed TTL ${confirmation.ttlMs} ms`, {
        where: this.#where,
      });
      this.#lose(error);
      throw error;
    }
    const deadline = sentAt + this.#confirmedTtl(confirmation.ttlMs) - this.#marginMs;
    this.#renewedAt = sentAt;
    if (deadline > this.#deadline) {
      this.#deadline = deadline;
      this.#armDeadline();
    }
    this.#lastFailure = undefined;
    this.#scheduleRenewal(sentAt + this.#renewIntervalMs);
  }

  /** A TTL the coordinator reports larger than requested is honoured only up to the requested one. */
  #confirmedTtl(ttlMs: number): number {
    return Math.min(this.#ttlMs, ttlMs);
  }

  #scheduleRenewal(at: number): void {
    this.#renewTimer?.cancel();
    this.#renewTimer = this.#clock.setTimer(at - this.#clock.now(), () => {
      this.#renewTimer = undefined;
      if (this.#state !== "running" || this.#inFlight !== undefined) return;
      // A failed background attempt has already recorded its error and scheduled the retry, and the
      // deadline timer ends the lease if none succeeds: there is nobody else to tell.
      this.renewNow().catch(() => undefined);
    });
  }

  #armDeadline(): void {
    this.#deadlineTimer?.cancel();
    this.#deadlineTimer = this.#clock.setTimer(this.#deadline - this.#clock.now(), () => {
      this.#deadlineTimer = undefined;
      if (this.#state !== "running") return;
      if (this.#clock.now() >= this.#deadline) this.#lose(this.#deadlineError());
      else this.#armDeadline();
    });
  }

  #deadlineError(): LeaseLostError {
    const failure = this.#lastFailure instanceof Error ? `; last failure: ${this.#lastFailure.message}` : "";
    return new LeaseLostError(
      "deadline",
      `no renewal succeeded in time (last successful renewal sent at ${this.#renewedAt.toFixed(0)} ms, ` +
        `TTL ${this.#ttlMs} ms, safety margin ${this.#marginMs} ms${failure})`,
      { where: this.#where, cause: this.#lastFailure },
    );
  }

  #notRunningError(): LeaseError {
    return (
      this.#lostError ??
      new LeaseError("ELEASESTATE", `lease is not being kept (${this.#state})`, { where: this.#where })
    );
  }

  #lose(error: LeaseLostError): void {
    if (this.#state !== "running") return;
    this.#state = "lost";
    this.#lostError = error;
    this.#cancelAll(error);
    this.#onLost(error);
  }

  #cancelAll(reason: Error): void {
    this.#renewTimer?.cancel();
    this.#renewTimer = undefined;
    this.#deadlineTimer?.cancel();
    this.#deadlineTimer = undefined;
    this.#attempt?.abort(reason);
    this.#attempt = undefined;
  }
}
