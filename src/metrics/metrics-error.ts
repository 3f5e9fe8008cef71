// Errors of the metrics registry. Every one has a stable `code` and names the metric it concerns. They
// are programming errors (a bad name, a label set that does not fit the metric, a negative counter
// increment) or a failing collect callback — never a consequence of the data being measured.

export type MetricsErrorCode =
  | "EMETRICNAME" // a metric or label name that the exposition format does not allow, or a reserved one
  | "EMETRICDUPLICATE" // a second metric whose name (or one of its sample names) is already registered
  | "EMETRICLABELS" // label values missing, extra, or not strings for the metric's label names
  | "EMETRICVALUE" // a value the metric type cannot take (negative or non-finite counter step, NaN observation)
  | "EMETRICBUCKETS" // histogram buckets empty, not strictly increasing, or not finite
  | "EMETRICCARDINALITY" // a metric would exceed its limit on distinct label sets
  | "EMETRICCOLLECT"; // a collect callback threw while the exposition was being rendered

export class MetricsError extends Error {
  override readonly name = "MetricsError";
  readonly code: MetricsErrorCode;
  /** The metric concerned, when there is one. */
  readonly metric: string | undefined;

  constructor(code: MetricsErrorCode, metric: string | undefined, detail: string, cause?: unknown) {
    super(
      `${metric === undefined ? "" : `metric ${metric}: `}${detail} (${code})`,
      cause === undefined ? undefined : { cause },
    );
    this.code = code;
    this.metric = metric;
  }
}

export function isMetricsError(err: unknown, code?: MetricsErrorCode): err is MetricsError {
  return err instanceof MetricsError && (code === undefined || err.code === code);
}
