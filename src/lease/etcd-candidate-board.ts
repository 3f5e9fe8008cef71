// The candidate board (candidate-board.ts) on etcd: each candidate puts `P/candidates/<node id>` =
// {"node-id","hostname","position"} attached to an etcd lease of its own (TTL = the lease TTL), kept
// alive every TTL/3 while something is published. A candidate that dies, freezes or loses etcd stops
// keeping it alive and etcd deletes its record within about one TTL, so a dead candidate can hold the
// others back at most that long. Withdrawing revokes the etcd lease, which deletes the record at once.
//
// Writes are serialised: one request in flight, always writing the latest wanted value; a failure is
// retried every `retryMs` (and reported through onBackgroundError), never thrown at the caller. The
// records sit under the lease prefix P, beside P/primary; they are not attached to the primary's etcd
// lease and never touch the lease keys.
import { asRecord, EtcdGatewayClient, int64Field, toBase64 } from "./etcd-gateway-client.js";
import { EtcdLeaseKeys, keyValuesByName, txn } from "./etcd-lease-keys.js";
import { type CandidateBoard, type CandidateRecord, parseJsonObject } from "./candidate-board.js";
import { LeaseError } from "./lease-error.js";
import { defaultRequestTimeoutMs } from "./lease-timing.js";

export interface EtcdCandidateBoardOptions {
  /** Client URLs of the etcd members; each is tried in turn. */
  endpoints: readonly string[];
  /** The lease's key prefix P (lease.etcd.key); records go under P/candidates/. */
  key: string;
  nodeId: string;
  hostname: string;
  /** TTL of the records' etcd lease in ms, whole seconds ≥ 1 s (the node uses lease.ttl). */
  ttlMs: number;
  /** Limit for one request to one endpoint (ms). Default: defaultRequestTimeoutMs(ttl). */
  requestTimeoutMs?: number;
  /** Pause before a failed write or keep-alive is retried (ms). Default 250. */
  retryMs?: number;
  /** Failures of the background writes (each is retried). Default: ignored. */
  onBackgroundError?: (error: Error) => void;
}

/** etcd's gRPC code NotFound: the etcd lease does not exist (expired or revoked). */
const GRPC_NOT_FOUND = 5;

