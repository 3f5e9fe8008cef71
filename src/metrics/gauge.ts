// Gauges: values that go up and down (counts of things present, positions, lag). Set by the code that
// knows the value, or read at each scrape by a collect callback when the value is cheaper to read
// than to keep up to date (lag grows with time while nothing happens).

import { MetricFamily } from "./metric-family.js";
import type { LabelValues, LabelledMetricOptions } from "./metric-family.js";
import { MetricsError } from "./metrics-error.js";
import { formatSample } from "./text-format.js";

export class Gauge {
  #value = 0;

  /** Any number, including NaN and ±Infinity (rendered NaN, +Inf, -Inf). */
  set(value: number): void {
    this.#value = value;
  }

  inc(step = 1): void {
    this.#value += step;
  }

  dec(step = 1): void {
    this.#value -= step;
  }

  get value(): number {
    return this.#value;
  }
}

export interface GaugeVecOptions<L extends string> extends LabelledMetricOptions<L> {
  /**
   * Called before each rendering to set (or remove) series from their source. May throw; the
   * rendering then fails with EMETRICCOLLECT naming this metric.
   */
  readonly collect?: (vec: GaugeVec<L>) => void;
}

export class GaugeVec<L extends string> extends MetricFamily<L, Gauge> {
  readonly type = "gauge";
  readonly #collect: ((vec: GaugeVec<L>) => void) | undefined;

  constructor(opts: GaugeVecOptions<L>) {
    super(opts, opts.labelNames, []);
    this.#collect = opts.collect;
  }

  /** The gauge for these label values, created (at 0) on first use. */
  labels(labels: LabelValues<L>): Gauge {
    return this.seriesState(labels);
  }

  set(labels: LabelValues<L>, value: number): void {
    this.seriesState(labels).set(value);
  }

  override collect(): void {
    if (this.#collect === undefined) return;
    try {
      this.#collect(this);
    } catch (err) {
      throw new MetricsError("EMETRICCOLLECT", this.name, `collect callback failed: ${String(err)}`, err);
    }
  }

  protected createState(): Gauge {
    return new Gauge();
  }

  protected renderSeries(out: string[], labelPairs: string, state: Gauge): void {
    out.push(formatSample(this.name, labelPairs, state.value));
  }
}
