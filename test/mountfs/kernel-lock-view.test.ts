// What the journal-unlink fence reads from procfs (src/mountfs/kernel-lock-view.ts) — /proc/locks,
// mountinfo, thread states — and the lock helper's bounds (lock-helper-process.ts): a request that
// never gets an answer ends the helper with a clear error; descriptors of a replaced file are not kept.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";

import {
  locksOnFile,
  mountDevice,
  overlaps,
  threadGroupOf,
  threadInUnlink,
  waitsForDirectoryLock,
} from "../../src/mountfs/kernel-lock-view.js";
import { LockHelperProcess } from "../../src/mountfs/lock-helper-process.js";
import { NodeLockError } from "../../src/mountfs/node-locks.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { isProcessAlive } from "../support/tracked-process.js";

let dir: string;
before(() => {
  dir = makeTempDir("kernel-lock-view");
});
after(() => removeTempDir(dir));

test("/proc/locks lines: held locks of one file by device and inode; waiters, other files and kinds apart", () => {
  const text = [
    "1: POSIX  ADVISORY  READ 4242 00:2e:7 1073741826 1073742335",
    "1: -> POSIX  ADVISORY  WRITE 4343 00:2e:7 1073741824 1073741824",
    "2: OFDLCK ADVISORY  WRITE -1 00:2e:7 1073741824 1073741824",
    "3: POSIX  ADVISORY  WRITE 4444 00:2e:8 0 EOF",
    "4: POSIX  ADVISORY  WRITE 4545 00:2f:7 0 EOF",
    "5: FLOCK  ADVISORY  WRITE 4646 00:2e:7 0 EOF",
    "",
  ].join("\n");
  const locks = locksOnFile({ major: 0, minor: 0x2e, ino: 7 }, text);
  assert.deepEqual(
    locks.map((l) => [l.kind, l.type, l.pid, l.start, l.end]),
    [
      ["POSIX", "read", 4242, 1073741826n, 1073742335n],
      ["OFDLCK", "write", -1, 1073741824n, 1073741824n],
      ["FLOCK", "write", 4646, 0n, undefined],
    ],
  );
  assert.equal(overlaps(locks[0], 1073742335n, 1073742400n), true);
  assert.equal(overlaps(locks[0], 1073741824n, 1073741825n), false);
  assert.equal(overlaps(locks[2], 1n << 40n, 1n << 40n), true, "EOF reaches every byte");
});

test("mountinfo: the topmost FUSE mount at a path (escaped names), nothing for other file systems", () => {
  const parent = fs.realpathSync(dir);
  const at = path.join(parent, "m nt");
  const text = [
    `36 25 0:45 / ${parent}/m\\040nt rw,relatime shared:1 - fuse.litefs litefs rw,user_id=0,group_id=0`,
    `37 36 0:46 / ${parent}/m\\040nt rw,relatime shared:2 - fuse.litefs litefs rw,user_id=0,group_id=0`,
    `38 25 0:47 / ${parent}/tmpfs rw,relatime shared:3 - tmpfs tmpfs rw`,
    "",
  ].join("\n");
  assert.deepEqual(mountDevice(at, text), { major: 0, minor: 46 });
  assert.equal(mountDevice(path.join(parent, "tmpfs"), text), null);
  assert.equal(mountDevice(path.join(parent, "other"), text), null);
});

