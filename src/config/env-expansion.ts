// Environment expansion of the raw config text, done before YAML parsing as LiteFS does, so a variable
// can supply any part of the file. Forms:
//   $NAME, ${NAME}            the variable's value; unset → "" (NAME is [A-Za-z0-9_]+)
//   ${NAME == 'x'}            "true" or "false" (also "x" in double quotes, and !=)
//   ${NAME == OTHER}          compares two variables (also !=)
//   ${NAME:-default}          the value, or `default` when unset or empty        (not in LiteFS)
//   $$                        a literal "$"                                      (LiteFS: empty)
//   $ before anything else    left as is                                        (LiteFS drops $*, $#, …)
// A `${` without a `}` on the same line, `${}`, or an expression outside these forms is an error with
// its line:column, rather than silently becoming "" — a typo in `${AUTH_TOKEN` must not turn into a
// node that runs without authentication.
//
// Expansion can change lengths, so the result carries a map from offsets in the expanded text back to
// the original: YAML and schema errors are then reported at the line:column the user wrote.

import { ConfigError } from "./config-error.js";
import { LineIndex } from "./line-index.js";

export type Env = Readonly<Record<string, string | undefined>>;

export interface ExpandedText {
  readonly text: string;
  /** Maps an offset in `text` to an offset in the original; inside a substitution, to its `$`. */
  sourceOffset(offset: number): number;
}

/** Expands `text`; throws `ConfigError` (kind "syntax") naming `fileName` on a malformed `${…}`. */
export function expandEnv(text: string, env: Env, fileName = "<config>"): string {
  return expandEnvTracked(text, env, fileName).text;
}

interface Substitution {
  sourceStart: number;
  sourceEnd: number;
  outStart: number;
  outEnd: number;
}

const NAME = /[A-Za-z0-9_]+/y;
const COMPARE_QUOTED = /^(\w+)\s*(==|!=)\s*(?:'(.*)'|"(.*)")$/;
const COMPARE_VARS = /^(\w+)\s*(==|!=)\s*(\w+)$/;
const WITH_DEFAULT = /^(\w+):-(.*)$/;
const PLAIN = /^\w+$/;

export function expandEnvTracked(text: string, env: Env, fileName = "<config>"): ExpandedText {
  const subs: Substitution[] = [];
  let out = "";
  let copiedUpTo = 0;
  const substitute = (sourceStart: number, sourceEnd: number, value: string): void => {
    out += text.slice(copiedUpTo, sourceStart);
    subs.push({ sourceStart, sourceEnd, outStart: out.length, outEnd: out.length + value.length });
    out += value;
    copiedUpTo = sourceEnd;
  };
  const fail = (offset: number, message: string): never => {
    const { line, column } = new LineIndex(text).position(offset);
    throw new ConfigError("syntax", [{ file: fileName, path: "", line, column, message }]);
  };

  for (
    let dollar = text.indexOf("$");
    dollar >= 0;
    dollar = text.indexOf("$", Math.max(copiedUpTo, dollar + 1))
  ) {
    const next = text[dollar + 1];
    if (next === "$") {
      substitute(dollar, dollar + 2, "$");
    } else if (next === "{") {
      const close = text.indexOf("}", dollar + 2);
      const lineEnd = text.indexOf("\n", dollar + 2);
      if (close < 0 || (lineEnd >= 0 && lineEnd < close))
        fail(dollar, "unterminated ${ (no } on the same line)");
      const value = evaluate(text.slice(dollar + 2, close), env);
      if (!value.ok) fail(dollar, value.reason);
      else substitute(dollar, close + 1, value.text);
    } else {
      NAME.lastIndex = dollar + 1;
      const name = NAME.exec(text);
      if (name !== null) substitute(dollar, dollar + 1 + name[0].length, env[name[0]] ?? "");
      // Otherwise a lone "$" (end of text, "$ ", "$-"…) stays as written.
    }
  }
  out += text.slice(copiedUpTo);
  return { text: out, sourceOffset: (offset) => sourceOffsetOf(subs, offset) };
}

type Evaluation = { ok: true; text: string } | { ok: false; reason: string };

function evaluate(rawExpression: string, env: Env): Evaluation {
  const expression = rawExpression.trim();
  const get = (name: string): string => env[name] ?? "";
  if (expression === "") return { ok: false, reason: "empty ${}" };
  if (PLAIN.test(expression)) return { ok: true, text: get(expression) };

  const quoted = COMPARE_QUOTED.exec(expression);
  if (quoted !== null) {
    const [, name, op, single, double] = quoted;
    const equal = get(name) === (single ?? double);
    return { ok: true, text: String(op === "==" ? equal : !equal) };
  }
  const vars = COMPARE_VARS.exec(expression);
  if (vars !== null) {
    const [, left, op, right] = vars;
    const equal = get(left) === get(right);
    return { ok: true, text: String(op === "==" ? equal : !equal) };
  }
  const withDefault = WITH_DEFAULT.exec(expression);
  if (withDefault !== null) {
    const value = get(withDefault[1]);
    return { ok: true, text: value === "" ? withDefault[2] : value };
  }
  return {
    ok: false,
    reason:
      `unsupported expression \${${rawExpression}} ` +
      `(expected \${NAME}, \${NAME:-default}, \${NAME == 'value'} or \${NAME != 'value'})`,
  };
}

function sourceOffsetOf(subs: readonly Substitution[], offset: number): number {
  // Last substitution starting at or before `offset` (subs are in increasing order of both offsets).
  let lo = 0;
  let hi = subs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (subs[mid].outStart <= offset) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return offset;
  const sub = subs[found];
  if (offset === sub.outStart || offset < sub.outEnd) return sub.sourceStart;
  return sub.sourceEnd + (offset - sub.outEnd);
}
