// What counters, gauges and histograms share: a name, a help text, fixed label names, and a table of
// series — one per distinct set of label values, each holding that series' state. A family renders
// itself into the text format with its series sorted by label values, so the output does not depend
// on the order in which series were first touched.

import { MetricsError } from "./metrics-error.js";
import { assertMetricName, checkLabelNames } from "./metric-name.js";
import { escapeHelp, formatLabelPairs } from "./text-format.js";

export type MetricType = "counter" | "gauge" | "histogram";

/** Label values by label name; every name of the metric must be present, and no other. */
export type LabelValues<L extends string> = { readonly [K in L]: string };

/** Distinct label sets a metric may hold unless told otherwise; a guard against unbounded label values. */
export const DEFAULT_MAX_SERIES = 10_000;

export interface MetricOptions {
  readonly name: string;
  /** One line saying what is measured, with its unit when the name does not carry it. */
  readonly help: string;
  /** Limit on distinct label sets (default DEFAULT_MAX_SERIES); exceeding it throws EMETRICCARDINALITY. */
  readonly maxSeries?: number;
}

export interface LabelledMetricOptions<L extends string> extends MetricOptions {
  readonly labelNames: readonly L[];
}

interface SeriesEntry<S> {
  /** Label values in the order of the family's sorted label names. */
  readonly values: readonly string[];
  readonly state: S;
}

export abstract class MetricFamily<L extends string, S> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: MetricType;
  /** Sorted; the order labels are rendered in. */
  readonly labelNames: readonly L[];
  readonly #maxSeries: number;
  readonly #series = new Map<string, SeriesEntry<S>>();

  protected constructor(opts: MetricOptions, labelNames: readonly L[], reservedLabels: readonly string[]) {
    assertMetricName(opts.name);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = checkLabelNames(opts.name, labelNames, reservedLabels);
    this.#maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
    if (!Number.isInteger(this.#maxSeries) || this.#maxSeries < 1) {
      throw new MetricsError("EMETRICCARDINALITY", this.name, `maxSeries must be a positive integer`);
    }
  }

  /** Names of the sample lines this family writes (a histogram writes three). */
  sampleNames(): readonly string[] {
    return [this.name];
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  /** Forgets the series with these label values (e.g. a database that was removed). */
  remove(labels: LabelValues<L>): boolean {
    const values = this.#valuesOf(labels);
    return this.#series.delete(keyOf(values));
  }

  /** Forgets every series. */
  clear(): void {
    this.#series.clear();
  }

  /** Runs before each rendering; gauges with a collect callback override it. */
  collect(): void {}

  /** Appends the family's lines to `out`; nothing at all when it holds no series. */
  render(out: string[]): void {
    if (this.#series.size === 0) return;
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    const entries = [...this.#series.values()].sort((a, b) => compareValues(a.values, b.values));
    for (const entry of entries) {
      this.renderSeries(out, formatLabelPairs(this.labelNames, entry.values), entry.state);
    }
  }

  /** The state of the series with these label values, created on first use. */
  protected seriesState(labels: LabelValues<L>): S {
    const values = this.#valuesOf(labels);
    const key = keyOf(values);
    let entry = this.#series.get(key);
    if (entry === undefined) {
      if (this.#series.size >= this.#maxSeries) {
        throw new MetricsError(
          "EMETRICCARDINALITY",
          this.name,
          `more than ${this.#maxSeries} distinct label sets; refusing ${JSON.stringify(labels)}`,
        );
      }
      entry = { values, state: this.createState() };
      this.#series.set(key, entry);
    }
    return entry.state;
  }

  protected abstract createState(): S;

  /** Appends the sample lines of one series; `labelPairs` is `a="x",…` without braces, or "". */
  protected abstract renderSeries(out: string[], labelPairs: string, state: S): void;

  #valuesOf(labels: LabelValues<L>): string[] {
    const names = this.labelNames;
    const given = Object.keys(labels);
    if (given.length !== names.length) {
      throw new MetricsError(
        "EMETRICLABELS",
        this.name,
        `labels ${JSON.stringify(given)} given, want exactly ${JSON.stringify(names)}`,
      );
    }
    const values: string[] = new Array<string>(names.length);
    for (let i = 0; i < names.length; i++) {
      const value: unknown = labels[names[i]];
      if (typeof value !== "string") {
        throw new MetricsError(
          "EMETRICLABELS",
          this.name,
          `label ${names[i]} must be a string, got ${value === undefined ? "nothing" : typeof value}`,
        );
      }
      values[i] = value;
    }
    return values;
  }
}

function keyOf(values: readonly string[]): string {
  // One value is its own key (the common case); several are joined unambiguously.
  if (values.length === 0) return "";
  if (values.length === 1) return values[0];
  return JSON.stringify(values);
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}
