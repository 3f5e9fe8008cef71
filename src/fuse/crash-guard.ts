// The safety net for a FUSE server that dies while the kernel waits on it from inside the server itself.
//
// A process SIGKILLed while one of its own threads is inside a request to its own mount cannot finish
// dying: that thread waits uninterruptibly for an answer only the dead main thread could give, and the
// /dev/fuse descriptor — whose release would abort the connection and fail the request — is released
// only after every thread has gone. The server avoids the known ways in (it never opens a file in its
// own mount, docs/fuse.md), but one remains that it cannot avoid: a notification write (made on the
// notifier's worker thread) blocks in the kernel until a pending request of the same mount is answered
// (an inode invalidation waits for pages under READ; an entry invalidation for a LOOKUP's directory
// lock). A SIGKILL landing in that window would leave the process in state D forever.
//
// So each session starts a small watcher process (bash, a few MB, no fork while it waits) outside the
// server's process group: it polls the server's /proc entry every 200 ms and, as soon as the server
// is exiting (PF_EXITING, or a zombie leader) while its mount is still there, aborts the connection
// through fusectl (`/sys/fs/fuse/connections/<minor>/abort`, mounting fusectl if needed) — what the
// kernel would have done had the descriptor been released. Every request then fails, the stuck thread
// returns, and the process is reaped. The watcher exits when the server is gone, or is stopped when
// the session ends. It holds nothing of the mount (cwd `/`, no descriptor of /dev/fuse or the mount).
// A server process restarted with the same pid is told apart by its start time; a connection number
// reused by a later mount by the mount point in /proc/self/mountinfo.

import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";

/** Runs as `bash -c SCRIPT crash-guard PID STARTTIME MINOR MOUNTPOINT` (mountinfo-escaped mount point). */
const WATCHER_SCRIPT = `
pid=$1 start=$2 conn=$3 mnt=$4
abort_connection() {
  local line fields found=0
  while read -r -a fields; do
    if [[ \${fields[2]} == "0:$conn" && \${fields[4]} == "$mnt" ]]; then found=1; fi
  done < /proc/self/mountinfo
  (( found )) || return 0
  local dir=/sys/fs/fuse/connections/$conn
  [[ -e $dir/abort ]] || mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
  [[ -e $dir/abort ]] && echo 1 > "$dir/abort"
}
while :; do
  stat=
  read -r stat 2>/dev/null < "/proc/$pid/stat" || exit 0
  read -r -a f <<< "\${stat##*) }"
  [[ \${f[19]} == "$start" ]] || exit 0
  if [[ \${f[0]} == Z || \${f[0]} == X ]] || (( f[6] & 4 )); then
    abort_connection
    exit 0
  fi
  read -r -t 0.2 _ || (( $? > 128 )) || sleep 0.2
done
`;

/** PF_EXITING, in the flags field of /proc/PID/stat: the task has begun to exit. */
export const PF_EXITING = 0x4;

/** The FUSE connection number (minor device number) of the topmost mount at `mountpoint`, if any. */
export function fuseConnectionOf(mountpoint: string): number | undefined {
  const escaped = escapeMountinfo(mountpoint);
  let found: number | undefined;
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5 || fields[4] !== escaped) continue;
    const [major, minor] = fields[2].split(":");
    if (major === "0") found = Number(minor);
  }
  return found;
}

/** A path as /proc/self/mountinfo writes it: space, tab, newline and backslash as octal escapes. */
export function escapeMountinfo(p: string): string {
  return p.replace(/[ \t\n\\]/g, (c) => "\\" + c.charCodeAt(0).toString(8).padStart(3, "0"));
}

/** This process's start time (field 22 of /proc/self/stat, clock ticks since boot). */
function ownStartTime(): string {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

export class CrashGuard {
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /**
   * Starts the watcher for the mount at `mountpoint` (already mounted by this process). Returns null,
   * after telling `onError`, when it cannot (no such mount, no bash): the session works without it.
   */
  static start(mountpoint: string, onError: (err: Error) => void): CrashGuard | null {
    const connection = fuseConnectionOf(mountpoint);
    if (connection === undefined) {
      onError(new Error(`crash guard: no FUSE mount found at ${mountpoint}`));
      return null;
    }
    const args = [String(process.pid), ownStartTime(), String(connection), escapeMountinfo(mountpoint)];
    let child: ChildProcess;
    try {
      // stdin: a pipe this process never writes — the watcher's 200 ms timed read on it is its sleep.
      child = spawn("/bin/bash", ["-c", WATCHER_SCRIPT, "crash-guard", ...args], {
        cwd: "/",
        stdio: ["pipe", "ignore", "ignore"],
        detached: true, // not in the server's process group: a group kill must not take it along
      });
    } catch (err) {
      onError(err as Error);
      return null;
    }
    child.on("error", (err) => onError(new Error(`crash guard: ${err.message}`)));
    child.unref();
    (child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
    return new CrashGuard(child);
  }

  /** The watcher's pid (for tests). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Stops the watcher (the session ended normally). Idempotent. */
  stop(): void {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGKILL");
    this.#child.stdin?.destroy();
  }
}
