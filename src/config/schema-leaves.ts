// Value types for the config file schema, with the messages users see. Each leaf takes what YAML gave
// (a string, a `PlainScalar` for unquoted numbers/booleans, a list, a mapping or null) and yields a typed
// value or an issue. Leaves are hand-written rather than `z.string()`, `z.boolean()`… because they must
// understand `PlainScalar` and because zod's generic wording ("Invalid input: expected string, received
// number") does not say what to write instead.
//
// Absent and empty: a missing key means "use the default". A key present with no value, or with "", is an
// error — it is almost always an environment variable that was not set (`hostname: ${HOSTNAME}`), and
// silently using a default there can turn a replica into a second primary. Sections and lists are the
// exception: `lease:` with everything below commented out is an empty section.

import { z } from "zod";
import { parseDuration } from "./duration.js";
import { splitShellWords } from "./shell-words.js";
import { PlainScalar } from "./yaml-source.js";

type Conversion<T> = { ok: true; value: T } | { ok: false; message: string };

/** A short description of a YAML value for "got …" in messages. */
export function describeValue(value: unknown): string {
  if (value instanceof PlainScalar) return value.source;
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return "no value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return typeof value === "number" || typeof value === "boolean" ? String(value) : typeof value;
}

const NO_VALUE = "has no value (an environment variable that is not set?); remove the key to use the default";

/** An optional leaf: a missing key yields undefined (the default applies later). */
function leaf<T>(convert: (input: unknown) => Conversion<T>) {
  return requiredLeaf(convert).optional();
}

/** A leaf that must be present. */
function requiredLeaf<T>(convert: (input: unknown) => Conversion<T>) {
  return z.unknown().transform((input, ctx): T => {
    let result: Conversion<T>;
    if (input === undefined) result = { ok: false, message: "is required" };
    else if (input === null || input === "") result = { ok: false, message: NO_VALUE };
    else result = convert(input);
    if (!result.ok) {
      ctx.addIssue({ code: "custom", message: result.message, input });
      return z.NEVER;
    }
    return result.value;
  });
}

function textOf(input: unknown): string | undefined {
  if (typeof input === "string") return input;
  if (input instanceof PlainScalar) return input.source;
  return undefined;
}

function convertString(input: unknown): Conversion<string> {
  const text = textOf(input);
  return text === undefined
    ? { ok: false, message: `expected a string, got ${describeValue(input)}` }
    : { ok: true, value: text };
}

/** Any scalar, as written; `port: 8080` unquoted gives "8080". */
export function yamlString() {
  return leaf(convertString);
}

/** A string that must be present (list items). */
export function yamlRequiredString() {
  return requiredLeaf(convertString);
}

/** A command line for `exec`: must split into words (see shell-words.ts). */
export function yamlCommand() {
  return requiredLeaf((input) => {
    const text = convertString(input);
    if (!text.ok) return text;
    const split = splitShellWords(text.value);
    return split.ok ? text : { ok: false, message: `cannot split into arguments: ${split.reason}` };
  });
}

// yaml.v3 (LiteFS) accepts the YAML 1.1 spellings for boolean fields; YAML 1.2 reads them as strings.
const TRUE_WORDS = new Set(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"]);
const FALSE_WORDS = new Set(["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"]);

export function yamlBoolean() {
  return leaf<boolean>((input) => {
    if (input instanceof PlainScalar && typeof input.value === "boolean")
      return { ok: true, value: input.value };
    if (typeof input === "string" && TRUE_WORDS.has(input)) return { ok: true, value: true };
    if (typeof input === "string" && FALSE_WORDS.has(input)) return { ok: true, value: false };
    return { ok: false, message: `expected true or false, got ${describeValue(input)}` };
  });
}

/** A Go duration ("10s", "1m30s", "500ms") → milliseconds, never negative. A bare 0 is allowed. */
export function yamlDuration() {
  return leaf<number>((input) => {
    if (input instanceof PlainScalar && input.value === 0) return { ok: true, value: 0 };
    if (input instanceof PlainScalar && typeof input.value === "number") {
      return {
        ok: false,
        message: `expected a duration with a unit, such as "${input.source}s", got ${input.source}`,
      };
    }
    if (typeof input !== "string") {
      return { ok: false, message: `expected a duration such as "10s", got ${describeValue(input)}` };
    }
    const parsed = parseDuration(input);
    if (!parsed.ok) {
      return {
        ok: false,
        message: `expected a duration such as "10s" or "1m30s", got "${input}": ${parsed.reason}`,
      };
    }
    if (parsed.ms < 0) return { ok: false, message: `must not be negative, got "${input}"` };
    return { ok: true, value: parsed.ms };
  });
}

export function yamlEnum<const T extends string>(values: readonly T[]) {
  const list = values.join("|");
  return leaf<T>((input) => {
    const text = textOf(input);
    if (text !== undefined && (values as readonly string[]).includes(text))
      return { ok: true, value: text as T };
    return { ok: false, message: `expected one of ${list}, got ${describeValue(input)}` };
  });
}

/** A section: null (all keys commented out) is an empty section; unknown keys are errors. */
export function yamlSection<S extends z.ZodRawShape>(shape: S) {
  return z.preprocess((input, ctx) => {
    if (input === null || input === undefined) return {};
    if (isMapping(input)) return input;
    ctx.addIssue({
      code: "custom",
      message: `expected a mapping of keys, got ${describeValue(input)}`,
      input,
    });
    return z.NEVER;
  }, z.strictObject(shape));
}

/** A list; null is an empty list. */
export function yamlList<T extends z.ZodType>(item: T) {
  return z.preprocess((input, ctx) => {
    if (input === null || input === undefined) return [];
    if (Array.isArray(input)) return input as unknown[];
    ctx.addIssue({ code: "custom", message: `expected a list, got ${describeValue(input)}`, input });
    return z.NEVER;
  }, z.array(item));
}

function isMapping(input: unknown): input is Record<string, unknown> {
  return (
    typeof input === "object" && input !== null && !Array.isArray(input) && !(input instanceof PlainScalar)
  );
}
