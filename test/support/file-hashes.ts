// Content fingerprints of a directory tree, to prove that an operation changed nothing it should not.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** Relative path → sha256 of every regular file under `root` for which `include(relativePath)` holds. */
export function hashTree(
  root: string,
  include: (relativePath: string) => boolean = () => true,
): Map<string, string> {
  const hashes = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const relative = path.relative(root, full);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && include(relative)) {
        hashes.set(relative, createHash("sha256").update(fs.readFileSync(full)).digest("hex"));
      }
    }
  };
  if (fs.existsSync(root)) walk(root);
  return hashes;
}

/** Paths whose content differs between two fingerprints, or that exist in only one, sorted. */
export function changedPaths(before: Map<string, string>, after: Map<string, string>): string[] {
  const changed = new Set<string>();
  for (const [file, hash] of before) if (after.get(file) !== hash) changed.add(file);
  for (const file of after.keys()) if (!before.has(file)) changed.add(file);
  return [...changed].sort();
}
