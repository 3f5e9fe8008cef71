// The primary's checks on `POST /stream` before it sends a byte of the stream (docs/protocol.md,
// "Request" and "Errors"), in this order:
//   1. the bearer token, when one is configured — before the body is even read;
//   2. the `Litefs-Id` / `Litefs-Cluster-Id` headers agree with the body;
//   3. the replica is not this node, and belongs to this node's cluster (or has no cluster id yet);
//   4. fencing: a replica that has seen a higher lease epoch than this primary holds is talking to a
//      stale primary, which must not feed it (it would roll the replica back onto a dead history).
// Pure; the HTTP server maps each error's code to a status with `httpStatusOf`.

import crypto from "node:crypto";

import { StreamError } from "./stream-error.js";
import {
  CLUSTER_ID_HEADER,
  formatNodeId,
  NODE_ID_HEADER,
  parseNodeId,
  type StreamRequest,
} from "./stream-request.js";

export interface PrimaryIdentity {
  readonly nodeId: bigint;
  readonly clusterId: string;
  /** The lease epoch this primary holds. */
  readonly epoch: bigint;
}

/** The header values of the request (undefined when absent). */
export interface StreamRequestHeaders {
  readonly nodeId: string | undefined;
  readonly clusterId: string | undefined;
}

/**
 * Checks `Authorization: Bearer <token>` against the configured token (null: no authentication).
 * Throws ESTREAMAUTH. The comparison takes the same time whatever the guess (both sides are hashed to
 * equal lengths first), so the token cannot be found byte by byte from response times.
 */
export function checkBearerToken(authorization: string | undefined, token: string | null): void {
  if (token === null) return;
  const match = authorization === undefined ? null : /^Bearer (\S+)$/i.exec(authorization.trim());
  if (match === null) {
    throw new StreamError("ESTREAMAUTH", "missing or malformed Authorization: Bearer header", {
      rule: "auth",
    });
  }
  const given = crypto.createHash("sha256").update(match[1]).digest();
  const wanted = crypto.createHash("sha256").update(token).digest();
  if (!crypto.timingSafeEqual(given, wanted)) {
    throw new StreamError("ESTREAMAUTH", "wrong bearer token", { rule: "auth" });
  }
}

/** Throws ESTREAMNODE / ESTREAMCLUSTER / ESTREAMEPOCH when this primary must not stream to the replica. */
export function admitStreamRequest(
  headers: StreamRequestHeaders,
  request: StreamRequest,
  self: PrimaryIdentity,
): void {
  const headerNodeId = parseNodeId(headers.nodeId);
  if (headerNodeId !== request.nodeId) {
    throw new StreamError(
      "ESTREAMNODE",
      `${NODE_ID_HEADER} ${formatNodeId(headerNodeId)} differs from the body's node id ${formatNodeId(request.nodeId)}`,
      { rule: "node id" },
    );
  }
  if (request.nodeId === self.nodeId) {
    throw new StreamError(
      "ESTREAMNODE",
      `replica node id ${formatNodeId(request.nodeId)} is this node's own`,
      {
        rule: "self",
      },
    );
  }
  const headerCluster = headers.clusterId ?? "";
  if (headerCluster !== request.clusterId) {
    throw new StreamError(
      "ESTREAMCLUSTER",
      `${CLUSTER_ID_HEADER} ${JSON.stringify(headerCluster)} differs from the body's ${JSON.stringify(request.clusterId)}`,
      { rule: "cluster id" },
    );
  }
  if (request.clusterId !== "" && self.clusterId !== "" && request.clusterId !== self.clusterId) {
    throw new StreamError(
      "ESTREAMCLUSTER",
      `replica belongs to cluster ${request.clusterId}, this primary to ${self.clusterId}: refusing to mix clusters`,
      { rule: "cluster id" },
    );
  }
  if (request.epochSeen > self.epoch) {
    throw new StreamError(
      "ESTREAMEPOCH",
      `replica has seen lease epoch ${request.epochSeen}, this primary holds ${self.epoch}: it is stale and must not stream`,
      { rule: "epoch fencing" },
    );
  }
}

/** The HTTP status of a refusal, sent with the body `{"error": message, "code": code}`. */
export function httpStatusOf(error: StreamError): number {
  switch (error.code) {
    case "ESTREAMAUTH":
      return 401;
    case "ESTREAMCLUSTER":
    case "ESTREAMEPOCH":
      return 409;
    case "ESTREAMREQUEST":
      return error.rule === "body limit" ? 413 : 400;
    case "ESTREAMNODE":
      return 400;
    default:
      return 500;
  }
}
