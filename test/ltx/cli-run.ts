// Runs the real command-line tool, `bin/litefs` (which builds first when sources changed), and
// returns its exit code and output. LITEFS_BIN may point at another launcher.

import { spawnSync } from "node:child_process";
import path from "node:path";
import { repoRoot } from "./ltx-fixtures.js";

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function litefs(...args: string[]): CliResult {
  const bin = process.env.LITEFS_BIN ?? path.join(repoRoot, "bin", "litefs");
  const result = spawnSync(bin, args, { encoding: "utf8", timeout: 120_000 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
