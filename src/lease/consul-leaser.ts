// The lease on Consul, with LiteFS's keys (`url`, `key`, `ttl`, `lock-delay`) and layout: the lease key
// holds `{"hostname","advertise-url"}` (plus our "node-id") and is locked by the holder's session; the
// cluster id lives at `<key>/clusterid`; a handoff marker at `<key>/handoff`.
//
// Acquire: refuse if the key is locked (holder's identity from its value) or a handoff marker names
// another node; create a session (TTL, LockDelay, Behavior "delete"); `PUT ?acquire=`. Consul refuses
// the lock during the lock delay after the previous holder's session was invalidated, so a refusal with
// no holder is retried for up to the lock delay. The epoch is the key's ModifyIndex read right after the
// lock was taken: Consul's raft index only grows, so each new holder's epoch exceeds all earlier ones.
//
// Handoff is best effort on Consul (unlike etcd, where one transaction checks the marker): between a
// third node's marker check and its `?acquire=`, the holder can unlock, and the third node can win the
// race. That costs the target its fast takeover, never safety: the lock still has a single holder.
//
// Safety while held: see lease-keeper.ts. Consul documents the session TTL as a lower bound (it may
// invalidate later, never earlier), and the renew request's send time starts the next deadline.
//
// NOT run against a real Consul server: none can be installed here (licence). See docs/lease.md.
import { type Clock, sleepOn, systemClock } from "./clock.js";
import { ConsulHttpClient, entryValue, parseJson, type ConsulKvEntry } from "./consul-http-client.js";
import { ConsulLeaseBackend } from "./consul-lease-backend.js";
import { decodeHandoffMarker } from "./handoff-marker.js";
import { KeptLease } from "./kept-lease.js";
import { LeaseError, LeaseExistsError, LeaseHandoffPendingError } from "./lease-error.js";
import { defaultRequestTimeoutMs, defaultSafetyMarginMs } from "./lease-timing.js";
import type { Lease, Leaser, NodeIdentity, PrimaryInfo } from "./leaser.js";
import { decodePrimaryRecord, encodePrimaryRecord, samePrimary } from "./primary-record.js";

export interface ConsulLeaserOptions {
  /** Consul agent URL, e.g. "http://127.0.0.1:8500". */
  url: string;
  /** The lease key, unique per cluster, e.g. "litefs/cluster1". */
  key: string;
  identity: NodeIdentity;
  /** Session TTL (ms): whole seconds from 10 s to 24 h, as Consul requires. Default 10 s. */
  ttlMs?: number;
  /** Session lock delay (ms): 0 to 60 s. Default 1 s. */
  lockDelayMs?: number;
  safetyMarginMs?: number;
  requestTimeoutMs?: number;
  /** Longest wait of one blocking read in `watch` (ms, whole seconds). Default 30 s. */
  watchWaitMs?: number;
  /** Pause before a failed watch read is retried (ms). Default 500. */
  watchRetryDelayMs?: number;
  clock?: Clock;
  onBackgroundError?: (error: Error) => void;
  /** Each renewal of a held lease that failed (the lease is lost only if they fail until its deadline). */
  onRenewFailed?: (error: unknown, msLeft: number) => void;
}

export const CONSUL_LEASE_DEFAULTS = {
  ttlMs: 10_000,
  lockDelayMs: 1_000,
  watchWaitMs: 30_000,
  watchRetryDelayMs: 500,
};
const CONSUL_TTL_MIN_MS = 10_000;
const CONSUL_TTL_MAX_MS = 86_400_000;
const CONSUL_LOCK_DELAY_MAX_MS = 60_000;

export class ConsulLeaser implements Leaser {
  readonly type = "consul";
  readonly identity: NodeIdentity;
  readonly key: string;
  readonly ttlMs: number;
  readonly #handoffKey: string;
  readonly #clusterIdKey: string;
  readonly #client: ConsulHttpClient;
  readonly #lockDelayMs: number;
  readonly #safetyMarginMs: number;
  readonly #watchWaitMs: number;
  readonly #watchRetryDelayMs: number;
  readonly #clock: Clock;
  readonly #onBackgroundError: (error: Error) => void;
  readonly #onRenewFailed: ((error: unknown, msLeft: number) => void) | undefined;
  readonly #closing = new AbortController();
  #held: KeptLease | undefined;
  #acquiring = false;

