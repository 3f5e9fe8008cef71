// The pieces of the Prometheus text exposition format, version 0.0.4: escaping of HELP text and label
// values, and the spelling of sample values. A whole exposition is assembled by the registry.
//
//   # HELP <name> <help, with \ and newline escaped>
//   # TYPE <name> counter|gauge|histogram
//   <name>{<label>="<value, with \ " and newline escaped>",…} <value>
//
// Values: `NaN`, `+Inf`, `-Inf`, else the shortest decimal that reads back as the same double
// (JavaScript's own spelling, e.g. `42`, `0.25`, `1e+21`, `5e-7`), which Prometheus' parser accepts.

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** `a="x",b="y"` for names and values in the same order (no braces); "" when there are none. */
export function formatLabelPairs(names: readonly string[], values: readonly string[]): string {
  let text = "";
  for (let i = 0; i < names.length; i++) {
    if (i > 0) text += ",";
    text += `${names[i]}="${escapeLabelValue(values[i])}"`;
  }
  return text;
}

/** One sample line (without the newline): `name{pairs} value`, or `name value` without labels. */
export function formatSample(name: string, labelPairs: string, value: number): string {
  return labelPairs === ""
    ? `${name} ${formatSampleValue(value)}`
    : `${name}{${labelPairs}} ${formatSampleValue(value)}`;
}
