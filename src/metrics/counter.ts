// Counters: values that only go up (events, bytes), reset only when the process restarts. A CounterVec
// holds one Counter per label set; hot paths keep the Counter that `labels()` returns instead of
// looking it up on every increment.

import { MetricsError } from "./metrics-error.js";
import { MetricFamily } from "./metric-family.js";
import type { LabelValues, LabelledMetricOptions } from "./metric-family.js";
import { formatSample } from "./text-format.js";

export class Counter {
  readonly #metric: string;
  #value = 0;

  constructor(metric: string) {
    this.#metric = metric;
  }

  /** Adds `step` (default 1); throws EMETRICVALUE for a negative or non-finite step. */
  inc(step = 1): void {
    if (!(step >= 0) || step === Infinity) {
      throw new MetricsError(
        "EMETRICVALUE",
        this.#metric,
        `counter step must be finite and ≥ 0, got ${step}`,
      );
    }
    this.#value += step;
  }

  get value(): number {
    return this.#value;
  }
}

export class CounterVec<L extends string> extends MetricFamily<L, Counter> {
  readonly type = "counter";

  constructor(opts: LabelledMetricOptions<L>) {
    super(opts, opts.labelNames, []);
  }

  /** The counter for these label values, created (at 0) on first use. */
  labels(labels: LabelValues<L>): Counter {
    return this.seriesState(labels);
  }

  inc(labels: LabelValues<L>, step = 1): void {
    this.seriesState(labels).inc(step);
  }

  protected createState(): Counter {
    return new Counter(this.name);
  }

  protected renderSeries(out: string[], labelPairs: string, state: Counter): void {
    out.push(formatSample(this.name, labelPairs, state.value));
  }
}
