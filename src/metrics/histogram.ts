// Histograms with fixed buckets: each observation lands in the first bucket whose upper bound `le` is
// ≥ the value, or in the implicit +Inf bucket. Rendered as cumulative `_bucket{…,le="…"}` lines in
// increasing `le` order ending with `le="+Inf"` (equal to `_count`), then `_sum` and `_count`.

import { MetricFamily } from "./metric-family.js";
import type { LabelValues, LabelledMetricOptions } from "./metric-family.js";
import { MetricsError } from "./metrics-error.js";
import { formatSample, formatSampleValue } from "./text-format.js";

/** Upper bounds `start, start·factor, …` (`count` of them): the usual shape for latencies. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  if (!(start > 0) || !(factor > 1) || !Number.isInteger(count) || count < 1) {
    throw new MetricsError(
      "EMETRICBUCKETS",
      undefined,
      `exponential buckets need start > 0, factor > 1, count ≥ 1`,
    );
  }
  const bounds: number[] = [];
  for (let i = 0, b = start; i < count; i++, b *= factor) bounds.push(b);
  return bounds;
}

export class Histogram {
  readonly #metric: string;
  /** Shared with the family, sorted, finite, without +Inf. */
  readonly #bounds: readonly number[];
  /** Non-cumulative: #counts[i] for bucket i, #counts[bounds.length] for +Inf. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(metric: string, bounds: readonly number[]) {
    this.#metric = metric;
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Records one value; throws EMETRICVALUE for NaN (it fits no bucket). */
  observe(value: number): void {
    if (Number.isNaN(value)) throw new MetricsError("EMETRICVALUE", this.#metric, `cannot observe NaN`);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.#counts[i]++;
    this.#sum += value;
    this.#count++;
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }

  /** Cumulative counts per bucket, the last one for +Inf (equal to `count`). */
  cumulativeCounts(): number[] {
    const out: number[] = [];
    let running = 0;
    for (const c of this.#counts) out.push((running += c));
    return out;
  }
}

export interface HistogramVecOptions<L extends string> extends LabelledMetricOptions<L> {
  /** Finite upper bounds, strictly increasing; the +Inf bucket is added. */
  readonly buckets: readonly number[];
}

export class HistogramVec<L extends string> extends MetricFamily<L, Histogram> {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  readonly #leText: readonly string[];

  constructor(opts: HistogramVecOptions<L>) {
    super(opts, opts.labelNames, ["le"]);
    this.buckets = Object.freeze(checkBuckets(opts.name, opts.buckets));
    this.#leText = [...this.buckets.map(formatSampleValue), "+Inf"];
  }

  override sampleNames(): readonly string[] {
    return [`${this.name}_bucket`, `${this.name}_sum`, `${this.name}_count`];
  }

  /** The histogram for these label values, created (empty) on first use. */
  labels(labels: LabelValues<L>): Histogram {
    return this.seriesState(labels);
  }

  observe(labels: LabelValues<L>, value: number): void {
    this.seriesState(labels).observe(value);
  }

  protected createState(): Histogram {
    return new Histogram(this.name, this.buckets);
  }

  protected renderSeries(out: string[], labelPairs: string, state: Histogram): void {
    const cumulative = state.cumulativeCounts();
    const prefix = labelPairs === "" ? "" : labelPairs + ",";
    for (let i = 0; i < cumulative.length; i++) {
      out.push(`${this.name}_bucket{${prefix}le="${this.#leText[i]}"} ${formatSampleValue(cumulative[i])}`);
    }
    out.push(formatSample(`${this.name}_sum`, labelPairs, state.sum));
    out.push(formatSample(`${this.name}_count`, labelPairs, state.count));
  }
}

function checkBuckets(metric: string, buckets: readonly number[]): number[] {
  if (buckets.length === 0) throw new MetricsError("EMETRICBUCKETS", metric, `at least one bucket is needed`);
  for (let i = 0; i < buckets.length; i++) {
    if (!Number.isFinite(buckets[i])) {
      throw new MetricsError(
        "EMETRICBUCKETS",
        metric,
        `bucket bound ${buckets[i]} is not finite (+Inf is implied)`,
      );
    }
    if (i > 0 && !(buckets[i] > buckets[i - 1])) {
      throw new MetricsError(
        "EMETRICBUCKETS",
        metric,
        `bucket bounds must strictly increase: ${buckets.join(", ")}`,
      );
    }
  }
  return [...buckets];
}
