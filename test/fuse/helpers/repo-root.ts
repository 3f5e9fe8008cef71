// The repository root, found from this compiled file's location (dist/test/fuse/helpers/… or the
// sources), so that tests can reach non-TypeScript helpers and dist/examples wherever they run from.

import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "test/fuse")))
      return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`repo root not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
