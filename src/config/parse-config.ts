// Text of a `litefs.yml` → a validated `Config`, or a `ConfigError` listing every problem at its
// file:line:column and key path. Stages, each reporting all it finds before the next runs:
//   1. `$VAR` expansion on the raw text (unless turned off)   → kind "syntax"
//   2. YAML parsing                                          → kind "syntax"
//   3. schema: unknown keys, types, values (zod)             → kind "invalid"
//   4. defaults, then rules between fields                   → kind "invalid"

import os from "node:os";
import { buildConfig } from "./build-config.js";
import { checkConfig } from "./check-config.js";
import type { Config } from "./config.js";
import { ConfigError, type ConfigIssue, formatKeyPath } from "./config-error.js";
import { configFileSchema } from "./config-file-schema.js";
import { type Env, type ExpandedText, expandEnvTracked } from "./env-expansion.js";
import { configIssuesFromZod } from "./schema-issues.js";
import { type KeyPath, PlainScalar, YamlSource } from "./yaml-source.js";

export interface ParseConfigOptions {
  /** Variables for `$VAR` expansion (default: none — pass `process.env` explicitly). */
  env?: Env;
  /** Expand `$VAR`, `${VAR}`… before parsing (default true; `--no-expand-env` sets false). */
  expandEnv?: boolean;
  /** The machine's hostname, the default `lease.hostname` (default `os.hostname()`). */
  hostname?: string;
}

/** Parses and validates; throws `ConfigError` (code "ECONFIG"). An empty file gives all defaults. */
export function parseConfig(text: string, fileName: string, options: ParseConfigOptions = {}): Config {
  const original = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const expanded: ExpandedText =
    options.expandEnv === false
      ? { text: original, sourceOffset: (offset) => offset }
      : expandEnvTracked(original, options.env ?? {}, fileName);
  const source = new YamlSource(original, expanded, fileName);

  const { value, execWasString } = normaliseExec(source.toValue() ?? {});
  // `exec: "cmd"` became [{cmd}]: issues about exec[0].cmd are about the string itself.
  const mapPath = (path: KeyPath): KeyPath =>
    execWasString && path[0] === "exec" && path[1] === 0 ? ["exec", ...path.slice(3)] : path;

  const parsed = configFileSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(
      "invalid",
      configIssuesFromZod(parsed.error.issues, configFileSchema, source, mapPath),
    );
  }

  const config = buildConfig(parsed.data, { hostname: options.hostname ?? os.hostname() });
  const issues: ConfigIssue[] = checkConfig(parsed.data, config).map((issue) => {
    const path = mapPath(issue.path);
    return source.issueAt(mapPath(issue.at ?? issue.path), formatKeyPath(path), issue.message);
  });
  if (issues.length > 0) throw new ConfigError("invalid", issues);
  return config;
}

/** LiteFS accepts `exec: "cmd"` as well as a list of `{cmd, if-candidate}`; the schema takes the list. */
function normaliseExec(value: unknown): { value: unknown; execWasString: boolean } {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { value, execWasString: false };
  const exec = (value as Record<string, unknown>).exec;
  if (typeof exec !== "string" && !(exec instanceof PlainScalar)) return { value, execWasString: false };
  return { value: { ...value, exec: [{ cmd: exec }] }, execWasString: true };
}