  constructor(options: ConsulLeaserOptions) {
    this.identity = options.identity;
    this.key = options.key.replace(/^\/+|\/+$/g, "");
    if (this.key === "") throw new LeaseError("ELEASECONFIG", "consul: `key` is required");
    this.#handoffKey = `${this.key}/handoff`;
    this.#clusterIdKey = `${this.key}/clusterid`;
    this.ttlMs = options.ttlMs ?? CONSUL_LEASE_DEFAULTS.ttlMs;
    if (
      !Number.isInteger(this.ttlMs / 1000) ||
      this.ttlMs < CONSUL_TTL_MIN_MS ||
      this.ttlMs > CONSUL_TTL_MAX_MS
    ) {
      throw new LeaseError(
        "ELEASECONFIG",
        `consul session TTL must be whole seconds from 10s to 24h, got ${this.ttlMs} ms`,
      );
    }
    this.#lockDelayMs = options.lockDelayMs ?? CONSUL_LEASE_DEFAULTS.lockDelayMs;
    if (
      !Number.isInteger(this.#lockDelayMs) ||
      this.#lockDelayMs < 0 ||
      this.#lockDelayMs > CONSUL_LOCK_DELAY_MAX_MS
    ) {
      throw new LeaseError(
        "ELEASECONFIG",
        `consul lock delay must be 0–60 s in whole ms, got ${this.#lockDelayMs}`,
      );
    }
    this.#safetyMarginMs = options.safetyMarginMs ?? defaultSafetyMarginMs(this.ttlMs);
    this.#watchWaitMs = options.watchWaitMs ?? CONSUL_LEASE_DEFAULTS.watchWaitMs;
    this.#watchRetryDelayMs = options.watchRetryDelayMs ?? CONSUL_LEASE_DEFAULTS.watchRetryDelayMs;
    this.#clock = options.clock ?? systemClock;
    this.#onBackgroundError = options.onBackgroundError ?? (() => undefined);
    this.#onRenewFailed = options.onRenewFailed;
    this.#client = new ConsulHttpClient({
      url: options.url,
      requestTimeoutMs: options.requestTimeoutMs ?? defaultRequestTimeoutMs(this.ttlMs),
    });
  }

  async acquire(): Promise<Lease> {
    this.#assertOpen();
    if (this.#acquiring) {
      throw new LeaseError("ELEASESTATE", "another acquire() of this leaser is still running", {
        where: this.key,
      });
    }
    this.#acquiring = true;
    try {
      return await this.#acquire();
    } finally {
      this.#acquiring = false;
    }
  }

  async #acquire(): Promise<Lease> {
    if (this.#held !== undefined) {
      throw new LeaseError("ELEASESTATE", `this node already holds the lease (epoch ${this.#held.epoch})`, {
        where: this.key,
      });
    }
    const signal = this.#closing.signal;
    this.#refuseIfHeld((await this.#client.getKey(this.key, { signal })).entry);
    const marker = (await this.#client.getKey(this.#handoffKey, { signal })).entry;
    const handoff =
      marker === undefined ? undefined : decodeHandoffMarker(entryValue(marker), this.#handoffKey);
    if (handoff !== undefined && handoff.toNodeId !== this.identity.nodeId) {
      throw new LeaseHandoffPendingError(handoff.toNodeId, { where: this.#handoffKey });
    }

    const grantSentAt = this.#clock.now();
    const sessionId = await this.#createSession();
    const record = encodePrimaryRecord(this.identity);
    let epoch: bigint | undefined;
    try {
      const giveUpAt = this.#clock.now() + this.#lockDelayMs;
      while (!(await this.#client.putKey(this.key, record, { acquire: sessionId }, signal))) {
        this.#refuseIfHeld((await this.#client.getKey(this.key, { signal })).entry);
        // Unlocked yet refused: the previous holder's lock delay is running.
        if (this.#clock.now() >= giveUpAt) {
          throw new LeaseError(
            "ELEASEDELAY",
            `Consul still refuses the lock after the ${this.#lockDelayMs} ms lock delay`,
            {
              where: this.key,
            },
          );
        }
        await sleepOn(this.#clock, Math.max(10, Math.min(250, this.#lockDelayMs / 4)), signal);
      }
      const { entry } = await this.#client.getKey(this.key, { signal });
      if (entry?.Session !== sessionId) {
        throw new LeaseError("ELEASEPROTOCOL", "the lock was granted but the key does not name our session", {
          where: this.key,
        });
      }
      epoch = BigInt(entry.ModifyIndex);
    } finally {
      if (epoch === undefined) this.#destroyInBackground(sessionId);
    }
    if (marker !== undefined) {
      // Ours now; the marker would lapse with the old session anyway, this just ends it sooner.
      this.#client
        .deleteKey(this.#handoffKey, { cas: String(marker.ModifyIndex) })
        .catch((error: unknown) => this.#onBackgroundError(error as Error));
    }
    const lease: KeptLease = new KeptLease({
      backend: new ConsulLeaseBackend({
        client: this.#client,
        key: this.key,
        handoffKey: this.#handoffKey,
        sessionId,
        epoch,
        record,
      }),
      epoch,
      clock: this.#clock,
      ttlMs: this.ttlMs,
      safetyMarginMs: this.#safetyMarginMs,
      grantSentAt,
      grantedTtlMs: this.ttlMs,
      viaHandoff: handoff !== undefined,
      onBackgroundError: this.#onBackgroundError,
      onRenewFailed: this.#onRenewFailed,
      onEnd: (ended) => {
        if (this.#held === ended) this.#held = undefined;
      },
    });
    this.#held = lease;
    if (this.#closing.signal.aborted) {
      await lease.release(); // close() ran while acquiring and saw nothing to release
      this.#assertOpen();
    }
    return lease;
  }

  async primaryInfo(): Promise<PrimaryInfo | null> {
    this.#assertOpen();
    return this.#holder((await this.#client.getKey(this.key, { signal: this.#closing.signal })).entry);
  }

  async *watch(signal: AbortSignal): AsyncGenerator<PrimaryInfo | null> {
    this.#assertOpen();
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    let latest: PrimaryInfo | null | undefined;
    let index = 0n;
    while (!stop.aborted) {
      try {
        const answer = await this.#client.getKey(this.key, {
          signal: stop,
          index,
          waitMs: this.#watchWaitMs,
        });
        // Consul's rules for blocking reads: an index that went backwards means start over; never use 0.
        const next = answer.index ?? 0n;
        index = next < index ? 0n : next;
        if (index < 1n) index = 1n;
        const current = this.#holder(answer.entry);
        if (latest === undefined || !samePrimary(latest, current)) yield (latest = current);
      } catch (error) {
        if (stop.aborted) return;
        this.#onBackgroundError(error instanceof Error ? error : new Error(String(error)));
        await sleepOn(this.#clock, this.#watchRetryDelayMs, stop).catch(() => undefined);
      }
    }
  }

  async clusterId(): Promise<string | null> {
    this.#assertOpen();
    const { entry } = await this.#client.getKey(this.#clusterIdKey, { signal: this.#closing.signal });
    return entry === undefined ? null : entryValue(entry);
  }

  async setClusterIdIfAbsent(id: string): Promise<string> {
    this.#assertOpen();
    if (id === "") throw new LeaseError("ELEASECONFIG", "cluster id must not be empty");
    if (await this.#client.putKey(this.#clusterIdKey, id, { cas: "0" }, this.#closing.signal)) return id;
    const stored = await this.clusterId();
    if (stored === null) {
      throw new LeaseError("ELEASEPROTOCOL", "cluster id exists but could not be read", {
        where: this.#clusterIdKey,
      });
    }
    return stored;
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new LeaseError("ELEASECLOSED", "consul leaser closed", { where: this.key }));
    await this.#held?.release();
  }

  async #createSession(): Promise<string> {
    const answer = await this.#client.request("PUT", "/v1/session/create", {
      signal: this.#closing.signal,
      body: JSON.stringify({
        Name: `litefs-${this.identity.hostname}`,
        TTL: `${this.ttlMs / 1000}s`,
        LockDelay: `${this.#lockDelayMs}ms`,
        Behavior: "delete",
      }),
    });
    const body = answer.status === 200 ? parseJson(answer.text, "consul session create") : undefined;
    const id = (body as { ID?: unknown } | undefined)?.ID;
    if (typeof id !== "string" || id === "") {
      throw new LeaseError(
        "ELEASEPROTOCOL",
        `session create: HTTP ${answer.status} ${answer.text.slice(0, 200)}`,
        {
          where: this.key,
        },
      );
    }
    return id;
  }

  #refuseIfHeld(entry: ConsulKvEntry | undefined): void {
    const holder = this.#holder(entry);
    if (holder !== null) throw new LeaseExistsError(holder, { where: this.key });
  }

  /** The holder named by a locked entry; an unlocked or missing key has none. */
  #holder(entry: ConsulKvEntry | undefined): PrimaryInfo | null {
    if (entry === undefined || entry.Session === undefined || entry.Session === "") return null;
    return decodePrimaryRecord(entryValue(entry), BigInt(entry.ModifyIndex), this.key);
  }

  #destroyInBackground(sessionId: string): void {
    this.#client.request("PUT", `/v1/session/destroy/${sessionId}`).catch((error: unknown) => {
      this.#onBackgroundError(error instanceof Error ? error : new Error(String(error)));
    });
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted)
      throw new LeaseError("ELEASECLOSED", "consul leaser is closed", { where: this.key });
  }
}
