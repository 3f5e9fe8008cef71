// The node's role, driven by its lease (docs/lease.md, "The node"): who is primary right now, and the
// moves between the two roles. The decisions are in role-decisions.ts; the node's parts (replica
// client, stream server, epoch files) are switched through `RoleHost`.
//
//   - A candidate tries `acquire()`; on success it becomes primary under `lease.epoch`. Refused
//     (ELEASEEXISTS, ELEASEHANDOFF, unreachable coordinator) it is a replica following `watch()`, and
//     tries again when the watch shows no holder (after a small jitter), every `periodicMs`, and at once
//     when the primary hands the lease to it (HANDOFF frame).
//   - A non-candidate is a replica following `watch()` for good.
//   - The lease lost (`onLost`, `isHeld()` false at a commit, or the watch naming another holder): a
//     replica at once, following the new holder; the node keeps running. After losing or handing off the
//     lease the node waits `quietMs` (lease.demote-delay) before it tries to acquire again.
//   - Handoff (`handOff`): drain — refuse new write transactions at their start and let those in
//     flight commit (bounded) — then stop commits, wait (bounded) until the target's stream has sent
//     everything, hand the lease over at the coordinator, send HANDOFF on the target's stream, become a
//     replica.
//
// Role changes are serialised (one at a time, `#transition`), so the host never sees two at once.
// The host interface and the refusals (RoleError) are in role-host.ts.

import {
  isLeaseError,
  LeaseExistsError,
  type Lease,
  type Leaser,
  type NodeIdentity,
  type PrimaryInfo,
} from "../lease/index.js";
import type { StoreLogger } from "../store/store-logger.js";
import type { ElectionGate } from "./candidate-election.js";
import { RoleError, type DemotionReason, type HandoffTarget, type RoleHost } from "./role-host.js";
import {
  acquireJitterMs,
  holderIsSelf,
  shouldRequestHandoff,
  shouldTryAcquire,
  type NodeRoleName,
} from "./role-decisions.js";

export interface LeaseRoleOptions {
  readonly leaser: Leaser;
  readonly host: RoleHost;
  readonly log: StoreLogger;
  readonly candidate: boolean;
  readonly promote: boolean;
  /** No acquire this long after this node stopped being primary (ms). */
  readonly quietMs: number;
  /** Safety-net acquire attempts while another node holds the lease (ms). */
  readonly periodicMs: number;
  /** How long a handoff waits for the target to have everything (ms). Default 5000. */
  readonly handoffWaitMs?: number;
  /**
   * How long a handoff lets write transactions in flight finish before it refuses their commits (ms).
   * Default 1000. New ones are refused at their start meanwhile (`writesClosing`).
   */
  readonly handoffDrainMs?: number;
  /**
   * How long a lease taken through a handoff reservation waits for the old primary's HANDOFF frame
   * before this node acts as primary anyway (ms), counted from the last replicated transaction this
   * node applied (`RoleHost.replicationProgress`): a target still applying a backlog keeps waiting.
   * Default 3000.
   */
  readonly handoffFrameWaitMs?: number;
  readonly random?: () => number;
  /** Candidate ranking (etcd): a free lease is left to a more up-to-date live candidate for a while. */
  readonly election?: ElectionGate;
}

/** A handoff in progress on this primary (see `LeaseRole#handoff`). */
interface HandoffInProgress {
  step: "pace" | "proxy" | "mount" | "commits";
  /** The target's hostname when its request named it (for `.primary`), else null. */
  readonly target: string | null;
  /** The target's node id (16 hex digits). */
  readonly targetNodeId: string;
}

/** How long after `expectHandoff()` a vacancy is taken for the handoff asked for (ms). */
const HANDOFF_EXPECTED_MS = 5000;
/** How often a pending handoff request prepares the acquire again (`askForHandoff`, ms). */
const GRANT_REFRESH_MS = 50;
/** How many of this node's ended terms as primary `mayAcknowledge` remembers the end of. */
const ENDED_TERMS_KEPT = 8;

