// The lease on etcd v3, through its JSON gateway (see etcd-gateway-client.ts; key layout in
// etcd-lease-keys.ts).
//
// Acquire: read every key under the prefix in one range; if P/primary exists, refuse with its holder;
// if P/handoff reserves the lease for another node, refuse; if P/last says the previous holder was still
// "holding" (it lost the lease by expiry, or crashed), wait the lock delay once — counted from when we
// saw the key gone, which is no earlier than when etcd deleted it. Then grant an etcd lease and put
// P/primary in a transaction that requires P/primary absent and P/last and P/handoff unchanged since the
// read, so a holder that appeared meanwhile always wins over us. The epoch is the create revision.
// A handoff's target whose watch saw the deletion skips the read once (`#tryReserved`).
//
// Handoff: the holder, in one transaction guarded by its epoch, deletes P/primary, records
// "handed-off" in P/last and puts P/handoff {to} attached to its own etcd lease, then stops renewing.
// The target's acquire sees the marker naming it, skips the lock delay and takes the lease (deleting the
// marker in the same transaction) without waiting for any TTL; everyone else is refused until then, or
// until the old etcd lease lapses (≤ TTL) if the target never comes.
//
// Safety while held: see lease-keeper.ts. The keep-alive is the first request of every renewal, and its
// send time starts the next deadline.
import { type Clock, sleepOn, systemClock } from "./clock.js";
import {
  asRecord,
  EtcdGatewayClient,
  int64Field,
  toBase64,
  type EtcdKeyValue,
} from "./etcd-gateway-client.js";
import { EtcdLeaseBackend } from "./etcd-lease-backend.js";
import {
  decodeLastHolder,
  EtcdLeaseKeys,
  encodeLastHolder,
  keyValuesByName,
  storedKey,
  txn,
  txnOutcome,
  type StoredKey,
} from "./etcd-lease-keys.js";
import { decodeHandoffMarker, encodeHandoffMarker } from "./handoff-marker.js";
import { KeptLease } from "./kept-lease.js";
import { LeaseError, LeaseExistsError, LeaseHandoffPendingError } from "./lease-error.js";
import { defaultRequestTimeoutMs, defaultSafetyMarginMs } from "./lease-timing.js";
import type { AcquireOptions, Lease, Leaser, NodeIdentity, PrimaryInfo } from "./leaser.js";
import { decodePrimaryRecord, encodePrimaryRecord, samePrimary } from "./primary-record.js";

export interface EtcdLeaserOptions {
  /** Client URLs of the etcd members; each is tried in turn. */
  endpoints: readonly string[];
  /** Key prefix of this cluster's lease, e.g. "/litefs/cluster1". */
  key: string;
  identity: NodeIdentity;
  /** Lease TTL in ms, whole seconds (etcd's unit), ≥ 1 s. Default 10 s. */
  ttlMs?: number;
  /** Wait before taking a lease whose holder lost it by expiry (ms). Default 1 s. */
  lockDelayMs?: number;
  /** Subtracted from every local deadline (ms). Default: defaultSafetyMarginMs(ttl). */
  safetyMarginMs?: number;
  /** Limit for one request to one endpoint (ms). Default: defaultRequestTimeoutMs(ttl). */
  requestTimeoutMs?: number;
  /** Pause before a broken watch reconnects (ms). Default 500. */
  watchRetryDelayMs?: number;
  /** A watch stream is re-established this often (ms), bounding how long a silently stalled one can
   *  hide a change. Default 30 s. */
  watchResyncMs?: number;
  clock?: Clock;
  /** Failures of work nobody awaits (cleanup after a loss, watch reconnects). Default: ignored. */
  onBackgroundError?: (error: Error) => void;
  /** Each renewal of a held lease that failed (the lease is lost only if they fail until its deadline). */
  onRenewFailed?: (error: unknown, msLeft: number) => void;
}

export const ETCD_LEASE_DEFAULTS = {
  ttlMs: 10_000,
  lockDelayMs: 1_000,
  watchRetryDelayMs: 500,
  watchResyncMs: 30_000,
};

