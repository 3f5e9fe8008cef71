// The keys one cluster's lease uses in etcd, under a prefix P, and the operations on them.
//
//   P/primary    {"hostname","advertise-url","node-id"}, attached to the holder's etcd lease, so etcd
//                deletes it when that lease expires. Created only by put-if-absent (create_revision = 0),
//                so its create_revision — the etcd revision of the acquiring transaction — is the epoch:
//                etcd revisions only grow, hence every new holder's epoch is larger than all before.
//   P/last       {"node-id","hostname","epoch","state"}: what became of the latest holder — "holding"
//                (written with P/primary; if P/primary is gone and this still says holding, the holder
//                lost the lease by expiry, and acquirers wait the lock delay), "released", "handed-off".
//   P/handoff    {"to","from-epoch"}, attached to the *old* holder's etcd lease: reserves the lease for
//                one node until that node acquires (deleting it) or the old lease lapses (≤ TTL).
//   P/clusterid  the cluster id, plain text, set once by put-if-absent.
import { LeaseError } from "./lease-error.js";
import { asRecord, fromBase64, int64Field, toBase64, type EtcdKeyValue } from "./etcd-gateway-client.js";

export class EtcdLeaseKeys {
  readonly prefix: string;
  readonly primary: string;
  readonly last: string;
  readonly handoff: string;
  readonly clusterId: string;

  constructor(prefix: string) {
    const trimmed = prefix.replace(/\/+$/, "");
    if (trimmed === "")
      throw new LeaseError("ELEASECONFIG", "etcd: `key` (the lease key prefix) is required");
    this.prefix = trimmed;
    this.primary = `${trimmed}/primary`;
    this.last = `${trimmed}/last`;
    this.handoff = `${trimmed}/handoff`;
    this.clusterId = `${trimmed}/clusterid`;
  }

  /** Range request body covering every key under `P/` (one consistent read of all of them). */
  rangeAll(): { key: string; range_end: string } {
    // "P/" up to (not including) "P0": '0' is the character after '/'.
    return { key: toBase64(`${this.prefix}/`), range_end: toBase64(`${this.prefix}0`) };
  }
}

export type LastHolderState = "holding" | "released" | "handed-off";

export interface LastHolderRecord {
  nodeId: string;
  hostname: string;
  state: LastHolderState;
  /** The holder's epoch; absent in "holding" records, whose own mod revision is the epoch. */
  epoch?: bigint;
}

export function encodeLastHolder(record: LastHolderRecord): string {
  return JSON.stringify({
    "node-id": record.nodeId,
    hostname: record.hostname,
    state: record.state,
    ...(record.epoch === undefined ? {} : { epoch: record.epoch.toString() }),
  });
}

export function decodeLastHolder(text: string, where: string): LastHolderRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new LeaseError("ELEASEPROTOCOL", "last-holder record is not JSON", { where, cause: error });
  }
  const record = asRecord(value);
  const state = record["state"];
  const epoch = record["epoch"];
  if (
    typeof record["node-id"] !== "string" ||
    typeof record["hostname"] !== "string" ||
    (epoch !== undefined && (typeof epoch !== "string" || !/^\d+$/.test(epoch))) ||
    (state !== "holding" && state !== "released" && state !== "handed-off")
  ) {
    throw new LeaseError("ELEASEPROTOCOL", `malformed last-holder record: ${text.slice(0, 200)}`, { where });
  }
  return {
    nodeId: record["node-id"],
    hostname: record["hostname"],
    state,
    ...(typeof epoch === "string" ? { epoch: BigInt(epoch) } : {}),
  };
}

/** A stored key as the leaser uses it: decoded text and revisions as bigints. */
export interface StoredKey {
  value: string;
  createRevision: bigint;
  modRevision: bigint;
  /** The etcd lease id it is attached to ("0" when none). */
  lease: string;
}

export function storedKey(kv: EtcdKeyValue, where: string): StoredKey {
  return {
    value: fromBase64(kv.value, where),
    createRevision: int64Field(kv.create_revision, where),
    modRevision: int64Field(kv.mod_revision, where),
    lease: int64Field(kv.lease, where).toString(),
  };
}

/** The key-values of a range answer (or of a txn's range response) by decoded key name. */
export function keyValuesByName(rangeResponse: unknown, where: string): Map<string, StoredKey> {
  const kvs = asRecord(rangeResponse)["kvs"];
  const byName = new Map<string, StoredKey>();
  if (kvs === undefined) return byName;
  if (!Array.isArray(kvs))
    throw new LeaseError("ELEASEPROTOCOL", "range answer: `kvs` is not a list", { where });
  for (const kv of kvs as EtcdKeyValue[]) {
    if (typeof kv?.key !== "string") {
      throw new LeaseError("ELEASEPROTOCOL", "range answer: a key-value has no key", { where });
    }
    byName.set(fromBase64(kv.key, where), storedKey(kv, where));
  }
  return byName;
}

// Transaction pieces, in the gateway's JSON shape.
export const txn = {
  createRevisionIs(key: string, revision: bigint) {
    return { key: toBase64(key), target: "CREATE", result: "EQUAL", create_revision: revision.toString() };
  },
  modRevisionIs(key: string, revision: bigint) {
    return { key: toBase64(key), target: "MOD", result: "EQUAL", mod_revision: revision.toString() };
  },
  valueIs(key: string, value: string) {
    return { key: toBase64(key), target: "VALUE", result: "EQUAL", value: toBase64(value) };
  },
  leaseIs(key: string, lease: string) {
    return { key: toBase64(key), target: "LEASE", result: "EQUAL", lease };
  },
  put(key: string, value: string, lease?: string) {
    return {
      request_put: { key: toBase64(key), value: toBase64(value), ...(lease === undefined ? {} : { lease }) },
    };
  },
  remove(key: string) {
    return { request_delete_range: { key: toBase64(key) } };
  },
  range(key: string) {
    return { request_range: { key: toBase64(key) } };
  },
};

/** A txn answer: whether the compares held, its revision, and the range results by op position. */
export interface TxnOutcome {
  succeeded: boolean;
  revision: bigint;
  /** For each op of the branch that ran: its range result by key name (empty for non-range ops). */
  ranges: Map<string, StoredKey>[];
}

export function txnOutcome(answer: unknown, where: string): TxnOutcome {
  const record = asRecord(answer);
  const revision = int64Field(asRecord(record["header"])["revision"], where);
  const responses = record["responses"] ?? [];
  if (!Array.isArray(responses))
    throw new LeaseError("ELEASEPROTOCOL", "txn answer: bad `responses`", { where });
  const ranges = (responses as unknown[]).map((response) => {
    const range = asRecord(response)["response_range"];
    return range === undefined ? new Map<string, StoredKey>() : keyValuesByName(range, where);
  });
  return { succeeded: record["succeeded"] === true, revision, ranges };
}
