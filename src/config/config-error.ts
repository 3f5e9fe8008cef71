// The one error type of the config layer. Every failure to produce a valid `Config` — a missing file, a
// file that cannot be read, a YAML syntax error, an unknown key, a wrong type, a bad value, two settings
// that contradict each other — is a `ConfigError` with `code: "ECONFIG"`, a `kind` saying which of those
// it is, and the full list of issues found, so that a user fixes the whole file in one round.

export type ConfigErrorKind =
  | "not-found" // an explicit path does not exist, or no file was found in the search paths
  | "unreadable" // the file exists but cannot be read (permissions, a directory, too large, not UTF-8)
  | "syntax" // the text is not valid YAML, or `${…}` expansion is malformed
  | "invalid"; // valid YAML, but keys, types or values break the schema or a cross-field rule

export interface ConfigIssue {
  /** The config file's name as given to the parser (e.g. "litefs.yml" or an absolute path). */
  file: string;
  /** Dotted key path, e.g. "lease.etcd.endpoints[0]"; "" for the file or document as a whole. */
  path: string;
  /** 1-based line in the file as written (before `$VAR` expansion); undefined when not about a place. */
  line: number | undefined;
  /** 1-based column, counted in UTF-16 code units like the rest of JavaScript. */
  column: number | undefined;
  message: string;
}

/** How many issues the error message lists; `issues` always holds all of them. */
export const CONFIG_ISSUES_IN_MESSAGE_MAX = 25;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "ECONFIG";
  readonly kind: ConfigErrorKind;
  /** Every problem found, sorted by line and column (issues without a place first). */
  readonly issues: readonly ConfigIssue[];

  constructor(kind: ConfigErrorKind, issues: readonly ConfigIssue[], options: { cause?: unknown } = {}) {
    if (issues.length === 0) throw new RangeError("a ConfigError needs at least one issue");
    const sorted = [...issues].sort(compareIssues);
    super(formatConfigIssues(sorted), options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.issues = sorted;
  }
}

/** `litefs.yml:14:9 lease.type: expected one of static|etcd|consul, got "foo"`. */
export function formatConfigIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line !== undefined) where += `:${issue.line}`;
  if (issue.line !== undefined && issue.column !== undefined) where += `:${issue.column}`;
  const key = issue.path === "" ? "" : ` ${issue.path}:`;
  return `${where}${key} ${issue.message}`;
}

function formatConfigIssues(issues: readonly ConfigIssue[]): string {
  if (issues.length === 1) return formatConfigIssue(issues[0]);
  const shown = issues.slice(0, CONFIG_ISSUES_IN_MESSAGE_MAX).map((issue) => `  ${formatConfigIssue(issue)}`);
  const hidden = issues.length - shown.length;
  if (hidden > 0) shown.push(`  … and ${hidden} more`);
  return `${issues.length} problems in ${issues[0].file}:\n${shown.join("\n")}`;
}

function compareIssues(a: ConfigIssue, b: ConfigIssue): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
}

/** A problem found by a rule that works on values: the parser places it in the file and formats it. */
export interface PathIssue {
  /** The key the message is about, e.g. ["lease", "etcd", "endpoints"]. */
  path: readonly (string | number)[];
  /** Where to point in the file when that differs from `path` (e.g. the missing key's reason). */
  at?: readonly (string | number)[];
  message: string;
}

/** `["lease", "etcd", "endpoints", 0]` → "lease.etcd.endpoints[0]". */
export function formatKeyPath(path: readonly (string | number)[]): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? segment : `.${segment}`;
  }
  return text;
}