/** An etcd lease granted for an acquire. */
interface Grant {
  readonly leaseId: string;
  /** Clock time read before the grant request left. */
  readonly sentAt: number;
  readonly ttlMs: number;
}

/** Rounds of read-then-write in one acquire before giving up on a lease whose keys keep changing. */
const ACQUIRE_ROUNDS_MAX = 4;

export class EtcdLeaser implements Leaser {
  readonly type = "etcd";
  readonly identity: NodeIdentity;
  readonly keys: EtcdLeaseKeys;
  readonly ttlMs: number;
  readonly #client: EtcdGatewayClient;
  readonly #lockDelayMs: number;
  readonly #safetyMarginMs: number;
  readonly #watchRetryDelayMs: number;
  readonly #watchResyncMs: number;
  readonly #clock: Clock;
  readonly #onBackgroundError: (error: Error) => void;
  readonly #onRenewFailed: ((error: unknown, msLeft: number) => void) | undefined;
  readonly #closing = new AbortController();
  #held: KeptLease | undefined;
  #acquiring = false;
  /** The cluster id the successful acquire's read found (undefined: none, or already used). */
  #clusterIdAtAcquire: string | undefined;
  /**
   * The last deletion of the primary key the watch saw, with the holder it removed — what a handoff to
   * this node looks like from here (AcquireOptions.handoffExpected). Undefined when the last event was
   * not a deletion, or it was used.
   */
  #vacated: { readonly revision: bigint; readonly holder: PrimaryInfo } | undefined;
  /** A grant asked by `prepareAcquire` for the next acquire (undefined: none). */
  #pregrant: { readonly grant: Promise<Grant>; readonly askedAt: number } | undefined;

  constructor(options: EtcdLeaserOptions) {
    this.identity = options.identity;
    this.keys = new EtcdLeaseKeys(options.key);
    this.ttlMs = options.ttlMs ?? ETCD_LEASE_DEFAULTS.ttlMs;
    if (!Number.isInteger(this.ttlMs / 1000) || this.ttlMs < 1000) {
      throw new LeaseError(
        "ELEASECONFIG",
        `etcd lease TTL must be whole seconds ≥ 1 s, got ${this.ttlMs} ms`,
      );
    }
    this.#lockDelayMs = options.lockDelayMs ?? ETCD_LEASE_DEFAULTS.lockDelayMs;
    if (!(this.#lockDelayMs >= 0)) throw new LeaseError("ELEASECONFIG", "etcd lock delay must be ≥ 0");
    this.#safetyMarginMs = options.safetyMarginMs ?? defaultSafetyMarginMs(this.ttlMs);
    this.#watchRetryDelayMs = options.watchRetryDelayMs ?? ETCD_LEASE_DEFAULTS.watchRetryDelayMs;
    this.#watchResyncMs = options.watchResyncMs ?? ETCD_LEASE_DEFAULTS.watchResyncMs;
    this.#clock = options.clock ?? systemClock;
    this.#onBackgroundError = options.onBackgroundError ?? (() => undefined);
    this.#onRenewFailed = options.onRenewFailed;
    this.#client = new EtcdGatewayClient({
      endpoints: options.endpoints,
      requestTimeoutMs: options.requestTimeoutMs ?? defaultRequestTimeoutMs(this.ttlMs),
    });
  }

