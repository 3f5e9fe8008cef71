// HALT lock metrics (docs/node-api.md "HALT lock"), registered on the node's registry:
//   litefs_halt_locks_held          gauge, read at each scrape: halts granted to replicas (primary) plus
//                                   halts held from the primary (replica)
//   litefs_halt_events_total{event} acquired | released | expired (primary: granted halts),
//                                   applied (primary: transactions from holders), confirmed | refused
//                                   (replica: its commits the primary applied or refused)

import type { Registry } from "../metrics/registry.js";
import type { PrimaryHaltChange } from "./halt-primary.js";
import type { ReplicaHaltChange } from "./halt-replica.js";

export type HaltChange = PrimaryHaltChange | ReplicaHaltChange;

/** Registers the metrics; returns what to call on every change. */
export function registerHaltMetrics(
  registry: Registry,
  heldCount: () => number,
): (change: HaltChange) => void {
  registry.gauge({
    name: "litefs_halt_locks_held",
    help: "HALT locks held now: granted to replicas on a primary, held from the primary on a replica",
    read: heldCount,
  });
  const events = registry.counterVec({
    name: "litefs_halt_events_total",
    help: "HALT lock events: acquired, released, expired, applied (primary); confirmed, refused (replica)",
    labelNames: ["event"],
  });
  return (change) => events.inc({ event: change.kind });
}
