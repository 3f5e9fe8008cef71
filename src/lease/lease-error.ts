// Errors of the lease layer. Every failure has a stable `code` that callers match on (never the message),
// and says which coordinator, key and node it concerns. One class per kind the node reacts to
// differently: "someone else is primary" (follow them), "lost" (turn read-only now), "unavailable"
// (retry later), "config" (refuse to start).
import type { PrimaryInfo } from "./leaser.js";

export type LeaseErrorCode =
  | "ELEASEEXISTS" // another node holds the lease; `primary` says who
  | "ELEASEHANDOFF" // the lease is reserved for another node by a handoff in progress
  | "ELEASEDELAY" // the previous holder lost the lease; the coordinator's lock delay is still running
  | "ELEASERANKED" // the lease is free, but the acquire's vacancyCheck left it to a more up-to-date candidate
  | "ELEASELOST" // this node no longer holds the lease (renewal failed until the deadline, or revoked)
  | "ELEASEUNAVAILABLE" // no coordinator endpoint answered in time
  | "ELEASEPROTOCOL" // a coordinator answered something this client does not understand or expect
  | "ELEASESTATE" // an operation on a lease that is not held any more (renew after release…)
  | "ELEASENOTSUPPORTED" // the lease type cannot do this (handoff of a static lease)
  | "ELEASECLOSED" // the leaser was closed
  | "ELEASECONFIG"; // bad options (TTL not whole seconds for etcd, no endpoints…)

export interface LeaseErrorDetails {
  /** What the error is about, e.g. "etcd key /litefs/c1/primary" or "consul session 3f…". */
  where?: string;
  cause?: unknown;
}

export class LeaseError extends Error {
  override readonly name: string = "LeaseError";
  readonly code: LeaseErrorCode;
  readonly where: string | undefined;

  constructor(code: LeaseErrorCode, detail: string, details: LeaseErrorDetails = {}) {
    super(
      `${details.where === undefined ? "" : details.where + ": "}${detail} (${code})`,
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.code = code;
    this.where = details.where;
  }
}

/** Another node holds the lease. `primary` is the holder as the coordinator records it. */
export class LeaseExistsError extends LeaseError {
  override readonly name = "LeaseExistsError";
  readonly primary: PrimaryInfo;

  constructor(primary: PrimaryInfo, details: LeaseErrorDetails = {}) {
    super(
      "ELEASEEXISTS",
      `lease is held by ${primary.hostname} (${primary.advertiseURL}) at epoch ${primary.epoch}; follow it or retry later`,
      details,
    );
    this.primary = primary;
  }
}

/** A holder handed the lease to `toNodeId`; only that node may take it until the reservation expires. */
export class LeaseHandoffPendingError extends LeaseError {
  override readonly name = "LeaseHandoffPendingError";
  readonly toNodeId: string;

  constructor(toNodeId: string, details: LeaseErrorDetails = {}) {
    super("ELEASEHANDOFF", `lease is being handed off to node ${toNodeId}; retry later`, details);
    this.toNodeId = toNodeId;
  }
}

/** The lease is not held any more. `reason` is a short stable word for logs and metrics. */
export class LeaseLostError extends LeaseError {
  override readonly name = "LeaseLostError";
  readonly reason: LeaseLostReason;

  constructor(reason: LeaseLostReason, detail: string, details: LeaseErrorDetails = {}) {
    super("ELEASELOST", `lease lost (${reason}): ${detail}`, details);
    this.reason = reason;
  }
}

export type LeaseLostReason =
  | "deadline" // no renewal succeeded before the local deadline
  | "expired" // the coordinator says the lease/session no longer exists
  | "taken" // the lease key is gone or belongs to another holder
  | "handoff-failed"; // a handoff could not be confirmed, so this node stepped down

/** True when `error` is a LeaseError with `code`. */
export function isLeaseError(error: unknown, code?: LeaseErrorCode): error is LeaseError {
  return error instanceof LeaseError && (code === undefined || error.code === code);
}

/** `thrown` as an Error (a non-Error value wrapped), for callbacks and rejections that take one. */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}