export class LeaseRole {
  readonly #opts: LeaseRoleOptions;
  readonly #stop = new AbortController();
  readonly #random: () => number;
  #role: NodeRoleName = "replica";
  #lease: Lease | null = null;
  #holder: PrimaryInfo | null | undefined = undefined;
  /**
   * The handoff in progress, by step: "pace" — writes go on, their commits answered at the pace the
   * target applies them until it is close (`RoleHost.paceHandoff`); "proxy" — the node's proxy holds
   * new writes while those it passed to the app finish; "mount" — new write transactions are refused at
   * their start while those in flight commit; "commits" — every commit is refused until the node is a
   * replica. `target`: the hostname its request named (null: none).
   */
  #handoff: HandoffInProgress | null = null;
  /** How this node's last terms as primary ended, by epoch (oldest first; mayAcknowledge). */
  readonly #endedTerms = new Map<bigint, DemotionReason>();
  #handoffToMe = false;
  #quietUntilMs = 0;
  #lastAttemptMs = -Infinity;
  #askedEpoch = 0n;
  #transition: Promise<void> = Promise.resolve();
  #wake: (() => void) | null = null;
  #loops: Promise<void>[] = [];
  #unsubscribeLost: (() => void) | null = null;
  #handoffAttempts = 0;
  /** Until then (performance.now()) a handoff to this node is expected (`litefs promote` asked). */
  #handoffExpectedUntilMs = -Infinity;
  /** Resolves the wait of a lease taken through a reservation before its HANDOFF frame was read. */
  #handoffFrameSeen: (() => void) | null = null;
  /**
   * After a handoff that named its target (`handOff(to, named)`): until then (performance.now()) the
   * target is followed as the holder although the coordinator shows none — a "no holder" from the
   * watch does not undo it; any holder it names does. 0: no such target.
   */
  #namedTargetUntilMs = 0;
  /** The last holder seen that was not this node: where a handoff to this node comes from. */
  #lastOtherHolder: PrimaryInfo | null = null;
  /** While a handed-over lease waits for its HANDOFF frame: the old primary, followed whatever the watch says. */
  #handoffSource: PrimaryInfo | null = null;

  constructor(opts: LeaseRoleOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
  }

  get role(): NodeRoleName {
    return this.#role;
  }

  /** The lease held now (null on a replica). */
  get lease(): Lease | null {
    return this.#lease;
  }

  /** The holder as last seen: this node's own record on the primary; undefined while unknown. */
  get holder(): PrimaryInfo | null | undefined {
    return this.#holder;
  }

  /** The epoch this node holds, or that of the primary it follows (0 when unknown). */
  get epoch(): bigint {
    return this.#lease?.epoch ?? this.#holder?.epoch ?? 0n;
  }

  /** This node as its lease records it (node id, hostname, advertise URL). */
  get identity(): NodeIdentity {
    return this.#opts.leaser.identity;
  }

  get leaserType(): Leaser["type"] {
    return this.#opts.leaser.type;
  }

  /**
   * The commit gate: true only while this node is primary, not handing off, and its lease is held by
   * the clock. Cheap and synchronous: called at every commit. A lease found expired here demotes the
   * node (the callback may come later than the deadline on a busy event loop).
   */
  mayCommit(): boolean {
    if (this.#role !== "primary" || this.#handoff?.step === "commits") return false;
    const lease = this.#lease;
    return lease !== null && this.#heldByClock(lease, "at a commit");
  }

  /**
   * Whether the answer to a write this node ran as primary under `epoch` may tell the client it
   * succeeded (the proxy asks before relaying the app's answer). Yes while this node is still primary
   * under `epoch` with its lease held by the clock, and after that term ended in a handoff: its target
   * took over with every transaction committed here. No once the term ended otherwise — the lease
   * expired (a node frozen past its TTL finds that only when it runs again), was taken, or was given up
   * at shutdown: the next primary may go on without the write, since replication is asynchronous.
   */
  mayAcknowledge(epoch: bigint): boolean {
    const lease = this.#lease;
    if (this.#role === "primary" && lease !== null && lease.epoch === epoch) {
      return this.#heldByClock(lease, "when a write was answered");
    }
    return this.#endedTerms.get(epoch) === "handed-off";
  }

  /**
   * `lease.isHeld()` (which compares its deadline with the clock); a lease found expired demotes the
   * node here (its expiry callback may come later than the deadline on a busy event loop).
   */
  #heldByClock(lease: Lease, when: string): boolean {
    if (lease.isHeld()) return true;
    this.#lost(lease, `the lease was not held ${when}`);
    return false;
  }

  /**
   * True while a handoff drains this primary: a change that would start a write transaction is
   * refused at once (the mount answers as a replica would), while transactions in flight may still
   * commit — their clients are spared a refused commit and its rollback, and the others learn at once,
   * before they wrote anything, to go to the next primary.
   */
  writesClosing(): boolean {
    return this.#handoff !== null && this.#handoff.step !== "pace" && this.#handoff.step !== "proxy";
  }

