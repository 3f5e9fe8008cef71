// The Consul half of a held lease: a session (TTL, lock delay, behaviour "delete") that holds the lock
// on the lease key. Renew = session renew + "does the key still name my session"; release = unlock
// then destroy the session (a session destroyed while holding no lock sets no lock delay); handoff =
// lock the marker key `<key>/handoff` with our session, then unlock the lease key and stop renewing.
//
// NOT run against a real Consul server (see consul-http-client.ts and docs/lease.md).
import { type ConsulHttpClient, parseGoDurationMs, parseJson } from "./consul-http-client.js";
import { encodeHandoffMarker } from "./handoff-marker.js";
import type { LeaseBackend } from "./kept-lease.js";
import { LeaseError, LeaseLostError } from "./lease-error.js";
import type { RenewalConfirmation } from "./lease-keeper.js";

export interface ConsulLeaseBackendOptions {
  client: ConsulHttpClient;
  key: string;
  handoffKey: string;
  sessionId: string;
  epoch: bigint;
  /** The value stored under the key while held (rewritten unchanged when unlocking). */
  record: string;
}

export class ConsulLeaseBackend implements LeaseBackend {
  readonly where: string;
  readonly #client: ConsulHttpClient;
  readonly #key: string;
  readonly #handoffKey: string;
  readonly #sessionId: string;
  readonly #epoch: bigint;
  readonly #record: string;

  constructor(options: ConsulLeaseBackendOptions) {
    this.#client = options.client;
    this.#key = options.key;
    this.#handoffKey = options.handoffKey;
    this.#sessionId = options.sessionId;
    this.#epoch = options.epoch;
    this.#record = options.record;
    this.where = `consul session ${options.sessionId} on ${options.key} (epoch ${options.epoch})`;
  }

  async renew(signal: AbortSignal): Promise<RenewalConfirmation> {
    const answer = await this.#client.request("PUT", `/v1/session/renew/${this.#sessionId}`, { signal });
    if (answer.status === 404) {
      throw new LeaseLostError("expired", `Consul no longer knows the session: ${answer.text.trim()}`, {
        where: this.where,
      });
    }
    if (answer.status !== 200) {
      throw new LeaseError(
        "ELEASEPROTOCOL",
        `session renew: HTTP ${answer.status} ${answer.text.slice(0, 200)}`,
        {
          where: this.where,
        },
      );
    }
    const sessions = parseJson(answer.text, this.where);
    const ttl = Array.isArray(sessions) ? (sessions[0] as { TTL?: unknown } | undefined)?.TTL : undefined;
    if (typeof ttl !== "string") {
      throw new LeaseError("ELEASEPROTOCOL", `session renew answered ${answer.text.slice(0, 200)}`, {
        where: this.where,
      });
    }
    // The session lives; the lock could still have been released or the key deleted by someone.
    const { entry } = await this.#client.getKey(this.#key, { signal });
    if (entry?.Session !== this.#sessionId) {
      throw new LeaseLostError(
        "taken",
        entry === undefined
          ? "the lease key is gone"
          : `the lease key is locked by session ${entry.Session ?? "(none)"}`,
        { where: this.where },
      );
    }
    return { ttlMs: parseGoDurationMs(ttl, this.where) };
  }

  async release(): Promise<void> {
    await this.#client.putKey(this.#key, this.#record, { release: this.#sessionId });
    await this.#destroySession();
  }

  async handoff(toNodeId: string): Promise<void> {
    const marker = encodeHandoffMarker({ toNodeId, fromEpoch: this.#epoch });
    // The marker is locked by our session: Consul deletes it when the session lapses (behaviour
    // "delete"), so an unclaimed reservation ends by itself.
    if (!(await this.#client.putKey(this.#handoffKey, marker, { acquire: this.#sessionId }))) {
      throw new LeaseError("ELEASEHANDOFF", "could not lock the handoff marker (another handoff pending?)", {
        where: this.where,
      });
    }
    if (!(await this.#client.putKey(this.#key, this.#record, { release: this.#sessionId }))) {
      throw new LeaseLostError("taken", "the lease key was no longer locked by our session at handoff", {
        where: this.where,
      });
    }
  }

  async abandon(): Promise<void> {
    await this.#destroySession();
  }

  async #destroySession(): Promise<void> {
    const answer = await this.#client.request("PUT", `/v1/session/destroy/${this.#sessionId}`);
    if (answer.status !== 200) {
      throw new LeaseError(
        "ELEASEPROTOCOL",
        `session destroy: HTTP ${answer.status} ${answer.text.slice(0, 200)}`,
        {
          where: this.where,
        },
      );
    }
  }
}