  async acquire(options: AcquireOptions = {}): Promise<Lease> {
    this.#assertOpen();
    if (this.#acquiring) {
      throw new LeaseError("ELEASESTATE", "another acquire() of this leaser is still running", {
        where: this.keys.primary,
      });
    }
    this.#acquiring = true;
    try {
      return await this.#acquire(
        options.likelyFree === true,
        options.vacancyCheck,
        options.handoffExpected === true,
      );
    } finally {
      this.#acquiring = false;
    }
  }

  /**
   * A handoff to this node is coming: the etcd lease is granted now (a disk-synced proposal at etcd),
   * so that the acquire is left with its read and its transaction. The grant's send time starts the
   * held lease's deadline as usual (an earlier start only makes the deadline earlier); one older than a
   * third of the TTL is not used (revoked), and one never used expires at etcd by itself. Called again
   * while a handoff is still on its way (the old primary may pace its commits first, for up to 2 s), a
   * grant older than a quarter of the TTL is replaced (revoked), so the one used is fresh enough.
   */
  prepareAcquire(): void {
    if (this.#closing.signal.aborted || this.#held !== undefined) return;
    const previous = this.#pregrant;
    if (previous !== undefined) {
      if (this.#clock.now() - previous.askedAt <= this.ttlMs / 4) return;
      this.#pregrant = undefined;
      previous.grant.then((g) => this.#revokeInBackground(g.leaseId)).catch(() => undefined);
    }
    const grant = this.#grant();
    grant.catch(() => undefined);
    this.#pregrant = { grant, askedAt: this.#clock.now() };
  }

  /** The grant `prepareAcquire` asked for, if it is fresh enough to use (taken: it is the caller's). */
  #takePregrant(): Promise<Grant> | undefined {
    const pregrant = this.#pregrant;
    this.#pregrant = undefined;
    if (pregrant === undefined) return undefined;
    if (this.#clock.now() - pregrant.askedAt <= this.ttlMs / 3) return pregrant.grant;
    pregrant.grant.then((g) => this.#revokeInBackground(g.leaseId)).catch(() => undefined);
    return undefined;
  }

  async #acquire(
    likelyFree: boolean,
    vacancyCheck: (() => Promise<boolean>) | undefined,
    handoffExpected: boolean,
  ): Promise<Lease> {
    if (this.#held !== undefined) {
      throw new LeaseError("ELEASESTATE", `this node already holds the lease (epoch ${this.#held.epoch})`, {
        where: this.keys.primary,
      });
    }
    let lockDelayServedFor: bigint | undefined; // mod revision of the P/last record we already waited on
    // Likely free: the grant goes out with the first read (its send time, the earlier one, starts the
    // keeper's deadline, which only makes that deadline earlier), or was asked already
    // (prepareAcquire). Used by the first round at most.
    const vacated = handoffExpected ? this.#vacated : undefined;
    let early = likelyFree || vacated !== undefined ? (this.#takePregrant() ?? this.#grant()) : undefined;
    early?.catch(() => undefined); // awaited below, or dropped after a refusal
    try {
      if (vacated !== undefined && early !== undefined) {
        const lease = await this.#tryReserved(early, vacated);
        if (lease !== undefined) {
          early = undefined;
          return lease;
        }
      }
      for (let round = 0; round < ACQUIRE_ROUNDS_MAX; round++) {
        const keys = await this.#readAll();
        const primary = keys.get(this.keys.primary);
        if (primary !== undefined) {
          throw new LeaseExistsError(this.#primaryInfo(primary), { where: this.keys.primary });
        }
        const handoff = keys.get(this.keys.handoff);
        const marker =
          handoff === undefined ? undefined : decodeHandoffMarker(handoff.value, this.keys.handoff);
        const targeted = marker?.toNodeId === this.identity.nodeId;
        if (marker !== undefined && !targeted) {
          throw new LeaseHandoffPendingError(marker.toNodeId, { where: this.keys.handoff });
        }
        if (!targeted && vacancyCheck !== undefined && !(await vacancyCheck())) {
          throw new LeaseError(
            "ELEASERANKED",
            "the lease is free, but a more up-to-date candidate may take it first",
            {
              where: this.keys.primary,
            },
          );
        }
        vacancyCheck = undefined; // asked once per acquire
        const last = keys.get(this.keys.last);
        const lastState = last === undefined ? undefined : decodeLastHolder(last.value, this.keys.last).state;
        if (
          !targeted &&
          lastState === "holding" &&
          this.#lockDelayMs > 0 &&
          lockDelayServedFor !== last!.modRevision
        ) {
          // An early grant would spend its TTL on the wait (the lock delay may outlast it): give it back.
          early?.then((g) => this.#revokeInBackground(g.leaseId)).catch(() => undefined);
          early = undefined;
          await sleepOn(this.#clock, this.#lockDelayMs, this.#closing.signal);
          lockDelayServedFor = last!.modRevision;
          continue; // read again: someone may have taken it meanwhile
        }
        const granted = early;
        early = undefined;
        const lease = await this.#tryCreate(
          granted ?? this.#grant(),
          last?.modRevision ?? 0n,
          handoff?.modRevision ?? 0n,
          targeted,
        );
        if (lease !== undefined) {
          this.#clusterIdAtAcquire = keys.get(this.keys.clusterId)?.value;
          return lease;
        }
      }
    } finally {
      // Refused (or failed) before the early grant was used: give it back rather than let it run out.
      if (early !== undefined) {
        early.then((g) => this.#revokeInBackground(g.leaseId)).catch(() => undefined);
      }
    }
    throw new LeaseError(
      "ELEASEDELAY",
      `the lease keys changed during ${ACQUIRE_ROUNDS_MAX} attempts; retry`,
      {
        where: this.keys.primary,
      },
    );
  }

  async primaryInfo(): Promise<PrimaryInfo | null> {
    this.#assertOpen();
    const primary = (await this.#readAll()).get(this.keys.primary);
    return primary === undefined ? null : this.#primaryInfo(primary);
  }

  async *watch(signal: AbortSignal): AsyncGenerator<PrimaryInfo | null> {
    this.#assertOpen();
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    let latest: PrimaryInfo | null | undefined;
    while (!stop.aborted) {
      try {
        const answer = await this.#client.call("/v3/kv/range", this.keys.rangeAll(), stop);
        const revision = int64Field(asRecord(asRecord(answer)["header"])["revision"], this.keys.primary);
        const stored = keyValuesByName(answer, this.keys.primary).get(this.keys.primary);
        const current = stored === undefined ? null : this.#primaryInfo(stored);
        this.#vacated = undefined; // a deletion before this read is not known by its revision
        if (latest === undefined || !samePrimary(latest, current)) yield (latest = current);
        const request = {
          create_request: { key: toBase64(this.keys.primary), start_revision: (revision + 1n).toString() },
        };
        const streamSignal = AbortSignal.any([stop, AbortSignal.timeout(this.#watchResyncMs)]);
        for await (const result of this.#client.stream("/v3/watch", request, streamSignal)) {
          const message = asRecord(result);
          if (message["canceled"] === true) break; // e.g. compacted: start over from a fresh read
          const events = message["events"];
          if (!Array.isArray(events)) continue;
          for (const event of events as unknown[]) {
            const record = asRecord(event);
            const kv = asRecord(record["kv"]);
            const deleted = record["type"] === "DELETE";
            this.#vacated =
              deleted && latest !== undefined && latest !== null
                ? { revision: int64Field(kv["mod_revision"], this.keys.primary), holder: latest }
                : undefined;
            const next = deleted
              ? null
              : this.#primaryInfo(storedKey(kv as unknown as EtcdKeyValue, this.keys.primary));
            if (!samePrimary(latest, next)) yield (latest = next);
          }
        }
        // Ended before its resync time (closed or cancelled by the server): do not spin on reconnects.
        if (!streamSignal.aborted) await sleepOn(this.#clock, this.#watchRetryDelayMs, stop);
      } catch (error) {
        if (stop.aborted) return;
        this.#onBackgroundError(error instanceof Error ? error : new Error(String(error)));
        await sleepOn(this.#clock, this.#watchRetryDelayMs, stop).catch(() => undefined);
      }
    }
  }

  async clusterId(): Promise<string | null> {
    this.#assertOpen();
    // Right after a successful acquire: the id its read found (as fresh as a read now: that read came
    // before the acquire's transaction) — one etcd round trip less on the way to becoming primary.
    const seen = this.#clusterIdAtAcquire;
    this.#clusterIdAtAcquire = undefined;
    if (seen !== undefined && this.#held !== undefined) return seen;
    return (await this.#readAll()).get(this.keys.clusterId)?.value ?? null;
  }

  async setClusterIdIfAbsent(id: string): Promise<string> {
    this.#assertOpen();
    if (id === "") throw new LeaseError("ELEASECONFIG", "cluster id must not be empty");
    const answer = await this.#client.call("/v3/kv/txn", {
      compare: [txn.createRevisionIs(this.keys.clusterId, 0n)],
      success: [txn.put(this.keys.clusterId, id)],
      failure: [txn.range(this.keys.clusterId)],
    });
    const outcome = txnOutcome(answer, this.keys.clusterId);
    if (outcome.succeeded) return id;
    const stored = outcome.ranges[0]?.get(this.keys.clusterId);
    if (stored === undefined) {
      throw new LeaseError("ELEASEPROTOCOL", "cluster id exists but could not be read", {
        where: this.keys.clusterId,
      });
    }
    return stored.value;
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new LeaseError("ELEASECLOSED", "etcd leaser closed", { where: this.keys.prefix }));
    await this.#held?.release();
  }

  /** Asks etcd for a lease of our TTL; `sentAt` is read before the request leaves. */
  async #grant(): Promise<Grant> {
    const sentAt = this.#clock.now();
    const grant = asRecord(
      await this.#client.call("/v3/lease/grant", { TTL: String(this.ttlMs / 1000) }, this.#closing.signal),
    );
    const leaseId = grant["ID"];
    const ttlSeconds = int64Field(grant["TTL"], this.keys.primary);
    if (typeof leaseId !== "string" || !/^\d+$/.test(leaseId) || ttlSeconds <= 0n) {
      throw new LeaseError("ELEASEPROTOCOL", `lease grant answered ${JSON.stringify(grant)}`, {
        where: this.keys.primary,
      });
    }
    return { leaseId, sentAt, ttlMs: Number(ttlSeconds) * 1000 };
  }

  /** Tries to create P/primary with the granted lease; undefined when the keys changed. */
  async #tryCreate(
    granting: Promise<Grant>,
    lastRevision: bigint,
    handoffRevision: bigint,
    targeted: boolean,
  ): Promise<Lease | undefined> {
    const { leaseId, sentAt: grantSentAt, ttlMs: grantedTtlMs } = await granting;
    let epoch: bigint | undefined;
    try {
      const answer = await this.#client.call(
        "/v3/kv/txn",
        {
          compare: [
            txn.createRevisionIs(this.keys.primary, 0n),
            txn.modRevisionIs(this.keys.last, lastRevision),
            txn.modRevisionIs(this.keys.handoff, handoffRevision),
          ],
          success: [
            txn.put(this.keys.primary, encodePrimaryRecord(this.identity), leaseId),
            txn.put(this.keys.last, this.#holdingRecord()),
            ...(targeted ? [txn.remove(this.keys.handoff)] : []),
          ],
          failure: [txn.range(this.keys.primary)],
        },
        this.#closing.signal,
      );
      const outcome = txnOutcome(answer, this.keys.primary);
      if (outcome.succeeded) epoch = outcome.revision;
      else {
        // An earlier try of this same transaction may have gone through with only its answer lost.
        const primary = outcome.ranges[0]?.get(this.keys.primary);
        if (primary !== undefined && primary.lease === leaseId) epoch = primary.createRevision;
      }
    } finally {
      if (epoch === undefined) this.#revokeInBackground(leaseId);
    }
    if (epoch === undefined) return undefined;
    return this.#keep(leaseId, epoch, grantSentAt, grantedTtlMs, targeted);
  }

  /**
   * Takes the lease reserved for this node by the handoff whose deletion of the primary key the watch
   * saw at `vacated.revision`, without reading first: the transaction requires the primary key absent
   * and the reservation exactly as that handoff wrote it — naming this node and the holder's epoch,
   * it and the last-holder record unchanged since — which is what the read would have had to find for
   * the same transaction to go ahead. Undefined when anything differs (the caller reads and tries as
   * usual, with the same grant, which is not revoked here).
   */
  async #tryReserved(
    granting: Promise<Grant>,
    vacated: { readonly revision: bigint; readonly holder: PrimaryInfo },
  ): Promise<Lease | undefined> {
    this.#vacated = undefined; // one try per deletion
    const { leaseId, sentAt, ttlMs } = await granting;
    const marker = encodeHandoffMarker({ toNodeId: this.identity.nodeId, fromEpoch: vacated.holder.epoch });
    const answer = await this.#client.call(
      "/v3/kv/txn",
      {
        compare: [
          txn.createRevisionIs(this.keys.primary, 0n),
          txn.modRevisionIs(this.keys.last, vacated.revision),
          txn.modRevisionIs(this.keys.handoff, vacated.revision),
          txn.valueIs(this.keys.handoff, marker),
        ],
        success: [
          txn.put(this.keys.primary, encodePrimaryRecord(this.identity), leaseId),
          txn.put(this.keys.last, this.#holdingRecord()),
          txn.remove(this.keys.handoff),
          txn.range(this.keys.clusterId),
        ],
        failure: [txn.range(this.keys.primary)],
      },
      this.#closing.signal,
    );
    const outcome = txnOutcome(answer, this.keys.primary);
    let epoch: bigint | undefined;
    if (outcome.succeeded) {
      epoch = outcome.revision;
      this.#clusterIdAtAcquire = outcome.ranges[3]?.get(this.keys.clusterId)?.value;
    } else {
      // An earlier try of this same transaction may have gone through with only its answer lost.
      const primary = outcome.ranges[0]?.get(this.keys.primary);
      if (primary !== undefined && primary.lease === leaseId) epoch = primary.createRevision;
    }
    if (epoch === undefined) return undefined;
    return this.#keep(leaseId, epoch, sentAt, ttlMs, true);
  }

  /** The held lease for an etcd lease the primary key was just created with (epoch: its revision). */
  async #keep(
    leaseId: string,
    epoch: bigint,
    grantSentAt: number,
    grantedTtlMs: number,
    viaHandoff: boolean,
  ): Promise<Lease> {
    const lease: KeptLease = new KeptLease({
      backend: new EtcdLeaseBackend({
        client: this.#client,
        keys: this.keys,
        identity: this.identity,
        leaseId,
        epoch,
        onBackgroundError: this.#onBackgroundError,
      }),
      epoch,
      clock: this.#clock,
      ttlMs: this.ttlMs,
      safetyMarginMs: this.#safetyMarginMs,
      grantSentAt,
      grantedTtlMs,
      viaHandoff,
      onBackgroundError: this.#onBackgroundError,
      onRenewFailed: this.#onRenewFailed,
      onEnd: (ended) => {
        if (this.#held === ended) this.#held = undefined;
      },
    });
    this.#held = lease;
    if (this.#closing.signal.aborted) {
      // close() ran while the transaction was in flight and saw no lease to release.
      await lease.release();
      this.#assertOpen();
    }
    return lease;
  }

  #holdingRecord(): string {
    // The epoch is not known before the transaction runs; the record's own mod revision equals it.
    return encodeLastHolder({
      nodeId: this.identity.nodeId,
      hostname: this.identity.hostname,
      state: "holding",
    });
  }

  async #readAll(): Promise<Map<string, StoredKey>> {
    const answer = await this.#client.call("/v3/kv/range", this.keys.rangeAll(), this.#closing.signal);
    return keyValuesByName(answer, this.keys.prefix);
  }

  #primaryInfo(stored: StoredKey): PrimaryInfo {
    return decodePrimaryRecord(stored.value, stored.createRevision, this.keys.primary);
  }

  #revokeInBackground(leaseId: string): void {
    this.#client.call("/v3/lease/revoke", { ID: leaseId }).catch((error: unknown) => {
      if ((error as { grpcCode?: number }).grpcCode === 5) return; // already gone
      this.#onBackgroundError(error instanceof Error ? error : new Error(String(error)));
    });
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) {
      throw new LeaseError("ELEASECLOSED", "etcd leaser is closed", { where: this.keys.prefix });
    }
  }
}