  /**
   * True from the start of a handoff to its end: the node's proxy passes no new write to the app — it
   * holds them and sends them to whichever node is primary afterwards (docs/proxy.md) — and the handoff
   * first lets the writes already passed finish (bounded), before the mount refuses new transactions.
   */
  proxyHoldsWrites(): boolean {
    return this.#handoff !== null && this.#handoff.step !== "pace";
  }

  /**
   * While a handoff whose request named its target is in progress (`writesClosing`): that target's
   * hostname — where writes go next, for `.primary` — else null.
   */
  handoffTargetHostname(): string | null {
    return this.writesClosing() ? this.#handoff!.target : null;
  }

  /**
   * Decides the first role: one acquire attempt for a candidate (skipped with `lease.promote` while
   * another node holds the lease), then the background loops.
   */
  async start(): Promise<void> {
    const { leaser, candidate, promote } = this.#opts;
    let became = false;
    if (candidate) {
      let free = true;
      if (promote && leaser.type !== "static") {
        try {
          const info = await leaser.primaryInfo();
          this.#seeHolder(info);
          free = info === null || holderIsSelf(info, leaser.identity);
        } catch (err) {
          this.#opts.log.warn("cannot read the lease holder", { error: (err as Error).message });
        }
      }
      this.#opts.election?.start(() => this.#eligibleForElection());
      if (free && (await this.#electionAllowsAcquire())) became = await this.#tryAcquire();
    }
    if (!became) {
      if (this.#holder === undefined) {
        // Know whom to follow before the replica client starts (the watch would tell a moment later).
        await leaser.primaryInfo().then(
          (info) => this.#seeHolder(info),
          (err: unknown) =>
            this.#opts.log.warn("cannot read the lease holder", { error: (err as Error).message }),
        );
      }
      await this.#serialised(() => this.#opts.host.enterReplica("start"));
    }
    this.#loops = [this.#watchLoop(), this.#acquireLoop()];
  }

  /** The primary's HANDOFF frame named this node: acquire at once. */
  handoffReceived(): void {
    this.#handoffToMe = true;
    this.#handoffFrameSeen?.();
    this.#wake?.();
  }

  /**
   * This node asks the primary to hand it the lease (`litefs promote`): the demote delay no longer
   * holds it back — an explicit promotion is never subject to it. The acquire is prepared by
   * `askForHandoff`, which sends the request.
   */
  expectHandoff(): void {
    this.#quietUntilMs = 0;
    this.#handoffExpectedUntilMs = performance.now() + HANDOFF_EXPECTED_MS;
  }

  /**
   * Runs `ask` — this node's request that the primary hand it the lease, which returns once the
   * primary handed it — with the leaser's acquire prepared again every GRANT_REFRESH_MS meanwhile: the
   * primary paces its commits first (up to 2 s, handoff-pacer.ts), longer than a prepared etcd grant
   * stays usable (a third of the TTL).
   */
  async askForHandoff<T>(ask: () => Promise<T>): Promise<T> {
    const prepare = (): void => this.#opts.leaser.prepareAcquire?.();
    prepare();
    const refresh = setInterval(prepare, GRANT_REFRESH_MS);
    try {
      return await ask();
    } finally {
      clearInterval(refresh);
    }
  }

  /** A handoff to this node is on its way (HANDOFF read, or asked for moments ago). */
  #handoffComing(): boolean {
    return this.#handoffToMe || performance.now() < this.#handoffExpectedUntilMs;
  }

  /** The cluster id stored beside the lease (a read), or null when none is. */
  clusterId(): Promise<string | null> {
    return this.#opts.leaser.clusterId();
  }

  /** Stores `id` as the cluster id beside the lease unless one is there; returns the stored one. */
  setClusterIdIfAbsent(id: string): Promise<string> {
    return this.#opts.leaser.setClusterIdIfAbsent(id);
  }

  /** Re-checks the promote rule (the replica just caught up). */
  poke(): void {
    this.#wake?.();
  }

  /**
   * Hands the lease to replica `toNodeId` (16 hex digits): commits are paced until the target is close
   * behind (`RoleHost.paceHandoff`, bounded), then they stop, the target's stream gets
   * everything (≤ handoffWaitMs), the coordinator records the handoff, the stream carries HANDOFF, and
   * this node becomes a replica. Resolves with the epoch handed off.
   *
   * `named`: the target's hostname and advertise URL (its own request named them). This node then
   * follows it at once — `.primary` names it, the replica client and the nudge go after it — instead
   * of after the coordinator's watch reports the new holder (~20 ms later, more under load): an
   * application whose write was just refused here learns where to go next without waiting. The
   * reservation admits only the target, so no other node can be primary meanwhile; if the target never
   * takes the lease, it is followed for at most one TTL (the reservation's life), then nobody.
   */
  async handOff(toNodeId: string, named?: { hostname: string; advertiseURL: string }): Promise<bigint> {
    const { leaser, host, log } = this.#opts;
    if (leaser.type === "static") {
      throw new RoleError(
        "ELEASENOTSUPPORTED",
        "a static lease cannot be handed off: change lease.candidate in the configuration instead",
      );
    }
    const lease = this.#lease;
    if (this.#role !== "primary" || lease === null || this.#handoff !== null) {
      throw new RoleError("ENOTPRIMARY", "this node is not the primary (or is handing off already)");
    }
    const first = host.handoffTarget(toNodeId);
    if (first === undefined) throw new RoleError("ENOREPLICA", `replica ${toNodeId} is not connected`);
    if (!first.candidate) throw new RoleError("ENOTCANDIDATE", `replica ${toNodeId} is not a candidate`);
    const handoff: HandoffInProgress = {
      step: "pace",
      target: named?.hostname ?? null,
      targetNodeId: toNodeId,
    };
    this.#handoff = handoff;
    try {
      // Before anything stops: what the target lacks when the commits stop is applied inside the gap.
      await host.paceHandoff(toNodeId, () => this.#role !== "primary" || !lease.isHeld());
      handoff.step = "proxy";
      const started = performance.now();
      await this.#settle(
        () => this.#opts.host.proxyWritesInFlight() === 0,
        lease,
        "writes passed to the application are still in flight; handing off anyway",
      );
      handoff.step = "mount";
      await this.#settle(
        () => !this.#opts.host.localWritersActive(),
        lease,
        "a write transaction is still in flight; its commit will be refused",
      );
      const drainedMs = performance.now() - started;
      handoff.step = "commits";
      const waitMs = this.#opts.handoffWaitMs ?? 5000;
      // Looked up at every step: a target that reconnects meanwhile has a new stream (the old one
      // ended "replaced" and would never catch up nor carry the HANDOFF frame).
      const target = (): HandoffTarget => host.handoffTarget(toNodeId) ?? first;
      while (!target().caughtUp()) {
        if (performance.now() - started > waitMs || !lease.isHeld()) {
          throw new RoleError("EHANDOFFTIMEOUT", `replica ${toNodeId} did not catch up within ${waitMs} ms`);
        }
        await sleep(2);
      }
      let failure: unknown = null;
      const caughtUpMs = performance.now() - started;
      await this.#serialised(async () => {
        log.info("handing the lease off", {
          to: toNodeId,
          epoch: lease.epoch.toString(),
          drainMs: Math.round(drainedMs),
          catchUpMs: Math.round(caughtUpMs - drainedMs),
        });
        try {
          await lease.handoff(toNodeId);
          log.debug("handoff recorded at the coordinator", { to: toNodeId });
        } catch (err) {
          failure = err;
        }
        // Stepped down either way (a handoff that cannot be confirmed ends the lease as lost).
        this.#demoteNow(failure === null ? "handed-off" : "lease-lost");
        if (failure === null) {
          await target()
            .handOff(lease.epoch)
            .then(() => log.debug("HANDOFF frame sent", { to: toNodeId }))
            .catch((err: unknown) =>
              log.warn("the HANDOFF frame did not go out", { to: toNodeId, error: (err as Error).message }),
            );
        }
        // Named: `.primary` names the target again at once (it did while commits were closed) rather
        // than staying blank — "this node is primary" to an application — until the replica has
        // started, and the replica starts toward the target instead of failing on no primary first.
        if (failure === null && named !== undefined) this.#followNamedTarget(toNodeId, named, lease);
        await host.enterReplica(failure === null ? "handed-off" : "lease-lost");
      });
      if (failure !== null) throw failure as Error;
      log.info("lease handed off", { to: toNodeId, ms: Math.round(performance.now() - started) });
      return lease.epoch;
    } finally {
      this.#handoff = null;
    }
  }

  /**
   * A step of a handoff's drain: waits until `done()`, for at most `handoffDrainMs`, or until the lease
   * is no longer held; logs `giveUp` when the time ran out. First the writes the proxy passed to the
   * application, then the write transactions in flight in the mount (new ones refused meanwhile); one
   * still in flight after that meets the commit gate (refused).
   */
  async #settle(done: () => boolean, lease: Lease, giveUp: string): Promise<void> {
    const started = performance.now();
    const limitMs = this.#opts.handoffDrainMs ?? 1000;
    while (!done() && lease.isHeld()) {
      if (performance.now() - started >= limitMs) {
        this.#opts.log.warn(giveUp, { drainMs: limitMs });
        return;
      }
      await sleep(1);
    }
  }

  /** On shutdown: hands off to a caught-up candidate replica when there is one. True when it did. */
  async handOffForShutdown(): Promise<boolean> {
    if (this.#role !== "primary" || this.#opts.leaser.type === "static") return false;
    const target = this.#opts.host.shutdownTarget();
    if (target === undefined) return false;
    try {
      await this.handOff(target);
      return true;
    } catch (err) {
      this.#opts.log.warn("no handoff at shutdown", { to: target, error: (err as Error).message });
      return false;
    }
  }

  /** Stops the loops and closes the leaser (a held lease is released). */
  async stop(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#wake?.();
    if (this.#role === "primary") this.#demoteNow("shutdown");
    await this.#opts.election
      ?.close()
      .catch((err: unknown) => this.#opts.log.warn("closing the election", { error: String(err) }));
    await this.#opts.leaser
      .close()
      .catch((err: unknown) => this.#opts.log.warn("closing the leaser", { error: String(err) }));
    await Promise.all(this.#loops);
    await this.#transition;
  }

  async #tryAcquire(vacancyCheck?: () => Promise<boolean>): Promise<boolean> {
    const { leaser, host, log } = this.#opts;
    this.#lastAttemptMs = performance.now();
    const attemptStarted = performance.now();
    // Seen free (the watch) or handed to us: the etcd leaser can grant alongside its first read.
    const likelyFree = this.#holder === null || this.#handoffToMe;
    if (likelyFree) log.debug("acquiring the lease", { handoff: this.#handoffToMe });
    let lease: Lease;
    try {
      lease = await leaser.acquire({ likelyFree, vacancyCheck, handoffExpected: this.#handoffComing() });
    } catch (err) {
      if (err instanceof LeaseExistsError) this.#seeHolder(err.primary);
      else if (
        !isLeaseError(err, "ELEASEHANDOFF") &&
        !isLeaseError(err, "ELEASERANKED") &&
        !this.#stop.signal.aborted
      ) {
        log.debug("lease not acquired", {
          code: (err as { code?: string }).code,
          error: (err as Error).message,
        });
      }
      return false;
    }
    const acquiredMs = performance.now() - attemptStarted;
    log.debug("lease acquired", { epoch: lease.epoch.toString(), ms: Math.round(acquiredMs) });
    if (lease.viaHandoff && !this.#handoffToMe) await this.#awaitHandoffFrame(lease);
    let entered = false;
    await this.#serialised(async () => {
      if (this.#stop.signal.aborted) return;
      const entering = performance.now();
      try {
        await host.enterPrimary(lease);
      } catch (err) {
        log.error("took the lease but cannot act as primary; releasing it", {
          error: (err as Error).message,
        });
        await lease.release().catch(() => undefined);
        this.#quietUntilMs = performance.now() + this.#opts.quietMs;
        return;
      }
      this.#lease = lease;
      this.#role = "primary";
      this.#namedTargetUntilMs = 0;
      this.#holder = { ...leaser.identity, epoch: lease.epoch };
      this.#handoffToMe = false;
      this.#handoffExpectedUntilMs = -Infinity;
      this.#unsubscribeLost = lease.onLost((error) => this.#lost(lease, error.message));
      host.leaseAcquired(lease.epoch);
      // Timings of the takeover (a handoff's write gap is mostly these): the coordinator, then the node.
      log.info("role change: primary", {
        epoch: lease.epoch.toString(),
        lease: leaser.type,
        viaHandoff: lease.viaHandoff,
        acquireMs: Math.round(acquiredMs),
        enterMs: Math.round(performance.now() - entering),
      });
      this.#opts.election?.vacancyEnded();
      entered = true;
    });
    if (!entered && this.#stop.signal.aborted) await lease.release().catch(() => undefined);
    return entered;
  }

  /** Candidate ranking: publish our position only while we could take a free lease. */
  #eligibleForElection(): boolean {
    return this.#role === "replica" && !this.#stop.signal.aborted && performance.now() >= this.#quietUntilMs;
  }

  /**
   * Candidate ranking: false while a more up-to-date live candidate should take the free lease first
   * (bounded per vacancy, candidate-election.ts); the loop is woken to ask again.
   */
  async #electionAllowsAcquire(): Promise<boolean> {
    const election = this.#opts.election;
    if (election === undefined) return true;
    const decision = await election.verdict();
    if (decision.acquire) return true;
    setTimeout(() => this.#wake?.(), decision.retryInMs).unref();
    return false;
  }

  /**
   * The lease was handed over to this node, but the old primary's HANDOFF frame has not been read yet:
   * the coordinator can show the reservation (and the watch the old holder gone) while this node's
   * stream still carries the last transactions before that frame. Acting as primary now would stop
   * the stream and lose them, acknowledged ones included. The frame comes right after them, so wait
   * for it: while transactions keep being applied (a target that lagged — session 9 measured a WAL
   * writer at ~500 tx/s outrunning replicas, which then took seconds to reach the frame, and a fixed
   * 3 s bound lost the old primary's tail to quarantine), and then at most `handoffFrameWaitMs` more
   * (a stream broken in between never brings it; the lease is held meanwhile, so nobody else can write).
   */
  async #awaitHandoffFrame(lease: Lease): Promise<void> {
    const waitMs = this.#opts.handoffFrameWaitMs ?? 3000;
    const started = performance.now();
    const source = this.#lastOtherHolder;
    this.#opts.log.info("lease handed over; waiting for the old primary's last transactions", {
      epoch: lease.epoch.toString(),
      from: source?.hostname ?? null,
    });
    // Keep following the old primary meanwhile, whatever the watch says: if the stream broke before
    // the frame, the replica reconnects to it, and it sends what it committed that this node lacks,
    // then HANDOFF (handoff-tail.ts) — the old primary is usually alive, only the connection was not.
    this.#handoffSource = source;
    if (source !== null) this.#opts.host.awaitingHandoffFrom(source);
    const seen = await new Promise<boolean>((resolve) => {
      const finish = (value: boolean): void => {
        this.#handoffSource = null;
        clearTimeout(timer);
        this.#stop.signal.removeEventListener("abort", onStop);
        this.#handoffFrameSeen = null;
        resolve(value);
      };
      const onStop = (): void => finish(false);
      // The bound counts from the last transaction applied (checked every ≤ 100 ms).
      const progressOf = (): bigint | undefined => this.#opts.host.replicationProgress?.();
      let progress = progressOf();
      let progressAt = performance.now();
      const check = (): void => {
        const now = progressOf();
        if (now !== progress) {
          progress = now;
          progressAt = performance.now();
        }
        const left = waitMs - (performance.now() - progressAt);
        if (left <= 0) finish(false);
        else timer = setTimeout(check, Math.min(left, 100));
      };
      let timer = setTimeout(check, Math.min(waitMs, 100));
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      this.#handoffFrameSeen = () => finish(true);
    });
    const ms = Math.round(performance.now() - started);
    if (seen) this.#opts.log.info("the old primary's HANDOFF frame arrived", { ms });
    else if (!this.#stop.signal.aborted) {
      this.#opts.log.warn("no HANDOFF frame from the old primary; acting as primary with what arrived", {
        ms,
      });
    }
  }

  /** Follows a handoff's target before the coordinator shows it as the holder (see `handOff`). */
  #followNamedTarget(
    toNodeId: string,
    named: { hostname: string; advertiseURL: string },
    lease: Lease,
  ): void {
    if (this.#role !== "replica" || (this.#holder !== null && this.#holder !== undefined)) return;
    // Its epoch is not known before it acquires: the one handed off stands in (never used for fencing;
    // the stream's EPOCH frame carries the real one).
    const target: PrimaryInfo = { ...named, nodeId: toNodeId, epoch: lease.epoch };
    this.#namedTargetUntilMs = performance.now() + lease.ttlMs;
    this.#opts.log.debug("following the handoff target before the coordinator names it", {
      primary: named.hostname,
    });
    this.#holder = target;
    this.#opts.host.primaryChanged(target);
  }

  /** A named handoff target never took the lease within a TTL: follow nobody (the watch names the next). */
  #expireNamedTarget(): void {
    if (this.#namedTargetUntilMs === 0 || performance.now() < this.#namedTargetUntilMs) return;
    this.#namedTargetUntilMs = 0;
    if (this.#role !== "replica" || this.#holder === null || this.#holder === undefined) return;
    this.#opts.log.warn(
      "the handoff target did not take the lease; following nobody until the watch names a holder",
      {
        primary: this.#holder.hostname,
      },
    );
    this.#holder = null;
    this.#opts.host.primaryChanged(null);
  }

  /** The lease `lease` is gone involuntarily: become a replica now (once per lease). */
  #lost(lease: Lease, why: string): void {
    if (this.#lease !== lease || this.#role !== "primary") return;
    this.#opts.log.warn("lease lost; turning replica", { epoch: lease.epoch.toString(), reason: why });
    this.#demoteNow("lease-lost");
    this.#opts.host.leaseLost(why);
    void this.#serialised(() => this.#opts.host.enterReplica("lease-lost"));
    this.#wake?.();
  }

  /** The synchronous part of stepping down: no commit passes the gate after this. */
  #demoteNow(reason: DemotionReason): void {
    if (this.#role !== "primary") return;
    this.#role = "replica";
    this.#unsubscribeLost?.();
    this.#unsubscribeLost = null;
    const lease = this.#lease;
    this.#lease = null;
    if (lease !== null) {
      this.#endedTerms.set(lease.epoch, reason);
      const oldest = this.#endedTerms.keys().next();
      if (this.#endedTerms.size > ENDED_TERMS_KEPT && oldest.done !== true)
        this.#endedTerms.delete(oldest.value);
    }
    if (
      this.#holder !== undefined &&
      this.#holder !== null &&
      lease !== null &&
      this.#holder.epoch === lease.epoch
    ) {
      this.#holder = null; // no longer us; the watch names the next holder
    }
    this.#quietUntilMs = performance.now() + this.#opts.quietMs;
    this.#opts.log.info("role change: replica", { reason, epoch: lease?.epoch.toString() });
  }

  async #watchLoop(): Promise<void> {
    const { leaser, log } = this.#opts;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        for await (const info of leaser.watch(signal)) {
          this.#onHolder(info);
        }
      } catch (err) {
        if (signal.aborted) return;
        log.warn("lease watch failed; watching again", { error: (err as Error).message });
        await sleep(500);
      }
      if (!signal.aborted && leaser.type === "static") return; // it never changes
    }
  }

  #onHolder(info: PrimaryInfo | null): void {
    const { leaser, host } = this.#opts;
    this.#opts.log.debug("the lease watch: holder", { holder: info?.hostname ?? null });
    const lease = this.#lease;
    if (this.#role === "primary" && lease !== null) {
      // A newer holder recorded at the coordinator: ours is gone whatever the keeper thinks. (A null
      // or an older holder may be an event from before our acquire: the keeper's renewal decides.)
      if (info !== null && !holderIsSelf(info, leaser.identity) && info.epoch > lease.epoch) {
        this.#holder = info;
        // The handoff's target, while commits are closed for that handoff: the coordinator's watch was
        // quicker than the answer to our handoff transaction. Nothing is lost — the handoff goes on
        // and steps down — so no "lease lost" (a warning, the lost-lease metric and event, and a
        // second turn to replica after the handoff's own).
        const handoff = this.#handoff;
        if (handoff?.step !== "commits" || info.nodeId !== handoff.targetNodeId) {
          this.#lost(lease, "another node holds the lease");
        }
        host.primaryChanged(info);
      }
      return;
    }
    this.#seeHolder(info);
    this.#wake?.();
  }

  /** A replica learned who holds the lease (watch, refusal): follow it when it changed. */
  #seeHolder(info: PrimaryInfo | null): void {
    if (info !== null) this.#opts.election?.vacancyEnded();
    if (info !== null && !holderIsSelf(info, this.#opts.leaser.identity)) this.#lastOtherHolder = info;
    if (this.#role !== "replica") return;
    if (this.#handoffSource !== null) {
      this.#holder = info; // recorded; the old primary stays followed until its HANDOFF frame
      return;
    }
    if (this.#namedTargetUntilMs !== 0) {
      // Following a handoff's target already: "no holder" is the handoff itself, not news — and nor is
      // our own record, which a lagging watch can still report after the handoff (it would reset this
      // state, and the "no holder" after it would then have this node follow nobody at once).
      if (info === null && performance.now() < this.#namedTargetUntilMs) return;
      if (info !== null && holderIsSelf(info, this.#opts.leaser.identity)) return;
      this.#namedTargetUntilMs = 0;
    }
    const previous = this.#holder;
    this.#holder = info;
    // Our own record from before a restart or a loss, going away: nothing to follow.
    if (info !== null && holderIsSelf(info, this.#opts.leaser.identity)) return;
    if (!samePrimary(previous, info)) this.#opts.host.primaryChanged(info);
  }

  async #acquireLoop(): Promise<void> {
    const { candidate, promote, periodicMs, host, leaser, log } = this.#opts;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        // A HANDOFF frame read while the previous pass was busy (its wake-up was missed): go at once.
        // Retries after a refused handoff acquire are paced by their own 20 ms wake-up instead.
        const missedFrame = this.#handoffToMe && this.#handoffAttempts === 0;
        const timer = setTimeout(done, missedFrame ? 0 : Math.max(50, Math.min(periodicMs, 1000)));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = null;
      if (signal.aborted) return;
      const lease = this.#lease;
      if (this.#role === "primary" && lease !== null && !lease.isHeld()) this.#lost(lease, "deadline passed");
      this.#expireNamedTarget();
      const context = {
        candidate,
        role: this.#role,
        holder: this.#holder,
        selfNodeId: leaser.identity.nodeId,
        nowMs: performance.now(),
        quietUntilMs: this.#quietUntilMs,
        handoffToMe: this.#handoffToMe,
        lastAttemptMs: this.#lastAttemptMs,
        periodicMs,
      };
      // Asked first: the periodic acquire below (a safety net while someone holds the lease) runs on
      // most passes and ends them, so asking after it could wait for ever (lease.promote never fired).
      const holder = this.#holder;
      if (
        holder !== undefined &&
        holder !== null &&
        shouldRequestHandoff({
          promote,
          candidate,
          role: this.#role,
          synced: host.replicaSynced(),
          holder,
          selfNodeId: leaser.identity.nodeId,
          askedEpoch: this.#askedEpoch,
        })
      ) {
        this.#askedEpoch = holder.epoch;
        log.info("synced: asking the primary to hand the lease over (lease.promote)", {
          primary: holder.advertiseURL,
        });
        await this.askForHandoff(() => host.requestHandoff(holder.advertiseURL)).catch((err: unknown) =>
          log.warn("promote: handoff refused", { error: (err as Error).message }),
        );
        continue;
      }
      if (shouldTryAcquire(context)) {
        // The jitter spreads candidates racing for a free lease; a handoff to us is no race (its
        // reservation admits only us), so it is skipped then, and cut short by a HANDOFF frame.
        if (!this.#handoffComing()) await this.#pause(acquireJitterMs(this.#random()));
        // Ranking applies to a vacancy only: the periodic attempt while a holder is known would be
        // refused anyway, and asking then would start the election's wait window before the lease is
        // free (a lagging node unfrozen just before the primary's lease expired then waited its whole
        // window out before the vacancy and raced the up-to-date candidate).
        const vacant = this.#holder === null || this.#holder === undefined;
        if (!this.#handoffComing() && vacant && !(await this.#electionAllowsAcquire())) continue;
        const handoff = this.#handoffToMe;
        // The periodic attempt (a holder believed) that finds the lease free after all — the watch was
        // stale, e.g. right after a partition healed — asks the ranking then, inside the acquire.
        const became = await this.#tryAcquire(
          !vacant && !this.#handoffComing() ? () => this.#electionAllowsAcquire() : undefined,
        );
        if (handoff && !became) {
          // The coordinator may not show the handoff yet: retry briefly, then give it up.
          this.#handoffAttempts++;
          if (this.#handoffAttempts > 100) this.#handoffToMe = false;
          else setTimeout(() => this.#wake?.(), 20).unref();
        }
        if (became || !this.#handoffToMe) this.#handoffAttempts = 0;
        continue;
      }
    }
  }

  /** Waits `ms`, or less when woken (`#wake`: a HANDOFF frame, a change of holder, stop). */
  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = null;
  }

  /** Runs `step` after every earlier transition. Never rejects (a failure is logged). */
  #serialised(step: () => Promise<void>): Promise<void> {
    const next = this.#transition.then(step).catch((err: unknown) => {
      this.#opts.log.error("role change failed", { error: (err as Error).message });
    });
    this.#transition = next;
    return next;
  }
}

function samePrimary(a: PrimaryInfo | null | undefined, b: PrimaryInfo | null): boolean {
  if (a === undefined) return false;
  if (a === null || b === null) return a === b;
  return a.advertiseURL === b.advertiseURL && a.epoch === b.epoch && a.hostname === b.hostname;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
