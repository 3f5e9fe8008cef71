// Real mounts. An in-process session serves a small in-memory file system while child processes
// (never this thread: it serves the requests) use it: caching and invalidation notifications, slow
// handlers that do not block others, a real INTERRUPT, unmount and destroy; the passthrough's lookup
// counts against the kernel's FORGETs. Then the passthrough command as a separate process: SIGTERM
// unmounts cleanly, and after SIGKILL the stale mount is cleared by the next start.

import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  type Entry,
  type FileAttributes,
  type FuseFileSystem,
  FuseError,
  FuseSession,
  findMount,
  isDisconnected,
} from "../../src/fuse/index.js";
import { PassthroughFileSystem } from "../../examples/passthrough.js";
import { passthroughScript } from "./helpers/passthrough-mount.js";

/**
 * A temporary directory removed after the test. Mounts still under it are detached first (from a child
 * process, and the removal is asynchronous: a synchronous call into a mount this thread serves would
 * never return).
 */
function tempDir(t: { after(fn: () => Promise<void>): void }, label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fuse-${label}-`));
  t.after(async () => {
    const mounted = fs
      .readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((line) => line.split(" ")[1])
      .filter((m) => m !== undefined && (m === dir || m.startsWith(dir + "/")));
    for (const m of mounted.reverse()) await run("umount", ["-l", m]);
    await fs.promises.rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Runs a command in a child process (this thread must stay free to serve the mount). */
function run(
  cmd: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A root directory of named files whose contents and node ids the test changes at will. */
class MemoryFileSystem implements FuseFileSystem {
  readonly files = new Map<string, { nodeId: number; data: Buffer }>();
  readonly forgotten: number[] = [];
  slowReads: { signal: AbortSignal; resolve: (b: Buffer) => void }[] = [];
  destroyed = 0;
  readonly #t = Date.now();

  attr(nodeId: number): FileAttributes {
    const f = [...this.files.values()].find((x) => x.nodeId === nodeId);
    const dir = nodeId === 1;
    if (!dir && f === undefined) throw new FuseError("ENOENT");
    return {
      ino: nodeId,
      size: f?.data.length ?? 0,
      blocks: 0,
      atimeMs: this.#t,
      mtimeMs: this.#t,
      ctimeMs: this.#t,
      mode: dir ? 0o40755 : 0o100644,
      nlink: dir ? 2 : 1,
      uid: 0,
      gid: 0,
      rdev: 0,
      blksize: 4096,
    };
  }
  lookup(_c: unknown, parent: number, name: string): Entry | null {
    const f = parent === 1 ? this.files.get(name) : undefined;
    return f === undefined
      ? null
      : { nodeId: f.nodeId, attr: this.attr(f.nodeId), entryTimeoutMs: 60_000, attrTimeoutMs: 60_000 };
  }
  forget(nodeId: number): void {
    this.forgotten.push(nodeId);
  }
  getattr(_c: unknown, nodeId: number) {
    return { attr: this.attr(nodeId), attrTimeoutMs: 60_000 };
  }
  open(_c: unknown, nodeId: number) {
    const slow = this.files.get("slow")?.nodeId === nodeId;
    return { fh: nodeId, keepCache: true, directIo: slow };
  }
  read(
    ctx: { signal: AbortSignal },
    nodeId: number,
    _fh: number,
    offset: number,
    size: number,
  ): Buffer | Promise<Buffer> {
    const f = [...this.files.entries()].find(([, x]) => x.nodeId === nodeId);
    if (f === undefined) throw new FuseError("ENOENT");
    if (f[0] !== "slow") return f[1].data.subarray(offset, offset + size);
    if (offset > 0) return Buffer.alloc(0);
    return new Promise<Buffer>((resolve, reject) => {
      this.slowReads.push({ signal: ctx.signal, resolve });
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error));
    });
  }
  readdir(
    _c: unknown,
    _id: number,
    _fh: number,
    offset: number,
    out: import("../../src/fuse/index.js").DirectoryListing,
  ): void {
    const names = [...this.files.keys()];
    for (let i = offset; i < names.length; i++) {
      if (!out.add(names[i], { ino: this.files.get(names[i])!.nodeId, mode: 0o100644 }, i + 1)) break;
    }
  }
  destroy(): void {
    this.destroyed++;
  }
}

async function mountMemory(
  t: { after(fn: () => Promise<void> | void): void },
  fsys: MemoryFileSystem,
): Promise<FuseSession> {
  const mnt = tempDir(t, "mem");
  const errors: unknown[] = [];
  const session = await FuseSession.mount(fsys, {
    mountpoint: mnt,
    fsName: "memtest",
    onError: (e) => errors.push(e),
  });
  t.after(async () => {
    await session.unmount();
    assert.deepEqual(errors, [], "no handler errors");
  });
  return session;
}

test("in-process session: listing, reads, negotiated connection, unmount calls destroy once", async (t) => {
  const fsys = new MemoryFileSystem();
  fsys.files.set("hello", { nodeId: 10, data: Buffer.from("hello world\n") });
  fsys.files.set("big", { nodeId: 11, data: Buffer.alloc(3 << 20, 7) });
  const session = await mountMemory(t, fsys);
  assert.equal(session.connection.protocolMajor, 7);
  assert.ok(session.connection.protocolMinor >= 28);
  assert.equal(session.connection.posixLocks, false, "no setlk: the kernel keeps locks");
  assert.equal(findMount(session.mountpoint)?.fstype, "fuse.memtest");
  assert.deepEqual((await fs.promises.readdir(session.mountpoint)).sort(), ["big", "hello"]);
  assert.equal(await fs.promises.readFile(path.join(session.mountpoint, "hello"), "utf8"), "hello world\n");
  const big = await fs.promises.readFile(path.join(session.mountpoint, "big"));
  assert.equal(big.length, 3 << 20);
  assert.ok(big.every((b) => b === 7));
  await session.unmount();
  await session.closed;
  assert.equal(fsys.destroyed, 1);
  assert.equal(findMount(session.mountpoint), undefined);
  await session.unmount(); // idempotent
});

test("invalidateInode and invalidateEntry drop what the kernel cached", async (t) => {
  const fsys = new MemoryFileSystem();
  fsys.files.set("v", { nodeId: 20, data: Buffer.from("version-1") });
  fsys.files.set("e", { nodeId: 21, data: Buffer.from("entry-old") });
  const session = await mountMemory(t, fsys);
  const cat = async (name: string) => {
    const r = await run("cat", [path.join(session.mountpoint, name)]);
    assert.equal(r.stderr, "");
    return r.stdout;
  };
  assert.equal(await cat("v"), "version-1");
  fsys.files.get("v")!.data = Buffer.from("version-2");
  assert.equal(await cat("v"), "version-1", "page cache kept (keepCache, attributes cached for 60 s)");
  await session.invalidateInode(20);
  assert.equal(await cat("v"), "version-2");

  assert.equal(await cat("e"), "entry-old");
  // "e" now names node 22; node 21 lives on (its old name is what the kernel still has cached).
  fsys.files.set("e-old", fsys.files.get("e")!);
  fsys.files.set("e", { nodeId: 22, data: Buffer.from("entry-new!") });
  assert.equal(await cat("e"), "entry-old", "name cached for 60 s");
  await session.invalidateEntry(1, "e");
  assert.equal(await cat("e"), "entry-new!");
  // Nothing cached under that name: the kernel answers ENOENT, which counts as done.
  await session.invalidateEntry(1, "never-looked-up");
  await session.invalidateInode(999_999, { attributesOnly: true });
});

test("a slow handler blocks nobody else, and a killed caller's request is interrupted", async (t) => {
  const fsys = new MemoryFileSystem();
  fsys.files.set("slow", { nodeId: 30, data: Buffer.from("x") });
  fsys.files.set("fast", { nodeId: 31, data: Buffer.from("quick") });
  const session = await mountMemory(t, fsys);
  const slowPath = path.join(session.mountpoint, "slow");

  // 1. A read that waits does not hold up other requests; it completes when its handler resolves.
  const first = run("cat", [slowPath]);
  await waitFor("the slow read to arrive", () => fsys.slowReads.length === 1);
  assert.equal((await run("cat", [path.join(session.mountpoint, "fast")])).stdout, "quick");
  assert.equal(session.inFlightCount, 1);
  fsys.slowReads[0].resolve(Buffer.from("late data"));
  assert.equal((await first).stdout, "late data");

  // 2. SIGKILL of a process blocked in a request: the kernel sends INTERRUPT, the handler's signal
  //    fires, the EINTR reply releases the process.
  const child: ChildProcess = spawn("cat", [slowPath], { stdio: "ignore" });
  t.after(() => void child.kill("SIGKILL"));
  await waitFor("the second slow read", () => fsys.slowReads.length === 2);
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await waitFor("the interrupt", () => fsys.slowReads[1].signal.aborted);
  await exited;
  await waitFor("no request in flight", () => session.inFlightCount === 0);
});

test("unmount of a busy mount detaches it and ends the session", async (t) => {
  const fsys = new MemoryFileSystem();
  fsys.files.set("held", { nodeId: 40, data: Buffer.from("h") });
  const session = await mountMemory(t, fsys);
  const holder = spawn(
    "bash",
    ["-c", `exec 3<"${path.join(session.mountpoint, "held")}"; echo open; sleep 30`],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  t.after(() => void holder.kill("SIGKILL"));
  await new Promise((r) => holder.stdout.once("data", r));
  const started = Date.now();
  await session.unmount();
  assert.ok(Date.now() - started < 8000);
  assert.equal(findMount(session.mountpoint), undefined);
  assert.equal(fsys.destroyed, 1);
});

/** The passthrough command as its own process; resolves once it printed "mounted". */
function startPassthrough(src: string, mnt: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [passthroughScript(), src, mnt], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("mounted ")) resolve(child);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("exit", (code) => reject(new Error(`passthrough exited ${code} before mounting: ${err}`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((r) => child.once("exit", (code, signal) => r(code ?? signal)));
}

test("passthrough command: SIGTERM unmounts and exits 0; after SIGKILL the next start clears the stale mount", async (t) => {
  const base = tempDir(t, "stale");
  const src = path.join(base, "src");
  const mnt = path.join(base, "mnt");
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  fs.writeFileSync(path.join(src, "f"), "data");
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) c.kill("SIGKILL");
    for (let i = 0; i < 3 && findMount(mnt) !== undefined; i++) await run("umount", ["-l", mnt]);
  });

  const first = await startPassthrough(src, mnt);
  children.push(first);
  assert.equal((await run("cat", [path.join(mnt, "f")])).stdout, "data");
  first.kill("SIGTERM");
  assert.equal(await exitOf(first), 0);
  assert.equal(findMount(mnt), undefined);

  const killed = await startPassthrough(src, mnt);
  children.push(killed);
  killed.kill("SIGKILL");
  await exitOf(killed);
  assert.equal(isDisconnected(mnt), true, "a SIGKILLed server leaves ENOTCONN behind");

  const next = await startPassthrough(src, mnt);
  children.push(next);
  assert.equal(isDisconnected(mnt), false);
  assert.equal((await run("cat", [path.join(mnt, "f")])).stdout, "data");
  assert.equal((await run("umount", [mnt])).code, 0);
  assert.equal(await exitOf(next), 0, "umount ends the server");
  assert.equal(findMount(mnt), undefined);
});

test("passthrough lookup counts are exact: after the kernel forgets, only the root node is left", async (t) => {
  const base = tempDir(t, "forget");
  const src = path.join(base, "src");
  const mnt = path.join(base, "mnt");
  fs.mkdirSync(path.join(src, "d/e"), { recursive: true });
  fs.mkdirSync(mnt);
  for (const name of ["a", "b", "d/c", "d/e/f"]) fs.writeFileSync(path.join(src, name), name);
  const pt = new PassthroughFileSystem(src);
  const errors: unknown[] = [];
  // Entry timeout 0: every path walk looks every component up again, each adding a reference.
  const session = await FuseSession.mount(pt, {
    mountpoint: mnt,
    entryTimeoutMs: 0,
    attrTimeoutMs: 0,
    onError: (e) => errors.push(e),
  });
  t.after(() => session.unmount());
  for (let i = 0; i < 3; i++) {
    assert.equal(
      (await run("stat", ["-c", "%s", path.join(mnt, "d/e/f"), path.join(mnt, "a")])).stdout,
      "5\n1\n",
    );
    assert.equal((await run("ls", ["-laR", mnt])).code, 0); // READDIRPLUS entries count too
    assert.equal((await run("cat", [path.join(mnt, "d/c"), path.join(mnt, "b")])).stdout, "d/cb");
  }
  assert.ok(pt.nodeCount > 1);
  // Drop the kernel's unused dentries and inodes: it sends FORGET (or BATCH_FORGET) for each. From a
  // child process: the write waits on this file system, which this thread serves.
  assert.equal((await run("sh", ["-c", "echo 2 > /proc/sys/vm/drop_caches"])).code, 0);
  await waitFor("every node but the root to be forgotten", () => pt.nodeCount === 1);
  assert.deepEqual(errors, [], "no FORGET ever returned more references than were handed out");
});

test("a file system whose init fails is not left mounted, and mount rejects at once", async (t) => {
  const mnt = tempDir(t, "initfail");
  const errors: unknown[] = [];
  const started = Date.now();
  await assert.rejects(
    FuseSession.mount(
      { init: () => Promise.reject(new FuseError("EIO", "backing store unavailable")) },
      { mountpoint: mnt, onError: (e) => errors.push(e) },
    ),
    { name: "FuseError", code: "EIO" },
  );
  assert.ok(Date.now() - started < 5000);
  assert.equal(findMount(mnt), undefined);
  assert.equal(isDisconnected(mnt), false);
});