test("a real POSIX lock of another process: seen with its pid; the process is neither in an unlink nor held up by a directory lock", async (t) => {
  const file = path.join(dir, "locked");
  fs.writeFileSync(file, "x");
  const holder = spawn(
    "python3",
    [
      "-c",
      "import fcntl, struct, sys, time\n" +
        "f = open(sys.argv[1], 'r+')\n" +
        "fcntl.lockf(f, fcntl.LOCK_SH, 510, 1073741826)\n" +
        "print('locked', flush=True)\n" +
        "time.sleep(60)\n",
      file,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  t.after(() => holder.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("locked")) resolve();
    });
    holder.once("exit", () => reject(new Error("the lock holder exited")));
  });
  const st = fs.statSync(file);
  const id = {
    major: (st.dev >> 8) & 0xfff,
    minor: (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00),
    ino: st.ino,
  };
  const locks = locksOnFile(id);
  assert.deepEqual(
    locks.map((l) => [l.kind, l.type, l.pid, l.start, l.end]),
    [["POSIX", "read", holder.pid, 1073741826n, 1073742335n]],
  );
  assert.equal(threadGroupOf(holder.pid!), holder.pid);
  // Once it sleeps (it may still be on its way to the sleep): out of any unlink.
  let where = threadInUnlink(holder.pid!, holder.pid!);
  for (const deadline = Date.now() + 10_000; where === "running" && Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    where = threadInUnlink(holder.pid!, holder.pid!);
  }
  assert.equal(where, "outside");
  assert.equal(waitsForDirectoryLock(holder.pid!), false);
  assert.equal(threadGroupOf(2 ** 22 + 12345), null, "no such thread");
});

test("a helper request without an answer: the helper is ended, every request fails ELOCKHELPER naming it", async () => {
  const fifo = path.join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const deaths: NodeLockError[] = [];
  const helper = await LockHelperProcess.start((err) => deaths.push(err), { answerTimeoutMs: 300 });
  try {
    // Opening a FIFO for reading blocks until a writer comes: the helper hangs in that open.
    const hung = helper.request(["O", "1", "r", Buffer.from(fifo).toString("hex")]);
    const queued = helper.request(["V"]).then(
      () => null,
      (err: unknown) => err,
    );
    const started = Date.now();
    await assert.rejects(hung, (err: unknown) => {
      assert.ok(err instanceof NodeLockError && err.code === "ELOCKHELPER");
      assert.match(err.message, /did not answer "O \d+ 1 r /);
      return true;
    });
    assert.ok(Date.now() - started < 10_000);
    assert.match(String(await queued), /did not answer/, "the request queued behind it fails too");
    await assert.rejects(helper.request(["V"]), /did not answer/);
    assert.equal(deaths.length, 1, "the node is told once");
    await waitUntil(() => !isProcessAlive(helper.pid), 5_000, "the helper was not killed");
  } finally {
    await helper.close();
  }
});

test("a kept descriptor of a file that was replaced is closed when another descriptor of its path goes back", async () => {
  const file = path.join(dir, "pooled");
  fs.writeFileSync(file, "a");
  const hex = Buffer.from(file).toString("hex");
  const helper = await LockHelperProcess.start(() => undefined);
  try {
    const ok = async (parts: string[]): Promise<void> => {
      const answer = await helper.request(parts);
      assert.equal(answer.kind, "ok", JSON.stringify(answer));
      // A close is answered before the helper's spare bookkeeping (which closes descriptors of
      // replaced files): a ping behind it, answered in order, says that is done too.
      if (parts[0] === "C") await ok(["V"]);
    };
    await ok(["O", "1", "r", hex]);
    await ok(["C", "1"]); // kept for reuse
    assert.equal(openDescriptorsOf(helper.pid, file), 1);
    fs.rmSync(file);
    fs.writeFileSync(file, "b"); // a new file at the path
    await ok(["O", "2", "r", hex]); // the kept one is not reused (other inode) and is closed
    await ok(["C", "2"]);
    assert.equal(openDescriptorsOf(helper.pid, file), 1, "only the current file's descriptor is kept");
    fs.rmSync(file);
    // Putting back a descriptor whose file is gone keeps nothing.
    fs.writeFileSync(file, "c");
    await ok(["O", "4", "r", hex]);
    fs.rmSync(file);
    await ok(["C", "4"]);
    assert.equal(openDescriptorsOf(helper.pid, file), 0);
  } finally {
    await helper.close();
  }
});

/** How many of `pid`'s descriptors point at `file` (or at it deleted). */
function openDescriptorsOf(pid: number, file: string): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target === file || target === `${file} (deleted)`) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
