// The pure decisions of the node's role manager (lease-role.ts): when to try to take the lease, when to
// ask the primary to hand it over (`lease.promote`), and how long to wait. No I/O, no clock of its own.

import type { PrimaryInfo } from "../lease/index.js";

export type NodeRoleName = "primary" | "replica";

/** The longest random pause before an acquire (ms): candidates that saw the lease free spread out. */
export const ACQUIRE_JITTER_MAX_MS = 50;

export interface AcquireContext {
  readonly candidate: boolean;
  readonly role: NodeRoleName;
  /** The holder as last seen (watch or refusal); undefined while not known yet. */
  readonly holder: PrimaryInfo | null | undefined;
  readonly selfNodeId: string;
  readonly nowMs: number;
  /** No acquire before this (set after this node stopped being primary: `lease.demote-delay`). */
  readonly quietUntilMs: number;
  /** The primary sent this node a HANDOFF frame: acquire at once, whatever else holds. */
  readonly handoffToMe: boolean;
  /** When the last attempt was made (ms); attempts also happen this often as a safety net. */
  readonly lastAttemptMs: number;
  readonly periodicMs: number;
}

/** True when a candidate replica should call `acquire()` now. */
export function shouldTryAcquire(ctx: AcquireContext): boolean {
  if (!ctx.candidate || ctx.role !== "replica") return false;
  if (ctx.handoffToMe) return true;
  if (ctx.nowMs < ctx.quietUntilMs) return false;
  if (ctx.holder === null || ctx.holder === undefined) return true;
  // Someone holds it: acquire would be refused; still try now and then in case the watch is stale.
  return ctx.nowMs - ctx.lastAttemptMs >= ctx.periodicMs;
}

export interface HandoffRequestContext {
  readonly promote: boolean;
  readonly candidate: boolean;
  readonly role: NodeRoleName;
  readonly synced: boolean;
  readonly holder: PrimaryInfo | null | undefined;
  readonly selfNodeId: string;
  /** The epoch of the holder this node already asked (0 when none). */
  readonly askedEpoch: bigint;
}

/**
 * `lease.promote`: a synced candidate replica asks the current primary (once per primary epoch) to hand
 * the lease over. True when it should ask now.
 */
export function shouldRequestHandoff(ctx: HandoffRequestContext): boolean {
  if (!ctx.promote || !ctx.candidate || ctx.role !== "replica" || !ctx.synced) return false;
  if (ctx.holder === null || ctx.holder === undefined) return false;
  if (ctx.holder.nodeId === ctx.selfNodeId) return false;
  return ctx.holder.epoch !== ctx.askedEpoch;
}

/**
 * True when `holder` is this node, by node id. The static leaser records no node id (and a static
 * replica's configured URL is the primary's): never this node then.
 */
export function holderIsSelf(holder: PrimaryInfo, self: { nodeId: string }): boolean {
  return holder.nodeId !== undefined && holder.nodeId === self.nodeId;
}

/** A pause in [0, ACQUIRE_JITTER_MAX_MS) from `random` in [0, 1). */
export function acquireJitterMs(random: number): number {
  return Math.floor(Math.min(Math.max(random, 0), 0.999999) * ACQUIRE_JITTER_MAX_MS);
}
