// Mount table queries and unmounting, used by every test that mounts something. Unmounting is
// synchronous on purpose: it must also work from a process 'exit' hook, where nothing async runs.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** The current mount table (from /proc/self/mountinfo, octal escapes decoded). */
export function readMountTable(): MountEntry[] {
  const text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [left, right] = line.split(" - ");
    const fields = left.split(" ");
    const tail = (right ?? "").split(" ");
    entries.push({ mountPoint: unescapeMountField(fields[4]), fsType: tail[0] ?? "", source: tail[1] ?? "" });
  }
  return entries;
}

/** True when `dir` is a mount point right now. */
export function isMounted(dir: string): boolean {
  const target = canonical(dir);
  return readMountTable().some((entry) => entry.mountPoint === target);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export function mountPointsUnder(dir: string): string[] {
  const root = canonical(dir);
  return readMountTable()
    .map((entry) => entry.mountPoint)
    .filter((mountPoint) => mountPoint === root || mountPoint.startsWith(root + "/"))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmounts `dir` until nothing is mounted there (mounts can be stacked): `umount` first, `umount -l`
 * when that fails (busy, or a dead FUSE server whose clients still hold files open). Returns whether
 * anything was unmounted. Throws only if the mount is still there after the lazy unmount.
 */
export function unmountSync(dir: string): boolean {
  let unmounted = false;
  for (let attempt = 0; attempt < 8 && isMounted(dir); attempt++) {
    const plain = spawnSync("umount", [dir], { stdio: "ignore", timeout: 10_000 });
    if (plain.status !== 0) spawnSync("umount", ["-l", dir], { stdio: "ignore", timeout: 10_000 });
    unmounted = true;
  }
  if (isMounted(dir)) throw new Error(`unmountSync: ${dir} is still mounted after umount and umount -l`);
  return unmounted;
}

/** Polls the mount table until `dir` is mounted; rejects after `timeoutMs`, or early if `abort()` says why. */
export async function waitUntilMounted(
  dir: string,
  timeoutMs: number,
  abort: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isMounted(dir)) {
    const reason = abort();
    if (reason !== undefined) throw new Error(`${dir} was not mounted: ${reason}`);
    if (Date.now() > deadline) throw new Error(`${dir} was not mounted within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function canonical(dir: string): string {
  // realpath of a dead FUSE mount point fails (ENOTCONN); its parent still resolves.
  const absolute = path.resolve(dir);
  try {
    return fs.realpathSync(absolute);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(absolute)), path.basename(absolute));
    } catch {
      return absolute;
    }
  }
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
