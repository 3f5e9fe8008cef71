// The value a holder stores under the lease key: LiteFS's JSON `{"hostname","advertise-url"}` plus our
// `"node-id"` (needed to address handoffs). Values written by LiteFS itself (no node id) still decode.
import { LeaseError } from "./lease-error.js";
import type { NodeIdentity, PrimaryInfo } from "./leaser.js";

const RECORD_BYTES_MAX = 64 * 1024;

export function encodePrimaryRecord(identity: NodeIdentity): string {
  return JSON.stringify({
    hostname: identity.hostname,
    "advertise-url": identity.advertiseURL,
    "node-id": identity.nodeId,
  });
}

/** Decodes a stored record; ELEASEPROTOCOL when it is not one. `where` names the key in the error. */
export function decodePrimaryRecord(text: string, epoch: bigint, where: string): PrimaryInfo {
  if (text.length > RECORD_BYTES_MAX) {
    throw new LeaseError("ELEASEPROTOCOL", `primary record is ${text.length} bytes, over the limit`, {
      where,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new LeaseError("ELEASEPROTOCOL", "primary record is not JSON", { where, cause: error });
  }
  if (typeof value !== "object" || value === null) {
    throw new LeaseError("ELEASEPROTOCOL", "primary record is not a JSON object", { where });
  }
  const record = value as Record<string, unknown>;
  const hostname = record["hostname"];
  const advertiseURL = record["advertise-url"];
  const nodeId = record["node-id"];
  if (typeof hostname !== "string" || typeof advertiseURL !== "string") {
    throw new LeaseError("ELEASEPROTOCOL", `primary record lacks "hostname"/"advertise-url": ${text}`, {
      where,
    });
  }
  if (nodeId !== undefined && typeof nodeId !== "string") {
    throw new LeaseError("ELEASEPROTOCOL", `primary record has a non-string "node-id": ${text}`, { where });
  }
  return { hostname, advertiseURL, nodeId, epoch };
}

/** True when two answers name the same holder at the same epoch (for deduplicating watch events). */
export function samePrimary(a: PrimaryInfo | null, b: PrimaryInfo | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.epoch === b.epoch &&
    a.hostname === b.hostname &&
    a.advertiseURL === b.advertiseURL &&
    a.nodeId === b.nodeId
  );
}
