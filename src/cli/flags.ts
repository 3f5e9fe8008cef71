// Command-line flags the way Go's `flag` package reads them, because LiteFS users type
// `litefs mount -config /etc/litefs.yml -- myapp -port 8080`:
//   -name value, -name=value, --name value, --name=value; a boolean flag alone means true, and takes a
//   value only as -flag=false; parsing stops at the first non-flag argument or at "--".
// Arguments after "--" are returned untouched in `rest` (they are another program's argv: "8080" stays a
// string, "-port" is not ours). Non-flag arguments before any "--" are `positionals`.
//
// Written by hand rather than on `node:util` parseArgs: parseArgs reads `-config` as the short flags
// -c -o -n -f -i -g, and its strict mode rejects exactly the single-dash long flags Go users write.
// One deviation from Go: "--" right after a flag that needs a value is reported as a missing value
// (Go would take "--" as the value and then run the command as positionals).

import assert from "node:assert/strict";
import { editDistance } from "../config/edit-distance.js";

export type FlagType = "string" | "boolean" | "number";

export interface FlagSpec {
  type: FlagType;
  /** One line for the usage text. */
  description: string;
  /** Other names, e.g. ["c"] for -c; each works with one or two dashes like the main name. */
  aliases?: readonly string[];
  /** Value when the flag is absent (booleans: false unless given). */
  default?: string | number | boolean;
  /** Placeholder in the usage text, e.g. "PATH" (default "VALUE", or "N" for numbers). */
  valueName?: string;
}

export interface CommandSpec<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  /** Command as typed, e.g. "litefs mount". */
  name: string;
  /** What follows the flags in the usage line, e.g. "[-- CMD [ARGS...]]". */
  args?: string;
  /** A paragraph under the usage line. */
  summary?: string;
  flags: F;
}

type ValueOf<S extends FlagSpec> = S["type"] extends "boolean"
  ? boolean
  : S["type"] extends "number"
    ? number
    : string;

export type FlagValues<F extends Record<string, FlagSpec>> = {
  [K in keyof F]: F[K]["type"] extends "boolean"
    ? boolean
    : F[K] extends { default: string | number }
      ? ValueOf<F[K]>
      : ValueOf<F[K]> | undefined;
};

export interface ParsedFlags<F extends Record<string, FlagSpec>> {
  values: FlagValues<F>;
  /** Non-flag arguments from the first one up to "--" (exclusive). */
  positionals: string[];
  /** Everything after the first "--", untouched; [] when there is none. */
  rest: string[];
  /** -h, -help or --help was given (and not defined by the command): print `formatUsage` and exit 0. */
  help: boolean;
}

export type FlagErrorReason = "unknown-flag" | "missing-value" | "bad-value" | "bad-syntax";

/** A command line the command cannot run with. `code` is stable; print the message and the usage. */
export class FlagError extends Error {
  override readonly name = "FlagError";
  readonly code = "EUSAGE";
  readonly reason: FlagErrorReason;
  /** The argument as typed, e.g. "-confg". */
  readonly argument: string;

  constructor(reason: FlagErrorReason, argument: string, message: string) {
    super(message);
    this.reason = reason;
    this.argument = argument;
  }
}

const HELP_NAMES = new Set(["h", "help"]);

export function parseFlags<const F extends Record<string, FlagSpec>>(
  argv: readonly string[],
  spec: CommandSpec<F>,
): ParsedFlags<F> {
  const byName = indexFlags(spec.flags);
  const values: Record<string, string | number | boolean | undefined> = {};
  for (const [key, flag] of Object.entries(spec.flags)) {
    values[key] = flag.default ?? (flag.type === "boolean" ? false : undefined);
  }

  let i = 0;
  let help = false;
  while (i < argv.length) {
    const arg = argv[i];
    if (arg === "--" || !arg.startsWith("-") || arg === "-") break;
    const body = arg.slice(arg.startsWith("--") ? 2 : 1);
    if (body === "" || body.startsWith("-") || body.startsWith("=")) {
      throw new FlagError("bad-syntax", arg, `bad flag syntax: ${arg}`);
    }
    const equals = body.indexOf("=");
    const name = equals < 0 ? body : body.slice(0, equals);
    const inlineValue = equals < 0 ? undefined : body.slice(equals + 1);

    const found = byName.get(name);
    if (found === undefined) {
      if (HELP_NAMES.has(name)) {
        help = true;
        break;
      }
      throw new FlagError("unknown-flag", arg, unknownFlagMessage(arg, name, byName));
    }
    const [key, flag] = found;
    if (flag.type === "boolean") {
      values[key] = inlineValue === undefined ? true : parseBoolean(arg, inlineValue);
      i++;
      continue;
    }
    let text = inlineValue;
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next === "--") {
        throw new FlagError("missing-value", arg, `flag needs a value: ${arg} ${placeholder(flag)}`);
      }
      text = next;
      i++;
    }
    values[key] = flag.type === "number" ? parseNumber(arg, text) : text;
    i++;
  }

  const remaining = argv.slice(i);
  const dashes = remaining.indexOf("--");
  return {
    values: values as FlagValues<F>,
    positionals: help ? [] : dashes < 0 ? remaining : remaining.slice(0, dashes),
    rest: help || dashes < 0 ? [] : remaining.slice(dashes + 1),
    help,
  };
}

