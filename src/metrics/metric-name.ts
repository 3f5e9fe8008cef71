// Which metric and label names the Prometheus text format (0.0.4) accepts. Checked once, at
// registration, so that rendering never has to escape a name.

import { MetricsError } from "./metrics-error.js";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function assertMetricName(name: string): void {
  if (!METRIC_NAME.test(name)) {
    throw new MetricsError("EMETRICNAME", undefined, `invalid metric name ${JSON.stringify(name)}`);
  }
}

/**
 * Checks label names and returns them sorted (the order they are rendered in, as Prometheus clients
 * do). `reserved` are names the metric type uses itself (`le` for histograms). Names starting with
 * `__` are reserved for Prometheus.
 */
export function checkLabelNames<L extends string>(
  metric: string,
  names: readonly L[],
  reserved: readonly string[],
): readonly L[] {
  const seen = new Set<string>();
  for (const name of names) {
    if (!LABEL_NAME.test(name)) {
      throw new MetricsError("EMETRICNAME", metric, `invalid label name ${JSON.stringify(name)}`);
    }
    if (name.startsWith("__") || reserved.includes(name)) {
      throw new MetricsError("EMETRICNAME", metric, `label name ${JSON.stringify(name)} is reserved`);
    }
    if (seen.has(name)) {
      throw new MetricsError("EMETRICNAME", metric, `label name ${JSON.stringify(name)} given twice`);
    }
    seen.add(name);
  }
  return Object.freeze([...names].sort());
}
