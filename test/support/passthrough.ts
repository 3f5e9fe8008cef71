// The two passthrough file systems our mount is compared with: the project's own FUSE library running
// examples/passthrough (separates FUSE-library problems from mount problems) and libfuse's C
// passthrough_ll (the speed floor of any FUSE daemon).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { MountProcess } from "./mount-process.js";
import { REPO_ROOT } from "./paths.js";

/** The compiled pure-TypeScript passthrough example. */
export const NODE_PASSTHROUGH = path.join(REPO_ROOT, "dist", "examples", "passthrough.js");

/** Mounts `sourceDir` at `mountDir` through examples/passthrough (our FUSE library). */
export async function startNodePassthrough(
  sourceDir: string,
  mountDir: string,
  opts: { kernelLocks?: boolean } = {},
): Promise<MountProcess> {
  if (!fs.existsSync(NODE_PASSTHROUGH))
    throw new Error(`${NODE_PASSTHROUGH} is not built (examples/passthrough.ts)`);
  return MountProcess.start({
    label: "node passthrough",
    command: process.execPath,
    args: [
      "--enable-source-maps",
      NODE_PASSTHROUGH,
      ...(opts.kernelLocks === true ? ["--kernel-locks"] : []),
      sourceDir,
      mountDir,
    ],
    mountDir,
    ready: "mounted",
  });
}

/**
 * Path of libfuse's C passthrough_ll: the cached build if present, else whatever the shared build
 * script prints (it builds it once, which needs apt).
 */
export function cPassthroughBinary(): string {
  const cached = path.join(process.env.HOME ?? "/root", ".cache", "fuse-passthrough-c", "passthrough_ll");
  if (fs.existsSync(cached)) return cached;
  const script = path.resolve(REPO_ROOT, "..", "shared", "tools", "fuse-passthrough-c");
  return execFileSync("bash", [script], { encoding: "utf8" }).trim().split("\n").pop()!;
}

/** Mounts `sourceDir` at `mountDir` through libfuse's C passthrough_ll (foreground, own process group). */
export async function startCPassthrough(sourceDir: string, mountDir: string): Promise<MountProcess> {
  return MountProcess.start({
    label: "C passthrough_ll",
    command: cPassthroughBinary(),
    args: ["-o", `source=${sourceDir}`, "-f", mountDir],
    mountDir,
    ready: "mounted",
  });
}
