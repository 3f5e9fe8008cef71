// Mounting and unmounting with the system's mount(8)/umount(8), as root, without libfuse's
// fusermount: `mount -i -t fuse.<subtype> -o fd=3,rootmode=40000,user_id=…,group_id=… <fsname> DIR`
// with our /dev/fuse descriptor passed as the child's fd 3 (-i: no /sbin/mount.fuse helper).
//
// Stale mounts: a server killed with SIGKILL leaves its mount behind, answering every access with
// ENOTCONN ("Transport endpoint is not connected"); mounting on top of it would fail or stack. Before
// mounting, `clearStaleMount` detaches (umount -l) whatever FUSE mount sits at the mount point —
// found by stat() failing with ENOTCONN or by the point being listed in /proc/self/mounts.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { FuseSessionError } from "./errors.js";

export interface MountCommandOptions {
  /** Shown as the mount's source in /proc/mounts. */
  fsName: string;
  /** The type becomes fuse.<subtype>. */
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  uid: number;
  gid: number;
}

interface CommandResult {
  code: number | null;
  output: string;
}

function run(
  command: string,
  args: string[],
  stdio: (number | "ignore" | "pipe")[] = ["ignore", "pipe", "pipe"],
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", (err) => resolve({ code: null, output: `${output}${err.message}` }));
    child.on("close", (code) => resolve({ code, output: output.trim() }));
  });
}

const OPTION_UNSAFE = /[,\s\\]/;

/** Mounts the FUSE connection of `fd` at `mountpoint`. Rejects with EFUSEMOUNT and mount's message. */
export async function mountFuse(fd: number, mountpoint: string, o: MountCommandOptions): Promise<void> {
  for (const [what, v] of [
    ["fsName", o.fsName],
    ["subtype", o.subtype],
  ] as const) {
    if (v.length === 0 || OPTION_UNSAFE.test(v)) {
      throw new FuseSessionError(
        "EFUSEMOUNT",
        `${what} ${JSON.stringify(v)} must be non-empty without commas, spaces or backslashes`,
        { mountpoint },
      );
    }
  }
  const options = [`fd=3`, `rootmode=40000`, `user_id=${o.uid}`, `group_id=${o.gid}`];
  if (o.allowOther) options.push("allow_other");
  if (o.defaultPermissions) options.push("default_permissions");
  const args = ["-i", "-t", `fuse.${o.subtype}`, "-o", options.join(","), o.fsName, mountpoint];
  const r = await run("mount", args, ["ignore", "pipe", "pipe", fd]);
  if (r.code !== 0) {
    throw new FuseSessionError("EFUSEMOUNT", `mount ${args.join(" ")} failed (exit ${r.code}): ${r.output}`, {
      mountpoint,
    });
  }
}

/** Unmounts `mountpoint`: umount, then umount -l if that fails. Rejects with EFUSEUNMOUNT if both fail. */
export async function unmountFuse(mountpoint: string): Promise<"unmounted" | "detached"> {
  const r = await run("umount", [mountpoint]);
  if (r.code === 0) return "unmounted";
  const lazy = await run("umount", ["-l", mountpoint]);
  if (lazy.code === 0) return "detached";
  if (findMount(mountpoint) === undefined) return "unmounted"; // gone meanwhile (another unmount won)
  throw new FuseSessionError("EFUSEUNMOUNT", `umount failed: ${r.output}; umount -l failed: ${lazy.output}`, {
    mountpoint,
  });
}

export interface MountEntry {
  source: string;
  mountpoint: string;
  fstype: string;
}

/** Decodes the octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) of /proc/mounts. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The last (topmost) entry of /proc/self/mounts at `mountpoint` (an absolute path), if any. */
export function findMount(mountpoint: string): MountEntry | undefined {
  const target = path.resolve(mountpoint);
  let found: MountEntry | undefined;
  for (const line of fs.readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f.length < 3) continue;
    const entry = { source: unescapeMountField(f[0]), mountpoint: unescapeMountField(f[1]), fstype: f[2] };
    if (entry.mountpoint === target) found = entry;
  }
  return found;
}

/** True when stat() of `dir` fails with ENOTCONN: a FUSE mount whose server is gone. */
export function isDisconnected(dir: string): boolean {
  try {
    fs.statSync(dir);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOTCONN";
  }
}

/**
 * Detaches any FUSE mount at `mountpoint` (stale, or left by another server) with umount -l, up to
 * a few stacked ones. Returns how many were detached. Non-FUSE mounts are left alone.
 */
export async function clearStaleMount(mountpoint: string): Promise<number> {
  let cleared = 0;
  for (let i = 0; i < 8; i++) {
    const entry = findMount(mountpoint);
    const stale = isDisconnected(mountpoint);
    if (!stale && (entry === undefined || !entry.fstype.startsWith("fuse"))) return cleared;
    const r = await run("umount", ["-l", path.resolve(mountpoint)]);
    if (r.code !== 0) {
      throw new FuseSessionError("EFUSEMOUNT", `cannot clear the stale mount: umount -l: ${r.output}`, {
        mountpoint,
      });
    }
    cleared++;
  }
  throw new FuseSessionError("EFUSEMOUNT", "mounts keep reappearing at the mount point", { mountpoint });
}
