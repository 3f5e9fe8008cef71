// Where things are, for tests and benchmarks that run from dist/ (dist/test/support/paths.js).
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the folder holding package.json), found from this compiled file's location. */
export const REPO_ROOT: string = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The compiled CLI entry point: `node CLI_MAIN <command> …` is what `bin/litefs` runs. */
export const CLI_MAIN: string = path.join(REPO_ROOT, "dist", "src", "cli", "main.js");

/** Compiled helper scripts that run in child processes. */
export const SUPPORT_DIST_DIR: string = path.join(REPO_ROOT, "dist", "test", "support");

/** The sqlite3 command-line shell: Debian's, as the brief names it. */
export const SQLITE3_CLI = "/usr/bin/sqlite3";

/** Debian's python3 when present (starts in ~20 ms; a pyenv shim takes ~150 ms), else whatever is on PATH. */
export const PYTHON3: string = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

function findRepoRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "tsconfig.json"))) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`test support: no repository root (package.json + tsconfig.json) above ${start}`);
}
