// A parsed config file: the YAML document (with node offsets), the plain value the schema validates,
// and the way back from a key path to the line:column the user wrote.
//
// The value keeps strings as strings, but wraps every *plain* (unquoted) scalar that YAML 1.2 resolves to
// a number or boolean in a `PlainScalar` that remembers its source text. A field that wants a string then
// takes the text as written — `auth-token: 0123` stays "0123" instead of becoming the number 123, as Go's
// yaml.v3 would also give it — while a field that wants a number or a boolean takes the resolved value.

import { type Document, isAlias, isMap, isScalar, isSeq, type Node, parseDocument, Scalar } from "yaml";
import { ConfigError, type ConfigIssue } from "./config-error.js";
import type { ExpandedText } from "./env-expansion.js";
import { LineIndex, type TextPosition } from "./line-index.js";

export class PlainScalar {
  constructor(
    readonly value: number | boolean,
    readonly source: string,
  ) {}
}

export type KeyPath = readonly (string | number)[];

/** Limits against hostile files: deep nesting and alias bombs (`&a [*b, *b, …]` repeated). */
const NESTING_MAX = 64;
const VALUES_MAX = 100_000;

export class YamlSource {
  readonly #doc: Document.Parsed;
  readonly #expanded: ExpandedText;
  readonly #lines: LineIndex;
  readonly fileName: string;

  /** Parses `expanded.text`; throws `ConfigError` (kind "syntax") listing every YAML error. */
  constructor(originalText: string, expanded: ExpandedText, fileName: string) {
    this.fileName = fileName;
    this.#expanded = expanded;
    this.#lines = new LineIndex(originalText);
    this.#doc = parseDocument(expanded.text, { prettyErrors: false, uniqueKeys: true });
    if (this.#doc.errors.length > 0) {
      const issues = this.#doc.errors.map((error) => this.issueAtOffset(error.pos[0], "", error.message));
      throw new ConfigError("syntax", issues);
    }
  }

  /** The document as plain data (see the header for `PlainScalar`); an empty document is null. */
  toValue(): unknown {
    let count = 0;
    const convert = (node: unknown, depth: number, path: string): unknown => {
      if (++count > VALUES_MAX) this.#fail(node, path, `more than ${VALUES_MAX} values (alias expansion?)`);
      if (depth > NESTING_MAX) this.#fail(node, path, `nested more than ${NESTING_MAX} levels deep`);
      if (isAlias(node)) return convert(node.resolve(this.#doc), depth + 1, path);
      if (isMap(node)) {
        const object: Record<string, unknown> = {};
        for (const pair of node.items) {
          const key = keyText(pair.key);
          // defineProperty: a "__proto__" key must become a key (and be rejected as unknown), not a prototype.
          Object.defineProperty(object, key, {
            value: convert(pair.value, depth + 1, `${path}.${key}`),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return object;
      }
      if (isSeq(node)) return node.items.map((item, i) => convert(item, depth + 1, `${path}[${i}]`));
      if (isScalar(node)) return scalarValue(node);
      return node ?? null;
    };
    return convert(this.#doc.contents, 0, "");
  }

  /**
   * Where `path` is in the file. With `at: "key"` the key itself (for unknown keys), else its value.
   * A path that does not exist (a missing key) falls back to its nearest ancestor that does: the key
   * of the section it belongs in, or the start of the file.
   */
  positionOf(path: KeyPath, at: "key" | "value" = "value"): TextPosition {
    let node: unknown = this.#doc.contents;
    let keyNode: Node | undefined;
    let found = 0;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.#doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(segment));
        if (pair === undefined) break;
        node = pair.value;
        keyNode = pair.key as Node;
      } else if (isSeq(node) && typeof segment === "number" && segment < node.items.length) {
        node = node.items[segment];
        keyNode = undefined;
      } else {
        break;
      }
      found++;
      if (node === null || node === undefined) break;
    }
    const exact = found === path.length;
    const preferKey = !exact || at === "key" || isEmptyScalar(node) || !hasRange(node);
    const target = preferKey ? (keyNode ?? node) : node;
    return hasRange(target) ? this.#position(target.range[0]) : { line: 1, column: 1 };
  }

  /** An issue at `path`, placed by `positionOf`. */
  issueAt(path: KeyPath, pathText: string, message: string, at: "key" | "value" = "value"): ConfigIssue {
    const { line, column } = this.positionOf(path, at);
    return { file: this.fileName, path: pathText, line, column, message };
  }

  issueAtOffset(expandedOffset: number, pathText: string, message: string): ConfigIssue {
    const { line, column } = this.#position(expandedOffset);
    return { file: this.fileName, path: pathText, line, column, message };
  }

  #position(expandedOffset: number): TextPosition {
    return this.#lines.position(this.#expanded.sourceOffset(expandedOffset));
  }

  #fail(node: unknown, path: string, message: string): never {
    const offset = hasRange(node) ? node.range[0] : 0;
    throw new ConfigError("invalid", [this.issueAtOffset(offset, path.replace(/^\./, ""), message)]);
  }
}

function scalarValue(node: Scalar): unknown {
  const value: unknown = node.value;
  if (node.type === Scalar.PLAIN && (typeof value === "number" || typeof value === "boolean")) {
    return new PlainScalar(value, node.source ?? String(value));
  }
  return value ?? null;
}

function keyText(key: unknown): string {
  if (isScalar(key)) {
    if (key.value === null || key.value === undefined) return "";
    if (typeof key.value === "string") return key.value;
    return (
      key.source ??
      (typeof key.value === "number" || typeof key.value === "boolean" ? String(key.value) : "[key]")
    );
  }
  return "[complex key]";
}

function hasRange(node: unknown): node is { range: [number, number, number] } {
  return typeof node === "object" && node !== null && "range" in node && Array.isArray(node.range);
}

/** `key:` with nothing after it: YAML places that null at the end of the line, so point at the key. */
function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && !!node.range && node.range[0] === node.range[1];
}
