// Turns zod's issues into the config's own: one issue per unknown key (placed at the key, with a hint),
// LiteFS-style wording for wrong shapes, and every issue placed at the line:column it is about.

import { z } from "zod";
import { type ConfigIssue, formatKeyPath } from "./config-error.js";
import { editDistance } from "./edit-distance.js";
import { UNSUPPORTED_LITEFS_KEYS } from "./config-file-schema.js";
import { describeValue } from "./schema-leaves.js";
import type { KeyPath, YamlSource } from "./yaml-source.js";

export function configIssuesFromZod(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
  source: YamlSource,
  mapPath: (path: KeyPath) => KeyPath = (path) => path,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const schemaPath = issue.path.filter(
      (segment): segment is string | number => typeof segment !== "symbol",
    );
    const path = mapPath(schemaPath);
    if (issue.code === "unrecognized_keys") {
      const known = knownKeysAt(schema, schemaPath);
      for (const key of issue.keys) {
        const keyPath = [...path, key];
        const text = formatKeyPath(keyPath);
        out.push(source.issueAt(keyPath, text, unknownKeyMessage(text, key, known), "key"));
      }
      continue;
    }
    out.push(source.issueAt(path, formatKeyPath(path), messageOf(issue)));
  }
  return out;
}

function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type") {
    const got = describeValue(issue.input);
    if (issue.expected === "object") return `expected a mapping of keys, got ${got}`;
    if (issue.expected === "array") return `expected a list, got ${got}`;
    return `expected ${issue.expected}, got ${got}`;
  }
  return issue.message;
}

function unknownKeyMessage(pathText: string, key: string, known: readonly string[]): string {
  const unsupported = UNSUPPORTED_LITEFS_KEYS.get(pathText);
  if (unsupported !== undefined) return `unsupported LiteFS key: ${unsupported}`;
  const near = known.find((candidate) => isNear(key, candidate));
  if (near !== undefined) return `unknown key, did you mean "${near}"?`;
  return known.length === 0 ? "unknown key" : `unknown key (expected one of: ${known.join(", ")})`;
}

/** The keys the schema allows in the mapping at `path` (walking sections, lists and preprocessing). */
export function knownKeysAt(schema: z.ZodType, path: KeyPath): string[] {
  let node: z.ZodType | undefined = schema;
  const unwrap = (s: z.ZodType): z.ZodType => (s instanceof z.ZodPipe ? unwrap(s.out as z.ZodType) : s);
  for (const segment of path) {
    node = unwrap(node);
    if (node instanceof z.ZodObject && typeof segment === "string") node = node.shape[segment] as z.ZodType;
    else if (node instanceof z.ZodArray && typeof segment === "number") node = node.element as z.ZodType;
    else return [];
    if (node === undefined) return [];
  }
  node = unwrap(node);
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}

/** Same key but for case, "_" vs "-", or one or two typed characters. */
function isNear(typed: string, known: string): boolean {
  const normalise = (s: string) => s.toLowerCase().replace(/_/g, "-");
  if (normalise(typed) === normalise(known)) return true;
  return editDistance(normalise(typed), normalise(known)) <= (known.length > 4 ? 2 : 1);
}
