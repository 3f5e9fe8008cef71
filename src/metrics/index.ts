// Prometheus metrics without dependencies: a registry passed in (never global), the text exposition
// format 0.0.4, and the metric set of a LiteFS node.
export { Registry } from "./registry.js";
export type { GaugeOptions, HistogramOptions } from "./registry.js";
export { Counter, CounterVec } from "./counter.js";
export { Gauge, GaugeVec } from "./gauge.js";
export type { GaugeVecOptions } from "./gauge.js";
export { Histogram, HistogramVec, exponentialBuckets } from "./histogram.js";
export type { HistogramVecOptions } from "./histogram.js";
export { DEFAULT_MAX_SERIES } from "./metric-family.js";
export type { LabelValues, MetricOptions, LabelledMetricOptions, MetricType } from "./metric-family.js";
export { MetricsError, isMetricsError } from "./metrics-error.js";
export type { MetricsErrorCode } from "./metrics-error.js";
export { EXPOSITION_CONTENT_TYPE } from "./text-format.js";
export { handleMetricsRequest } from "./metrics-http-handler.js";
export { LitefsMetrics, COMMIT_SECONDS_BUCKETS } from "./litefs-metrics.js";
export type { LitefsMetricsOptions } from "./litefs-metrics.js";
export { StreamMetrics } from "./stream-metrics.js";
export { LeaseMetrics } from "./lease-metrics.js";
export { ProxyMetricSet } from "./proxy-metric-set.js";
