// The marker a holder leaves when it hands the lease to another node: `{"to": nodeId, "from-epoch"}`.
// It lives beside the lease key, tied to the old holder's etcd lease or Consul session, so it vanishes
// by itself (≤ TTL) if the target never comes; while it exists only the target may acquire.
import { LeaseError } from "./lease-error.js";

export interface HandoffMarker {
  /** The node the lease is reserved for. */
  toNodeId: string;
  /** Epoch of the holder that handed off. */
  fromEpoch: bigint;
}

export function encodeHandoffMarker(marker: HandoffMarker): string {
  return JSON.stringify({ to: marker.toNodeId, "from-epoch": marker.fromEpoch.toString() });
}

export function decodeHandoffMarker(text: string, where: string): HandoffMarker {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new LeaseError("ELEASEPROTOCOL", "handoff marker is not JSON", { where, cause: error });
  }
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const to = record["to"];
  const fromEpoch = record["from-epoch"];
  if (typeof to !== "string" || to === "" || typeof fromEpoch !== "string" || !/^\d+$/.test(fromEpoch)) {
    throw new LeaseError("ELEASEPROTOCOL", `malformed handoff marker: ${text.slice(0, 200)}`, { where });
  }
  return { toNodeId: to, fromEpoch: BigInt(fromEpoch) };
}
