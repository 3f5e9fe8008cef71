// Runs our passthrough example (`node dist/examples/passthrough.js SRC MOUNTPOINT`) as its own process
// for tests and benchmarks: waits until the mount shows up in /proc/self/mountinfo, and tears it down
// with `umount` (falling back to SIGKILL + `umount -l`) so that a failed test leaves no mount behind.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { repoRoot } from "./repo-root.js";

export interface Mount {
  readonly dir: string;
  readonly pid: number;
  /** Unmounts and waits for the server to exit. Safe to call twice. */
  unmount(): Promise<void>;
}

export function passthroughScript(): string {
  return path.join(repoRoot(), "dist/examples/passthrough.js");
}

export function isMounted(dir: string): boolean {
  const target = fs.realpathSync(dir);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[4] === target);
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Mounts SRC at MNT through a separate passthrough process; rejects (and cleans up) if it does not come up. */
export async function mountPassthrough(src: string, mnt: string, extraArgs: string[] = []): Promise<Mount> {
  const script = passthroughScript();
  if (!fs.existsSync(script)) throw new Error(`passthrough example not built: ${script}`);
  const child = spawn(process.execPath, ["--enable-source-maps", script, ...extraArgs, src, mnt], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let done = false;
  const unmount = async (): Promise<void> => {
    if (done) return;
    done = true;
    if (isMounted(mnt)) spawnSync("umount", [mnt]);
    if (!(await waitExit(child, 5000))) {
      child.kill("SIGKILL");
      await waitExit(child, 5000);
    }
    if (isMounted(mnt)) spawnSync("umount", ["-l", mnt]);
  };
  const deadline = Date.now() + 15_000;
  while (!isMounted(mnt)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await unmount();
      throw new Error(
        `passthrough did not mount ${mnt} (exit ${child.exitCode ?? child.signalCode}): ${stderr}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { dir: mnt, pid: child.pid!, unmount };
}
