// What the kernel says about the fcntl locks on a file of the node's own mount, for kernel-locks mode
// (the mount never sees a lock request there, docs/store.md "Kernel-locks mode"): `/proc/locks`
// lists every lock with its holder's pid (the thread group id, in this process's pid namespace) and
// the file as `MAJ:MIN:INODE` (hex device numbers of the mount's superblock, the inode number the
// file system reports — for this mount the node id). The mount's device comes from
// `/proc/self/mountinfo`: the node must never make a system call on a file of its own mount (a stat
// of the mount point would be a FUSE request to itself, answered by the thread that is waiting).
// Everything here reads procfs synchronously: small files, no FUSE.

import fs from "node:fs";
import path from "node:path";

/** One lock from `/proc/locks` (blocked waiters, the "->" lines, are not locks and are left out). */
export interface KernelLock {
  /** "POSIX" (fcntl F_SETLK: SQLite's), "OFDLCK" (open file description locks: the node's helper), "FLOCK"… */
  readonly kind: string;
  readonly type: "read" | "write";
  /** The holder's thread group id; -1 for OFD locks (they belong to no process). */
  readonly pid: number;
  readonly start: bigint;
  /** Inclusive; undefined: to the end of the file ("EOF"). */
  readonly end: bigint | undefined;
}

/** A file as `/proc/locks` names it. */
export interface KernelFileId {
  readonly major: number;
  readonly minor: number;
  readonly ino: number;
}

/** The locks on one file now (an unreadable `/proc/locks` throws: the caller decides what it means). */
export function locksOnFile(
  file: KernelFileId,
  text = fs.readFileSync("/proc/locks", "latin1"),
): KernelLock[] {
  const out: KernelLock[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === "->") continue;
    const id = f[5].split(":");
    if (id.length !== 3) continue;
    if (
      Number(id[2]) !== file.ino ||
      parseInt(id[1], 16) !== file.minor ||
      parseInt(id[0], 16) !== file.major
    )
      continue;
    out.push({
      kind: f[1],
      type: f[3] === "WRITE" ? "write" : "read",
      pid: Number(f[4]),
      start: BigInt(f[6]),
      end: f[7] === "EOF" ? undefined : BigInt(f[7]),
    });
  }
  return out;
}

/** True when `lock` covers any byte of [first, last]. */
export function overlaps(lock: KernelLock, first: bigint, last: bigint): boolean {
  return lock.start <= last && (lock.end === undefined || lock.end >= first);
}

/**
 * The thread group id (the process) of the thread `tid` — FUSE requests carry the calling thread's
 * id, `/proc/locks` the process's — or null when it is gone.
 */
export function threadGroupOf(tid: number): number | null {
  try {
    const status = fs.readFileSync(`/proc/${tid}/status`, "latin1");
    const match = /^Tgid:\s*(\d+)$/m.exec(status);
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/**
 * The device numbers of the FUSE mount at `mountDir` (the topmost mount there), from this process's
 * mountinfo, or null when nothing is mounted there. `mountDir` is resolved through its parent only
 * (never a call on the mount itself).
 */
export function mountDevice(
  mountDir: string,
  text = fs.readFileSync("/proc/self/mountinfo", "latin1"),
): { major: number; minor: number } | null {
  const absolute = path.resolve(mountDir);
  let parent = path.dirname(absolute);
  try {
    parent = fs.realpathSync(parent);
  } catch {
    // an unresolvable parent: compare the path as given
  }
  const wanted = path.join(parent, path.basename(absolute));
  let found: { major: number; minor: number } | null = null;
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 5 || unescapeMountPath(f[4]) !== wanted) continue;
    const dash = f.indexOf("-");
    if (dash < 0 || !(f[dash + 1] ?? "").startsWith("fuse")) continue;
    const [major, minor] = f[2].split(":").map(Number);
    found = { major, minor }; // the last line for a path is the mount on top
  }
  return found;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * The top kernel frame of a thread blocked on a directory's lock in a path lookup: the lock wait
 * itself (its frames are often inlined away, leaving the lookup function on top). A thread waiting
 * for a FUSE answer has fuse frames on top instead.
 */
const DIRECTORY_LOCK_TOP =
  /^(rwsem_down_(read|write)_slowpath|down_read|down_write|__lookup_slow|lookup_slow|walk_component|open_last_lookups|filename_create|path_openat)\b/;
const PATH_LOOKUP =
  /\b(__lookup_slow|lookup_slow|walk_component|path_lookupat|path_openat|open_last_lookups|filename_create)\b/;

/**
 * True when process `pid` cannot be running SQLite code right now because it waits for a directory
 * lock: none of its threads is running (state R), and one is blocked (state D) on a directory's lock
 * in a path lookup (its kernel stack, readable by root only — unreadable counts as false). While the
 * mount's UNLINK is unanswered the kernel holds the mount root's lock, so a name lookup that needs it
 * (an expired or uncached name, e.g. SQLite's check for `-wal`) waits until the answer.
 */
export function waitsForDirectoryLock(pid: number): boolean {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  let blocked = false;
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "latin1");
      const state = stat.charAt(stat.lastIndexOf(")") + 2);
      if (state === "R") return false;
      if (blocked || state !== "D") continue;
      const stack = fs.readFileSync(`/proc/${pid}/task/${tid}/stack`, "latin1");
      const top = stack.replace(/^\[<[0-9a-f]+>\] /, "");
      if (DIRECTORY_LOCK_TOP.test(top) && PATH_LOOKUP.test(stack)) blocked = true;
    } catch {
      // the thread ended: it runs nothing
    }
  }
  return blocked;
}

/**
 * Where thread `tid` of process `pid` is with respect to an unlink system call: "inside" (sleeping in
 * it — e.g. until the mount's answer, or finishing it), "outside" (sleeping elsewhere, or gone), or
 * "running" (on a CPU or runnable: its kernel stack cannot be read reliably then). Root only (an
 * unreadable stack is "running": the caller keeps asking or gives up by its bound).
 */
export function threadInUnlink(pid: number, tid: number): "inside" | "outside" | "running" {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "latin1");
  } catch {
    return "outside";
  }
  const state = stat.charAt(stat.lastIndexOf(")") + 2);
  if (state !== "S" && state !== "D") return state === "Z" || state === "X" ? "outside" : "running";
  try {
    const stack = fs.readFileSync(`/proc/${pid}/task/${tid}/stack`, "latin1");
    return /\b(do_unlinkat|vfs_unlink|fuse_unlink)\b/.test(stack) ? "inside" : "outside";
  } catch {
    return "running";
  }
}
