// A registry of metrics, passed to whoever measures something (never a global): each node, each test
// has its own. It renders every metric it holds as one Prometheus text exposition (format 0.0.4):
// metrics sorted by name, series sorted by label values, so equal states give byte-equal output.
//
// Counter/Gauge/Histogram are unlabelled metrics (one series, present from registration at 0);
// the …Vec kinds have label names and a series per label set, present from its first use.

import { Counter, CounterVec } from "./counter.js";
import { Gauge, GaugeVec } from "./gauge.js";
import type { GaugeVecOptions } from "./gauge.js";
import { Histogram, HistogramVec } from "./histogram.js";
import type { HistogramVecOptions } from "./histogram.js";
import type { LabelledMetricOptions, MetricFamily, MetricOptions } from "./metric-family.js";
import { MetricsError } from "./metrics-error.js";
import { EXPOSITION_CONTENT_TYPE } from "./text-format.js";

export interface GaugeOptions extends MetricOptions {
  /** Read at each rendering instead of being set; may throw (the rendering fails with EMETRICCOLLECT). */
  readonly read?: () => number;
}

export interface HistogramOptions extends MetricOptions {
  readonly buckets: readonly number[];
}

const NO_LABELS = {} as const;

export class Registry {
  /** The Content-Type of `exposition()`'s text. */
  static readonly CONTENT_TYPE = EXPOSITION_CONTENT_TYPE;

  readonly #families = new Map<string, MetricFamily<string, unknown>>();
  /** Every sample name in use (a histogram uses three), to refuse collisions such as `x_sum`. */
  readonly #sampleNames = new Set<string>();

  counter(opts: MetricOptions): Counter {
    return this.#add(new CounterVec<never>({ ...opts, labelNames: [] })).labels(NO_LABELS);
  }

  counterVec<L extends string>(opts: LabelledMetricOptions<L>): CounterVec<L> {
    return this.#add(new CounterVec(opts));
  }

  gauge(opts: GaugeOptions): Gauge {
    const read = opts.read;
    const vec = new GaugeVec<never>({
      name: opts.name,
      help: opts.help,
      labelNames: [],
      collect: read === undefined ? undefined : (v) => v.labels(NO_LABELS).set(read()),
    });
    return this.#add(vec).labels(NO_LABELS);
  }

  gaugeVec<L extends string>(opts: GaugeVecOptions<L>): GaugeVec<L> {
    return this.#add(new GaugeVec(opts));
  }

  histogram(opts: HistogramOptions): Histogram {
    return this.#add(new HistogramVec<never>({ ...opts, labelNames: [] })).labels(NO_LABELS);
  }

  histogramVec<L extends string>(opts: HistogramVecOptions<L>): HistogramVec<L> {
    return this.#add(new HistogramVec(opts));
  }

  /** Names of the registered metrics, sorted. */
  names(): string[] {
    return [...this.#families.keys()].sort();
  }

  /**
   * The text exposition of every metric: collect callbacks run first (EMETRICCOLLECT if one throws,
   * and nothing is returned), then each metric with at least one series renders, sorted by name.
   * Ends with a newline unless empty.
   */
  exposition(): string {
    const families = [...this.#families.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const family of families) family.collect();
    const lines: string[] = [];
    for (const family of families) family.render(lines);
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  #add<F extends MetricFamily<string, unknown>>(family: F): F {
    // A metric's own name is reserved too: a counter `x` and a histogram `x` would share HELP/TYPE lines.
    const names = [...new Set([family.name, ...family.sampleNames()])];
    for (const name of names) {
      if (this.#sampleNames.has(name)) {
        throw new MetricsError(
          "EMETRICDUPLICATE",
          family.name,
          `sample name ${name} is already used by another metric in this registry`,
        );
      }
    }
    for (const name of names) this.#sampleNames.add(name);
    this.#families.set(family.name, family);
    return family;
  }
}