export class EtcdCandidateBoard implements CandidateBoard {
  /** This node's record: P/candidates/<node id>. */
  readonly key: string;
  readonly #prefix: string;
  readonly #nodeId: string;
  readonly #hostname: string;
  readonly #ttlMs: number;
  readonly #retryMs: number;
  readonly #client: EtcdGatewayClient;
  readonly #onBackgroundError: (error: Error) => void;
  readonly #closing = new AbortController();
  /** What the caller wants published (null: nothing). */
  #wanted: string | null = null;
  /** What etcd holds for us as far as we know (null: no record). */
  #written: string | null = null;
  #leaseId: string | null = null;
  /** performance.now() when the last successful keep-alive (or grant) was sent. */
  #keptAliveAt = 0;
  #inFlight: Promise<void> | null = null;
  #failed = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: EtcdCandidateBoardOptions) {
    if (!/^[0-9a-f]{16}$/.test(options.nodeId)) {
      throw new LeaseError(
        "ELEASECONFIG",
        `candidate board: node id must be 16 hex digits, got ${options.nodeId}`,
      );
    }
    if (!Number.isInteger(options.ttlMs / 1000) || options.ttlMs < 1000) {
      throw new LeaseError(
        "ELEASECONFIG",
        `candidate board: TTL must be whole seconds ≥ 1 s, got ${options.ttlMs}`,
      );
    }
    const keys = new EtcdLeaseKeys(options.key);
    this.#prefix = `${keys.prefix}/candidates/`;
    this.key = `${this.#prefix}${options.nodeId}`;
    this.#nodeId = options.nodeId;
    this.#hostname = options.hostname;
    this.#ttlMs = options.ttlMs;
    this.#retryMs = options.retryMs ?? 250;
    this.#onBackgroundError = options.onBackgroundError ?? (() => undefined);
    this.#client = new EtcdGatewayClient({
      endpoints: options.endpoints,
      requestTimeoutMs: options.requestTimeoutMs ?? defaultRequestTimeoutMs(options.ttlMs),
    });
  }

  publish(position: string | null): void {
    if (this.#closing.signal.aborted) return;
    this.#wanted = position;
    if (this.#inFlight === null) this.#start();
  }

  async others(signal?: AbortSignal): Promise<CandidateRecord[]> {
    this.#assertOpen();
    const stop =
      signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
    // "P/candidates/" up to (not including) "P/candidates0": '0' is the character after '/'.
    const range = {
      key: toBase64(this.#prefix),
      range_end: toBase64(`${this.#prefix.slice(0, -1)}0`),
    };
    const answer = await this.#client.call("/v3/kv/range", range, stop);
    const records: CandidateRecord[] = [];
    for (const [name, stored] of keyValuesByName(answer, this.#prefix)) {
      const record = decodeCandidateRecord(stored.value);
      if (record === null || `${this.#prefix}${record.nodeId}` !== name) {
        this.#onBackgroundError(
          new LeaseError("ELEASEPROTOCOL", `malformed candidate record: ${stored.value.slice(0, 200)}`, {
            where: name,
          }),
        );
        continue;
      }
      if (record.nodeId !== this.#nodeId) records.push(record);
    }
    return records;
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new LeaseError("ELEASECLOSED", "candidate board closed", { where: this.key }));
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    const leaseId = this.#leaseId;
    this.#leaseId = null;
    this.#written = null;
    if (leaseId !== null) await this.#revoke(leaseId).catch((error: unknown) => this.#report(error));
  }

  /** Runs one sync (the only one in flight), then schedules the next. */
  #start(): void {
    this.#inFlight = this.#sync().finally(() => {
      this.#inFlight = null;
      this.#schedule();
    });
  }

  async #sync(): Promise<void> {
    const signal = this.#closing.signal;
    try {
      while (!signal.aborted && this.#wanted !== this.#written) await this.#write(this.#wanted, signal);
      if (!signal.aborted && this.#written !== null && this.#keepAliveDueInMs() <= 0) {
        await this.#keepAlive(signal);
      }
      this.#failed = false;
    } catch (error) {
      if (signal.aborted) return;
      this.#failed = true;
      this.#report(error);
    }
  }

  /** The next sync: at once for a pending change, at the keep-alive time, later after a failure. */
  #schedule(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closing.signal.aborted) return;
    let delayMs: number;
    if (this.#wanted !== this.#written) delayMs = 0;
    else if (this.#written !== null) delayMs = this.#keepAliveDueInMs();
    else return; // nothing published, nothing to keep alive
    if (this.#failed) delayMs = Math.max(delayMs, this.#retryMs);
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        if (this.#inFlight === null) this.#start();
      },
      Math.max(0, delayMs),
    );
    this.#timer.unref();
  }

  #keepAliveDueInMs(): number {
    return this.#keptAliveAt + this.#ttlMs / 3 - performance.now();
  }

  async #write(value: string | null, signal: AbortSignal): Promise<void> {
    if (value === null) {
      const leaseId = this.#leaseId;
      if (leaseId !== null) await this.#revoke(leaseId, signal);
      this.#leaseId = null;
      this.#written = null;
      return;
    }
    if (this.#leaseId === null) {
      const sentAt = performance.now();
      const grant = asRecord(
        await this.#client.call("/v3/lease/grant", { TTL: String(this.#ttlMs / 1000) }, signal),
      );
      const id = grant["ID"];
      if (typeof id !== "string" || !/^\d+$/.test(id) || int64Field(grant["TTL"], this.key) <= 0n) {
        throw new LeaseError("ELEASEPROTOCOL", `lease grant answered ${JSON.stringify(grant)}`, {
          where: this.key,
        });
      }
      this.#leaseId = id;
      this.#keptAliveAt = sentAt;
    }
    const record = encodeCandidateRecord({ nodeId: this.#nodeId, hostname: this.#hostname, position: value });
    try {
      await this.#client.call("/v3/kv/put", txn.put(this.key, record, this.#leaseId).request_put, signal);
    } catch (error) {
      // Our etcd lease expired (e.g. the process was frozen longer than the TTL): grant a new one.
      if ((error as { grpcCode?: number }).grpcCode === GRPC_NOT_FOUND) this.#leaseId = null;
      throw error;
    }
    this.#written = value;
  }

  async #keepAlive(signal: AbortSignal): Promise<void> {
    const leaseId = this.#leaseId;
    if (leaseId === null) return;
    const sentAt = performance.now();
    const answer = asRecord(await this.#client.call("/v3/lease/keepalive", { ID: leaseId }, signal));
    const ttl = int64Field(asRecord(answer["result"])["TTL"], this.key);
    if (ttl <= 0n) {
      // Expired: etcd deleted the record with it. Publish it again (at once) under a new lease.
      this.#leaseId = null;
      this.#written = null;
      return;
    }
    this.#keptAliveAt = sentAt;
  }

  async #revoke(leaseId: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#client.call("/v3/lease/revoke", { ID: leaseId }, signal);
    } catch (error) {
      if ((error as { grpcCode?: number }).grpcCode === GRPC_NOT_FOUND) return; // already gone
      throw error;
    }
  }

  #report(error: unknown): void {
    this.#onBackgroundError(error instanceof Error ? error : new Error(String(error)));
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) {
      throw new LeaseError("ELEASECLOSED", "candidate board is closed", { where: this.key });
    }
  }
}

export function encodeCandidateRecord(record: CandidateRecord): string {
  return JSON.stringify({ "node-id": record.nodeId, hostname: record.hostname, position: record.position });
}

/** The record in `text`, or null when it is not one. */
export function decodeCandidateRecord(text: string): CandidateRecord | null {
  const record = parseJsonObject(text);
  if (record === null) return null;
  const nodeId = record["node-id"];
  const hostname = record["hostname"];
  const position = record["position"];
  if (typeof nodeId !== "string" || !/^[0-9a-f]{16}$/.test(nodeId)) return null;
  if (typeof hostname !== "string" || typeof position !== "string") return null;
  return { nodeId, hostname, position };
}
