// Test helpers for HALT locks: a small Python process that takes the HALT lock (a write lock on byte 72
// of `<db>-lock`, POSIX or OFD, waiting or not) through a mount and then runs a command or holds the
// lock until told to let go; and comparisons of the nodes' LTX chains.

import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import type { LitefsNode } from "../support/litefs-node.js";
import { PYTHON3 } from "../support/paths.js";

const HELPER = String.raw`
import errno, fcntl, os, struct, subprocess, sys
path, kind, block, action = sys.argv[1:5]
fd = os.open(path, os.O_RDWR)
def lock(typ, wait):
    if kind == "ofd":
        cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    else:
        cmd = fcntl.F_SETLKW if wait else fcntl.F_SETLK
    fcntl.fcntl(fd, cmd, struct.pack("hhqqi", typ, os.SEEK_SET, 72, 1, 0))
try:
    lock(fcntl.F_WRLCK, block == "wait")
except OSError as e:
    print("busy" if e.errno in (errno.EAGAIN, errno.EACCES) else "error %d %s" % (e.errno, e.strerror), flush=True)
    sys.exit(3)
print("locked", flush=True)
rc = 0
if action == "run":
    rc = subprocess.call(sys.argv[5:])
else:
    sys.stdin.read()
lock(fcntl.F_UNLCK, False)
print("unlocked", flush=True)
os.close(fd)
sys.exit(rc)
`;

export type LockKind = "posix" | "ofd";

export interface HaltHelperResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Every helper process started, so that a failing test can kill them (`killHelpers`). */
const started = new Set<ChildProcessWithoutNullStreams>();

function spawnHelper(args: readonly string[]): ChildProcessWithoutNullStreams {
  const child = spawn(PYTHON3, ["-c", HELPER, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  started.add(child);
  child.once("close", () => started.delete(child));
  return child;
}

function collect(child: ChildProcessWithoutNullStreams): Promise<HaltHelperResult> {
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** Takes the HALT lock of `db` through `node`'s mount, runs `command` while holding it, lets go. */
export function runUnderHaltLock(
  node: LitefsNode,
  db: string,
  command: readonly string[],
  opts: { kind?: LockKind; wait?: boolean } = {},
): Promise<HaltHelperResult> {
  const child = spawnHelper([
    path.join(node.fuseDir, `${db}-lock`),
    opts.kind ?? "posix",
    opts.wait === false ? "nowait" : "wait",
    "run",
    ...command,
  ]);
  child.stdin.end();
  return collect(child);
}

/** A HALT lock held by a helper process until `release()`. */
export interface HeldHaltLock {
  /** Resolves with "locked", "busy" or "error …" (the helper's first line). */
  readonly outcome: Promise<string>;
  /** Lets go (closes the helper's stdin; SIGKILL after 5 s) and resolves when the helper has exited. */
  release(): Promise<HaltHelperResult>;
  /** SIGKILLs the helper (no unlock: the kernel's close releases its locks) and waits for its exit. */
  kill(): Promise<HaltHelperResult>;
}

export function holdHaltLock(
  node: LitefsNode,
  db: string,
  opts: { kind?: LockKind; wait?: boolean } = {},
): HeldHaltLock {
  const child = spawnHelper([
    path.join(node.fuseDir, `${db}-lock`),
    opts.kind ?? "posix",
    opts.wait === false ? "nowait" : "wait",
    "hold",
  ]);
  const result = collect(child);
  const outcome = new Promise<string>((resolve) => {
    let text = "";
    child.stdout.on("data", (c: string) => {
      text += c;
      const nl = text.indexOf("\n");
      if (nl >= 0) resolve(text.slice(0, nl));
    });
    void result.then((r) => resolve(r.stdout.split("\n")[0] || `exited ${r.code}: ${r.stderr}`));
  });
  return {
    outcome,
    release: () => {
      child.stdin.end();
      // A helper still blocked in F_SETLKW never reads its stdin: kill it rather than wait forever.
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      return result.finally(() => clearTimeout(timer));
    },
    kill: () => {
      child.kill("SIGKILL");
      return result;
    },
  };
}

/** Kills every helper still running (for `after` hooks). */
export function killHelpers(): void {
  for (const child of started) child.kill("SIGKILL");
}

/** Resolves `promise`'s value, or "pending" when it has not settled within `ms`. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<"pending">((resolve) => (timer = setTimeout(() => resolve("pending"), ms)));
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that every node holds the same LTX files (names and bytes) for `db`. */
export function assertSameLtxChains(nodes: readonly LitefsNode[], db: string, label: string): void {
  const [first, ...others] = nodes;
  const names = fs
    .readdirSync(first.ltxDir(db))
    .filter((n) => n.endsWith(".ltx"))
    .sort();
  assert.ok(names.length > 0, `${label}: no LTX files`);
  for (const [i, node] of others.entries()) {
    const theirs = fs
      .readdirSync(node.ltxDir(db))
      .filter((n) => n.endsWith(".ltx"))
      .sort();
    assert.deepEqual(theirs, names, `${label}: node ${i + 1} has other LTX files`);
    for (const name of names) {
      const a = fs.readFileSync(path.join(first.ltxDir(db), name));
      const b = fs.readFileSync(path.join(node.ltxDir(db), name));
      assert.ok(a.equals(b), `${label}: ${name} differs on node ${i + 1}`);
    }
  }
}

/** Runs `start` (node starts) with LITEFS_TEST_KERNEL_LOCKS set to `value`, restoring it after. */
async function withTestLockMode<T>(value: "0" | "1", start: () => Promise<T>): Promise<T> {
  const before = process.env.LITEFS_TEST_KERNEL_LOCKS;
  process.env.LITEFS_TEST_KERNEL_LOCKS = value;
  try {
    return await start();
  } finally {
    if (before === undefined) delete process.env.LITEFS_TEST_KERNEL_LOCKS;
    else process.env.LITEFS_TEST_KERNEL_LOCKS = before;
  }
}

/** Nodes started by `start` use table locks (`fuse.kernel-locks: false`) whatever the test run's switch says. */
export function withTableLocks<T>(start: () => Promise<T>): Promise<T> {
  return withTestLockMode("0", start);
}

/**
 * Nodes started by `start` use kernel locks: a client's fcntl on `<db>-lock` then reaches the node through
 * the lock-file mount the link points into.
 */
export function withKernelLocks<T>(start: () => Promise<T>): Promise<T> {
  return withTestLockMode("1", start);
}
