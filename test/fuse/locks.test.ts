// POSIX and OFD record locks across real processes, through our passthrough mount (where the file
// system answers GETLK/SETLK/SETLKW itself) and on a plain directory (where the kernel does): every
// assertion must hold on both, the plain directory being the reference.

import { describe, test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LockHelper } from "./helpers/lock-helper.js";
import { mountPassthrough, type Mount } from "./helpers/passthrough-mount.js";

const PENDING = 0x4000_0000n;
const RESERVED = PENDING + 1n;
const SHARED_FIRST = PENDING + 2n;
const SHARED_SIZE = 510n;

interface Target {
  name: string;
  /** Who answers the lock requests: the kernel's own table (listed in /proc/locks) or the file system. */
  lockKeeper: "kernel" | "file system";
  /** Returns the directory to test in. */
  setup(): Promise<string>;
  teardown(): Promise<void>;
}

function plainTarget(): Target {
  let dir = "";
  return {
    name: "plain directory",
    lockKeeper: "kernel",
    setup: async () => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "locks-plain-"))),
    teardown: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

function fuseTarget(): Target {
  let base = "";
  let mount: Mount | undefined;
  return {
    name: "passthrough mount",
    lockKeeper: "file system",
    setup: async () => {
      base = fs.mkdtempSync(path.join(os.tmpdir(), "locks-fuse-"));
      fs.mkdirSync(path.join(base, "src"));
      fs.mkdirSync(path.join(base, "mnt"));
      mount = await mountPassthrough(path.join(base, "src"), path.join(base, "mnt"));
      return mount.dir;
    },
    teardown: async () => {
      await mount?.unmount();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

async function helpers(t: TestContext, n: number): Promise<LockHelper[]> {
  const hs = await Promise.all(Array.from({ length: n }, () => LockHelper.start()));
  t.after(() => Promise.all(hs.map((h) => h.exit())));
  return hs;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves to "pending" if `p` has not settled after `ms`. */
async function stillPending<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  return Promise.race([p, sleep(ms).then(() => "pending" as const)]);
}

function lockSuite(target: Target): void {
  describe(`locks on a ${target.name}`, () => {
    let dir = "";
    let seq = 0;
    const file = (): string => path.join(dir, `f${seq++}`);
    before(async () => (dir = await target.setup()));
    after(() => target.teardown());

    test(`locks are kept by the ${target.lockKeeper}`, async (t) => {
      // Through the mount, the kernel must forward lock requests instead of keeping them locally
      // (which would make every other test here pass without exercising the file system's locks).
      const [p1] = await helpers(t, 1);
      await p1.open("a", file());
      assert.equal(await p1.setlk("a", "w", 0n, 10n), "ok");
      assert.equal(await p1.setlk("a", "r", 20n, 0n, { ofd: true }), "ok");
      const mine = fs
        .readFileSync("/proc/locks", "utf8")
        .split("\n")
        .filter((line) => line.split(/\s+/)[4] === String(p1.pid));
      assert.equal(mine.length, target.lockKeeper === "kernel" ? 1 : 0, mine.join("\n"));
    });

    test("conflicting F_SETLK fails with EAGAIN across processes; reads share", async (t) => {
      const [p1, p2] = await helpers(t, 2);
      const f = file();
      await p1.open("a", f);
      await p2.open("a", f);
      assert.equal(await p1.setlk("a", "r", 0n, 10n), "ok");
      assert.equal(await p2.setlk("a", "r", 5n, 10n), "ok");
      assert.equal(await p2.setlk("a", "w", 5n, 1n), "EAGAIN");
      assert.equal(await p2.setlk("a", "w", 10n, 5n), "ok", "past p1's range");
      assert.equal(await p1.setlk("a", "w", 0n, 5n), "ok", "upgrade where p1 reads alone");
      assert.equal(await p1.setlk("a", "w", 0n, 6n), "EAGAIN", "byte 5 is also read by p2");
      assert.equal(await p2.setlk("a", "r", 4n, 1n), "EAGAIN");
      assert.equal(await p2.setlk("a", "u", 0n, 0n), "ok");
      assert.equal(await p1.setlk("a", "w", 0n, 0n), "ok", "to EOF, once p2 is gone");
      assert.equal(await p2.setlk("a", "r", 1n << 62n, 1n), "EAGAIN", "p1's to-EOF lock covers 2^62");
    });

    test("F_GETLK names the holder's pid and range (splits, to-EOF, offsets past 2^53)", async (t) => {
      const [p1, p2] = await helpers(t, 2);
      const f = file();
      await p1.open("a", f);
      await p2.open("a", f);
      assert.equal(await p1.setlk("a", "w", 100n, 50n), "ok");
      assert.deepEqual(await p2.getlk("a", "r", 120n, 1n), { type: "w", start: 100n, len: 50n, pid: p1.pid });
      assert.equal(await p1.getlk("a", "w", 100n, 50n), null, "own locks never conflict");
      assert.equal(await p2.getlk("a", "w", 150n, 10n), null);
      assert.equal(await p1.setlk("a", "u", 110n, 20n), "ok"); // splits into [100,109] and [130,149]
      assert.deepEqual(await p2.getlk("a", "w", 110n, 30n), {
        type: "w",
        start: 130n,
        len: 20n,
        pid: p1.pid,
      });
      assert.equal(await p2.getlk("a", "w", 110n, 20n), null);
      assert.equal(await p1.setlk("a", "r", 100n, 10n), "ok"); // downgrade the left part
      assert.deepEqual(await p2.getlk("a", "w", 0n, 120n), { type: "r", start: 100n, len: 10n, pid: p1.pid });
      const big = (1n << 53n) + 1n;
      assert.equal(await p1.setlk("a", "r", big, 0n), "ok");
      assert.deepEqual(await p2.getlk("a", "w", big + 1000n, 1n), {
        type: "r",
        start: big,
        len: 0n,
        pid: p1.pid,
      });
      assert.equal(await p2.getlk("a", "w", big - 1n, 1n), null, "2^53 is not covered: offsets stay exact");
      assert.equal(await p2.setlk("a", "w", big - 1n, 1n), "ok");
      assert.equal(await p2.getlk("a", "r", big, 1n), null, "p2 only reads 2^53 + 1: no conflict for a read");
    });

    test("F_SETLKW blocks until the holder releases, then holds the lock", async (t) => {
      const [p1, p2, p3] = await helpers(t, 3);
      const f = file();
      for (const p of [p1, p2, p3]) await p.open("a", f);
      assert.equal(await p1.setlk("a", "w", 0n, 100n), "ok");
      const w = p2.setlkw("a", "w", 50n, 10n);
      await w.blocking;
      assert.equal(await stillPending(w.result, 300), "pending");
      assert.equal(await p1.setlk("a", "u", 0n, 50n), "ok");
      assert.equal(await stillPending(w.result, 200), "pending", "bytes 50..59 are still held");
      assert.equal(await p1.setlk("a", "u", 50n, 50n), "ok");
      assert.equal(await w.result, "ok");
      assert.deepEqual(await p3.getlk("a", "r", 0n, 0n), { type: "w", start: 50n, len: 10n, pid: p2.pid });
      // A waiter woken by the holder's exit (close of every descriptor).
      const r = p3.setlkw("a", "r", 55n, 1n);
      await r.blocking;
      assert.equal(await stillPending(r.result, 200), "pending");
      await p2.exit();
      assert.equal(await r.result, "ok");
    });

    test("F_SETLKW interrupted by a signal returns EINTR and takes nothing", async (t) => {
      const [p1, p2, p3] = await helpers(t, 3);
      const f = file();
      for (const p of [p1, p2, p3]) await p.open("a", f);
      assert.equal(await p1.setlk("a", "r", 0n, 10n), "ok");
      const w = p2.setlkw("a", "w", 5n, 1n);
      await w.blocking;
      await sleep(200);
      p2.interrupt();
      assert.equal(await w.result, "EINTR");
      assert.equal(await p1.setlk("a", "u", 0n, 0n), "ok");
      assert.equal(await p3.getlk("a", "w", 0n, 0n), null, "the interrupted waiter was never granted");
      assert.equal(await p2.setlk("a", "w", 5n, 1n), "ok", "p2 still works after the interrupt");
    });

    test("a process killed while blocked in F_SETLKW never gets the lock", async (t) => {
      const [p1, p2, p3] = await helpers(t, 3);
      const f = file();
      for (const p of [p1, p2, p3]) await p.open("a", f);
      assert.equal(await p1.setlk("a", "w", 0n, 1n), "ok");
      const w = p2.setlkw("a", "w", 0n, 1n);
      w.result.catch(() => {}); // rejects when the helper dies
      await w.blocking;
      await sleep(100);
      await p2.kill();
      assert.equal(await p1.setlk("a", "u", 0n, 1n), "ok");
      await sleep(50);
      assert.equal(await p3.getlk("a", "w", 0n, 0n), null, "no lock left behind for the dead waiter");
      assert.equal(await p3.setlk("a", "w", 0n, 1n), "ok");
    });

    test("closing ANY descriptor of the file releases the process's POSIX locks", async (t) => {
      const [p1, p2] = await helpers(t, 2);
      const f = file();
      await p1.open("a", f);
      await p1.open("b", f);
      await p1.open("other", file());
      await p2.open("a", f);
      assert.equal(await p1.setlk("a", "w", 0n, 10n), "ok");
      assert.equal(await p1.setlk("b", "r", 20n, 10n), "ok");
      assert.equal(await p2.setlk("a", "r", 0n, 1n), "EAGAIN");
      await p1.close("other"); // another file: no effect
      assert.equal(await p2.setlk("a", "r", 0n, 1n), "EAGAIN");
      await p1.close("b"); // not the descriptor that took the write lock
      assert.equal(await p2.getlk("a", "w", 0n, 0n), null, "both locks are gone");
      assert.equal(await p2.setlk("a", "w", 0n, 30n), "ok");
      assert.equal(await p1.setlk("a", "r", 0n, 1n), "EAGAIN", "p1's remaining descriptor sees p2's lock");
    });

    test("a forked child closing an inherited descriptor leaves the parent's POSIX and OFD locks", async (t) => {
      const [p1, p2] = await helpers(t, 2);
      const f = file();
      await p1.open("a", f);
      await p1.open("o", f);
      await p2.open("a", f);
      assert.equal(await p1.setlk("a", "w", 0n, 10n), "ok");
      assert.equal(await p1.setlk("o", "w", 20n, 10n, { ofd: true }), "ok");
      await p1.forkClose("a"); // the child is another lock owner: its close releases nothing of p1's
      await p1.forkClose("o"); // the description stays open in p1: its OFD lock stays
      assert.equal(await p2.setlk("a", "r", 5n, 1n), "EAGAIN");
      assert.equal(await p2.setlk("a", "r", 25n, 1n), "EAGAIN");
      await p1.close("o");
      assert.equal(await p2.setlk("a", "r", 25n, 1n), "ok", "closing the last descriptor drops the OFD lock");
      assert.equal(
        await p2.setlk("a", "r", 5n, 1n),
        "ok",
        "and, being a close by p1, drops p1's POSIX lock too",
      );
    });

    test("OFD locks belong to the open file description: conflicts within a process, release on its close", async (t) => {
      const [p1, p2] = await helpers(t, 2);
      const f = file();
      await p1.open("a", f);
      await p1.open("b", f);
      await p2.open("a", f);
      assert.equal(await p1.setlk("a", "w", 0n, 10n, { ofd: true }), "ok");
      assert.equal(
        await p1.setlk("b", "w", 5n, 1n, { ofd: true }),
        "EAGAIN",
        "another description, same process",
      );
      assert.equal(
        await p1.setlk("b", "r", 5n, 1n),
        "EAGAIN",
        "a POSIX lock of the same process conflicts too",
      );
      assert.equal(await p2.setlk("a", "r", 9n, 1n, { ofd: true }), "EAGAIN");
      const held = await p2.getlk("a", "w", 0n, 0n, { ofd: true });
      assert.equal(held?.type, "w");
      assert.equal(held?.start, 0n);
      assert.equal(held?.len, 10n);
      assert.equal(
        await p1.setlk("a", "r", 0n, 10n, { ofd: true }),
        "ok",
        "downgrade through the same description",
      );
      assert.equal(await p1.setlk("b", "r", 5n, 1n, { ofd: true }), "ok", "reads share");
      assert.equal(await p1.setlk("b", "u", 0n, 0n, { ofd: true }), "ok");
      assert.equal(await p1.setlk("a", "w", 0n, 10n, { ofd: true }), "ok");
      // A waiter on another description, woken when the holding description is closed. Closing a
      // different descriptor of the same process does NOT release an OFD lock.
      const w = p2.setlkw("a", "w", 0n, 1n, { ofd: true });
      await w.blocking;
      await p1.close("b");
      assert.equal(
        await stillPending(w.result, 300),
        "pending",
        "closing another description keeps the OFD lock",
      );
      await p1.close("a");
      assert.equal(await w.result, "ok");
    });

    test("SQLite's lock bytes: PENDING keeps new readers out, EXCLUSIVE waits for SHARED holders", async (t) => {
      const [reader, writer, late] = await helpers(t, 3);
      const f = file();
      for (const p of [reader, writer, late]) await p.open("db", f);
      // reader: SHARED (take PENDING read, SHARED range read, drop PENDING) — what unixLock does.
      assert.equal(await reader.setlk("db", "r", PENDING, 1n), "ok");
      assert.equal(await reader.setlk("db", "r", SHARED_FIRST, SHARED_SIZE), "ok");
      assert.equal(await reader.setlk("db", "u", PENDING, 1n), "ok");
      // writer: SHARED, RESERVED, PENDING, then EXCLUSIVE fails while the reader holds SHARED.
      assert.equal(await writer.setlk("db", "r", PENDING, 1n), "ok");
      assert.equal(await writer.setlk("db", "r", SHARED_FIRST, SHARED_SIZE), "ok");
      assert.equal(await writer.setlk("db", "u", PENDING, 1n), "ok");
      assert.equal(await writer.setlk("db", "w", RESERVED, 1n), "ok");
      assert.equal(await late.setlk("db", "w", RESERVED, 1n), "EAGAIN", "one RESERVED at a time");
      assert.equal(await writer.setlk("db", "w", PENDING, 1n), "ok");
      assert.equal(await writer.setlk("db", "w", SHARED_FIRST, SHARED_SIZE), "EAGAIN");
      assert.equal(await late.setlk("db", "r", PENDING, 1n), "EAGAIN", "PENDING keeps new readers out");
      assert.deepEqual(await writer.getlk("db", "w", SHARED_FIRST, SHARED_SIZE), {
        type: "r",
        start: SHARED_FIRST,
        len: SHARED_SIZE,
        pid: reader.pid,
      });
      await reader.close("db");
      assert.equal(await writer.setlk("db", "w", SHARED_FIRST, SHARED_SIZE), "ok");
      assert.deepEqual(await late.getlk("db", "r", 0n, 0n), {
        type: "w",
        start: PENDING,
        len: 2n + SHARED_SIZE,
        pid: writer.pid,
      });
      // Commit: back to SHARED, then unlocked.
      assert.equal(await writer.setlk("db", "r", SHARED_FIRST, SHARED_SIZE), "ok");
      assert.equal(await writer.setlk("db", "u", PENDING, 2n), "ok");
      assert.equal(await late.setlk("db", "r", PENDING, 1n), "ok");
      assert.equal(await late.setlk("db", "r", SHARED_FIRST, SHARED_SIZE), "ok");
    });

    test("WAL -shm lock bytes: DMS shared, one WRITE owner, READ marks", async (t) => {
      const [a, b] = await helpers(t, 2);
      const f = file();
      await a.open("shm", f);
      await b.open("shm", f);
      assert.equal(await a.setlk("shm", "r", 128n, 1n), "ok");
      assert.equal(await b.setlk("shm", "r", 128n, 1n), "ok");
      assert.equal(
        await a.setlk("shm", "w", 128n, 1n),
        "EAGAIN",
        "DMS exclusive while another connection is open",
      );
      assert.equal(await a.setlk("shm", "w", 120n, 1n), "ok");
      assert.equal(await b.setlk("shm", "w", 120n, 1n), "EAGAIN");
      assert.equal(await b.setlk("shm", "r", 124n, 1n), "ok");
      assert.equal(await a.setlk("shm", "w", 124n, 1n), "EAGAIN");
      assert.deepEqual(await b.getlk("shm", "w", 120n, 9n), { type: "w", start: 120n, len: 1n, pid: a.pid });
      assert.equal(await a.setlk("shm", "u", 120n, 1n), "ok");
      assert.equal(await b.setlk("shm", "w", 120n, 1n), "ok");
    });
  });
}

lockSuite(plainTarget());
lockSuite(fuseTarget());
