// The etcd half of a held lease: renew (keep-alive + "is the key still mine"), release, handoff, and
// cleanup after a loss. Every write is a transaction guarded by the key's create revision (= our epoch),
// so repeating one after an ambiguous failure, or sending one after the lease was lost, can never touch
// another holder's key.
import { asRecord, int64Field, toBase64, type EtcdGatewayClient } from "./etcd-gateway-client.js";
import { encodeHandoffMarker, decodeHandoffMarker } from "./handoff-marker.js";
import type { LeaseBackend } from "./kept-lease.js";
import { asError, LeaseError, LeaseLostError } from "./lease-error.js";
import type { RenewalConfirmation } from "./lease-keeper.js";
import type { NodeIdentity } from "./leaser.js";
import { encodeLastHolder, keyValuesByName, txn, txnOutcome, type EtcdLeaseKeys } from "./etcd-lease-keys.js";

export interface EtcdLeaseBackendOptions {
  client: EtcdGatewayClient;
  keys: EtcdLeaseKeys;
  identity: NodeIdentity;
  /** The etcd lease id (decimal string) the primary key is attached to. */
  leaseId: string;
  epoch: bigint;
  /** Reports failures of cleanup work nobody awaits. */
  onBackgroundError: (error: Error) => void;
}

export class EtcdLeaseBackend implements LeaseBackend {
  readonly where: string;
  readonly #client: EtcdGatewayClient;
  readonly #keys: EtcdLeaseKeys;
  readonly #identity: NodeIdentity;
  readonly #leaseId: string;
  readonly #epoch: bigint;
  readonly #onBackgroundError: (error: Error) => void;

  constructor(options: EtcdLeaseBackendOptions) {
    this.#client = options.client;
    this.#keys = options.keys;
    this.#identity = options.identity;
    this.#leaseId = options.leaseId;
    this.#epoch = options.epoch;
    this.#onBackgroundError = options.onBackgroundError;
    this.where = `etcd lease ${options.leaseId} on ${options.keys.primary} (epoch ${options.epoch})`;
  }

  async renew(signal: AbortSignal): Promise<RenewalConfirmation> {
    const answer = asRecord(await this.#client.call("/v3/lease/keepalive", { ID: this.#leaseId }, signal));
    if (answer["error"] !== undefined) {
      throw new LeaseError("ELEASEUNAVAILABLE", `keep-alive failed: ${JSON.stringify(answer["error"])}`, {
        where: this.where,
      });
    }
    const ttlSeconds = int64Field(asRecord(answer["result"])["TTL"], this.where);
    if (ttlSeconds <= 0n) {
      throw new LeaseLostError("expired", "etcd says the lease no longer exists (expired or revoked)", {
        where: this.where,
      });
    }
    // The keep-alive proves the etcd lease lives; the key could still have been deleted by someone.
    const range = await this.#client.call("/v3/kv/range", { key: toBase64(this.#keys.primary) }, signal);
    const primary = keyValuesByName(range, this.where).get(this.#keys.primary);
    if (primary === undefined || primary.createRevision !== this.#epoch || primary.lease !== this.#leaseId) {
      throw new LeaseLostError(
        "taken",
        primary === undefined
          ? "the primary key is gone"
          : `the primary key now belongs to epoch ${primary.createRevision} (lease ${primary.lease})`,
        { where: this.where },
      );
    }
    return { ttlMs: Number(ttlSeconds) * 1000 };
  }

  async release(): Promise<void> {
    // Delete the key and record a clean release in one step, so the next acquirer skips the lock delay.
    await this.#client.call("/v3/kv/txn", {
      compare: [
        txn.createRevisionIs(this.#keys.primary, this.#epoch),
        txn.leaseIs(this.#keys.primary, this.#leaseId),
      ],
      success: [txn.remove(this.#keys.primary), txn.put(this.#keys.last, this.#lastRecord("released"))],
      failure: [],
    });
    // If the compare failed the key is not ours any more: there is nothing left to give up but the lease.
    await this.#revoke().catch((error: unknown) => this.#onBackgroundError(asError(error)));
  }

  async handoff(toNodeId: string): Promise<void> {
    const marker = encodeHandoffMarker({ toNodeId, fromEpoch: this.#epoch });
    const answer = await this.#client.call("/v3/kv/txn", {
      compare: [
        txn.createRevisionIs(this.#keys.primary, this.#epoch),
        txn.leaseIs(this.#keys.primary, this.#leaseId),
      ],
      success: [
        txn.remove(this.#keys.primary),
        txn.put(this.#keys.last, this.#lastRecord("handed-off")),
        // Tied to our etcd lease, which we stop renewing: the reservation lapses by itself within a TTL.
        txn.put(this.#keys.handoff, marker, this.#leaseId),
      ],
      failure: [txn.range(this.#keys.handoff)],
    });
    const outcome = txnOutcome(answer, this.where);
    if (outcome.succeeded) return;
    // The compare fails also when an earlier try of this very transaction went through and only its
    // answer was lost: then the marker is ours.
    const existing = outcome.ranges[0]?.get(this.#keys.handoff);
    if (existing !== undefined && existing.lease === this.#leaseId) {
      const found = decodeHandoffMarker(existing.value, this.where);
      if (found.toNodeId === toNodeId && found.fromEpoch === this.#epoch) return;
    }
    throw new LeaseLostError("taken", "the primary key was no longer ours when handing off", {
      where: this.where,
    });
  }

  async abandon(): Promise<void> {
    await this.#revoke();
  }

  async #revoke(): Promise<void> {
    try {
      await this.#client.call("/v3/lease/revoke", { ID: this.#leaseId });
    } catch (error) {
      // etcd answers NotFound (gRPC 5) for a lease that already expired: that is the goal reached.
      if ((error as { grpcCode?: number }).grpcCode === 5) return;
      throw error;
    }
  }

  #lastRecord(state: "released" | "handed-off"): string {
    return encodeLastHolder({
      nodeId: this.#identity.nodeId,
      hostname: this.#identity.hostname,
      epoch: this.#epoch,
      state,
    });
  }
}