/** Usage text for `--help` and after a `FlagError`. */
export function formatUsage(spec: CommandSpec): string {
  const lines = [
    `usage: ${spec.name}${Object.keys(spec.flags).length > 0 ? " [flags]" : ""}${spec.args ? ` ${spec.args}` : ""}`,
  ];
  if (spec.summary) lines.push("", spec.summary);
  const entries = Object.entries(spec.flags).map(([key, flag]) => {
    const names = [key, ...(flag.aliases ?? [])].map((n) => `${n.length === 1 ? "-" : "--"}${n}`);
    const value = flag.type === "boolean" ? "" : ` ${placeholder(flag)}`;
    const shown =
      flag.default !== undefined && flag.default !== false
        ? ` (default ${JSON.stringify(flag.default)})`
        : "";
    return { left: names.map((n) => n + value).join(", "), right: flag.description + shown };
  });
  if (entries.length > 0) {
    const width = Math.min(32, Math.max(...entries.map((e) => e.left.length)));
    lines.push("", "flags:");
    for (const { left, right } of entries) {
      lines.push(
        left.length > width
          ? `  ${left}\n  ${" ".repeat(width)}  ${right}`
          : `  ${left.padEnd(width)}  ${right}`,
      );
    }
    lines.push("", "Flags may be written with one dash or two (-config or --config), and -name=value.");
  }
  return lines.join("\n") + "\n";
}

function indexFlags(flags: Record<string, FlagSpec>): Map<string, [string, FlagSpec]> {
  const byName = new Map<string, [string, FlagSpec]>();
  for (const [key, flag] of Object.entries(flags)) {
    for (const name of [key, ...(flag.aliases ?? [])]) {
      assert(!byName.has(name), `flag name defined twice: ${name}`);
      assert(/^[A-Za-z0-9][\w.-]*$/.test(name), `bad flag name: ${JSON.stringify(name)}`);
      byName.set(name, [key, flag]);
    }
  }
  return byName;
}

function placeholder(flag: FlagSpec): string {
  return flag.valueName ?? (flag.type === "number" ? "N" : "VALUE");
}

// Go's strconv.ParseBool spellings.
const TRUE_TEXT = new Set(["1", "t", "T", "true", "TRUE", "True"]);
const FALSE_TEXT = new Set(["0", "f", "F", "false", "FALSE", "False"]);

function parseBoolean(arg: string, text: string): boolean {
  if (TRUE_TEXT.has(text)) return true;
  if (FALSE_TEXT.has(text)) return false;
  throw new FlagError(
    "bad-value",
    arg,
    `invalid boolean value "${text}" for ${arg.split("=")[0]}: use true or false`,
  );
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function parseNumber(arg: string, text: string): number {
  const value = Number(text);
  if (!NUMBER.test(text) || !Number.isFinite(value)) {
    throw new FlagError("bad-value", arg, `invalid number "${text}" for ${arg.split("=")[0]}`);
  }
  return value;
}

function unknownFlagMessage(arg: string, name: string, byName: Map<string, [string, FlagSpec]>): string {
  const dashes = arg.startsWith("--") ? "--" : "-";
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const known of byName.keys()) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) [best, bestDistance] = [known, distance];
  }
  const near = best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3));
  return `unknown flag: ${dashes}${name}${near ? ` (did you mean ${dashes}${best}?)` : ""}`;
}

/**
 * `parseFlags` for a subcommand's `run`: on `--help` prints the usage and returns 0; on a usage error
 * prints `<command>: <error>` and the usage to stderr and returns 2; otherwise returns the flags.
 */
export function parseFlagsOrExit<const F extends Record<string, FlagSpec>>(
  argv: readonly string[],
  spec: CommandSpec<F>,
): ParsedFlags<F> | number {
  try {
    const parsed = parseFlags(argv, spec);
    if (!parsed.help) return parsed;
    process.stdout.write(formatUsage(spec));
    return 0;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`${spec.name}: ${err.message}\n\n${formatUsage(spec)}`);
    return 2;
  }
}
