// Lease metrics: how often this node became primary, lost the lease involuntarily, or failed a renewal
// (a lost lease follows only when renewals keep failing until the deadline), the fencing epoch of
// the lease this node holds or follows, and what its handoffs' pace steps cost its writers
// (src/node/handoff-pacer.ts).

import type { Counter } from "./counter.js";
import type { Gauge } from "./gauge.js";
import type { Histogram } from "./histogram.js";
import type { Registry } from "./registry.js";

export class LeaseMetrics {
  readonly #acquired: Counter;
  readonly #lost: Counter;
  readonly #renewFailures: Counter;
  readonly #epoch: Gauge;
  readonly #paceSeconds: Histogram;
  readonly #pacedCommits: Counter;

  constructor(registry: Registry) {
    this.#acquired = registry.counter({
      name: "litefs_lease_acquired_total",
      help: "Times this node acquired the primary lease.",
    });
    this.#lost = registry.counter({
      name: "litefs_lease_lost_total",
      help: "Times this node lost the primary lease without giving it up.",
    });
    this.#renewFailures = registry.counter({
      name: "litefs_lease_renew_failures_total",
      help: "Lease renewals that failed (the lease is lost only when they fail until its deadline).",
    });
    this.#epoch = registry.gauge({
      name: "litefs_lease_epoch",
      help: "Fencing epoch of the lease this node holds or follows (0 before one is known).",
    });
    this.#paceSeconds = registry.histogram({
      name: "litefs_handoff_pace_seconds",
      help: "Seconds each handoff's pace step took on this primary (commits paced until the target was close).",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
    });
    this.#pacedCommits = registry.counter({
      name: "litefs_handoff_paced_commits_total",
      help: "Local commits whose answer waited for a handoff's target to apply what came before them.",
    });
  }

  /** A handoff's pace step ended after `seconds`, having held `commits` commits' answers. */
  paced(seconds: number, commits: number): void {
    this.#paceSeconds.observe(seconds);
    this.#pacedCommits.inc(commits);
  }

  acquired(epoch: bigint): void {
    this.#acquired.inc();
    this.setEpoch(epoch);
  }

  lost(): void {
    this.#lost.inc();
  }

  renewFailed(): void {
    this.#renewFailures.inc();
  }

  /** The epoch of the primary this node follows (exact below 2^53, as every gauge value). */
  setEpoch(epoch: bigint): void {
    this.#epoch.set(Number(epoch));
  }
}
