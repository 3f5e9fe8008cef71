// The FUSE protocol without a mount: requests built byte by byte as the kernel writes them go through
// the Dispatcher, and the replies are checked byte by byte against <linux/fuse.h>.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { FuseError, OFFSET_MAX } from "../../src/fuse/index.js";
import type { FileLock, FuseFileSystem, LockRequest, RequestContext } from "../../src/fuse/index.js";
import { InitFlag, InitFlag2, Opcode } from "../../src/fuse/kernel-abi.js";
import {
  encodeInvalidateEntry,
  encodeInvalidateInode,
  encodeNotifyDelete,
} from "../../src/fuse/notification.js";
import { ATTR, Body, harness, readAttr, request } from "./protocol-wire.js";

const ENOSYS = 38;
const ENOENT = 2;
const EIO = 5;
const EINTR = 4;
const EINVAL = 22;
const EPROTO = 71;
const EACCES = 13;

function initBody(major: number, minor: number, flags: number, flags2: number): Buffer {
  return new Body().u32(major).u32(minor).u32(131072).u32(flags).u32(flags2).bytes(Buffer.alloc(44)).build();
}

// What this machine's kernel offered (7.45): flags 0x73fffffb, flags2 0x5fd.
const KERNEL_FLAGS = 0x73fffffb;
const KERNEL_FLAGS2 = 0x5fd;

test("INIT takes the kernel's minor and accepts only the supported flags", () => {
  const h = harness({}, { posixLocks: true, readdirplus: true });
  h.send(request(Opcode.INIT, 2, 0, initBody(7, 45, KERNEL_FLAGS, KERNEL_FLAGS2)));
  const r = h.replyTo(2);
  assert.equal(r.error, 0);
  assert.equal(r.length, 16 + 64);
  const b = r.body;
  assert.equal(b.readUInt32LE(0), 7);
  assert.equal(b.readUInt32LE(4), 45);
  assert.equal(b.readUInt32LE(8), 131072, "max_readahead echoes the kernel's");
  const flags = b.readUInt32LE(12);
  for (const f of [
    "ASYNC_READ",
    "POSIX_LOCKS",
    "ATOMIC_O_TRUNC",
    "BIG_WRITES",
    "PARALLEL_DIROPS",
    "MAX_PAGES",
    "INIT_EXT",
    "DO_READDIRPLUS",
  ] as const) {
    assert.ok(flags & InitFlag[f], `${f} accepted`);
  }
  for (const f of ["FLOCK_LOCKS", "EXPORT_SUPPORT", "WRITEBACK_CACHE", "DONT_MASK"] as const) {
    assert.equal(flags & InitFlag[f], 0, `${f} declined`);
  }
  assert.equal(b.readUInt16LE(16), 64, "max_background");
  assert.equal(b.readUInt32LE(20), 1 << 20, "max_write 1 MiB");
  assert.equal(b.readUInt32LE(24), 1, "time_gran 1 ns");
  assert.equal(b.readUInt16LE(28), 256, "max_pages");
  assert.equal(b.readUInt32LE(32), InitFlag2.DIRECT_IO_ALLOW_MMAP, "flags2");
  const c = h.dispatcher.connection!;
  assert.equal(c.protocolMinor, 45);
  assert.equal(c.posixLocks, true);
  assert.equal(c.directIoAllowMmap, true);
});

test("INIT without setlk leaves POSIX locks to the kernel; an old kernel gets no flags2", () => {
  const h = harness({});
  h.send(
    request(
      Opcode.INIT,
      2,
      0,
      new Body()
        .u32(7)
        .u32(31)
        .u32(65536)
        .u32(KERNEL_FLAGS & ~InitFlag.INIT_EXT)
        .build(),
    ),
  );
  const b = h.replyTo(2).body;
  assert.equal(b.readUInt32LE(4), 31);
  assert.equal(b.readUInt32LE(12) & InitFlag.POSIX_LOCKS, 0);
  assert.equal(b.readUInt32LE(12) & InitFlag.DO_READDIRPLUS, 0);
  assert.equal(b.readUInt32LE(32), 0);
});

test("INIT from an unsupported kernel is refused with EPROTO", () => {
  for (const [major, minor] of [
    [8, 0],
    [7, 20],
  ]) {
    const h = harness({});
    h.send(request(Opcode.INIT, 2, 0, initBody(major, minor, KERNEL_FLAGS, 0)));
    assert.equal(h.replyTo(2).error, -EPROTO);
    assert.equal(h.errors.length, 1);
  }
});

test("LOOKUP: entry_out carries node id, timeouts and every attribute field", () => {
  const h = harness({
    lookup: (_c, parent, name) =>
      parent === 1 && name === "a b" ? { nodeId: 9, generation: 3, attr: ATTR } : null,
  });
  h.send(request(Opcode.LOOKUP, 10, 1, new Body().name("a b").build()));
  const r = h.replyTo(10);
  assert.equal(r.length, 16 + 128);
  assert.equal(Number(r.body.readBigUInt64LE(0)), 9);
  assert.equal(Number(r.body.readBigUInt64LE(8)), 3);
  assert.equal(Number(r.body.readBigUInt64LE(16)), 1, "entry_valid 1.5 s → 1 s");
  assert.equal(r.body.readUInt32LE(32), 500_000_000, "… + 500 ms");
  assert.equal(Number(r.body.readBigUInt64LE(24)), 0, "attr_valid 250 ms → 0 s");
  assert.equal(r.body.readUInt32LE(36), 250_000_000);
  assert.deepEqual(readAttr(r.body, 40), {
    ino: ATTR.ino,
    size: ATTR.size,
    blocks: ATTR.blocks,
    atime: 1_700_000_000,
    mtime: -2,
    ctime: 1_700_000_001,
    atimensec: 125_500_000,
    mtimensec: 499_750_000,
    ctimensec: 0,
    mode: ATTR.mode,
    nlink: 3,
    uid: 1000,
    gid: 1001,
    rdev: 7,
    blksize: 4096,
  });
});

test("LOOKUP of a missing name: ENOENT, or a cached negative entry when negativeTimeoutMs > 0", () => {
  const fsys: FuseFileSystem = { lookup: () => null };
  const plain = harness(fsys);
  plain.send(request(Opcode.LOOKUP, 4, 1, new Body().name("x").build()));
  assert.equal(plain.replyTo(4).error, -ENOENT);
  const negative = harness(fsys, { negativeTimeoutMs: 2000 });
  negative.send(request(Opcode.LOOKUP, 4, 1, new Body().name("x").build()));
  const r = negative.replyTo(4);
  assert.equal(r.error, 0);
  assert.equal(Number(r.body.readBigUInt64LE(0)), 0, "node id 0");
  assert.equal(Number(r.body.readBigUInt64LE(16)), 2, "entry_valid");
});

test("unknown opcodes and missing handlers answer ENOSYS; release/opendir/statfs have defaults", () => {
  const h = harness({});
  h.send(request(Opcode.READLINK, 2, 5));
  h.send(request(999, 4, 5));
  h.send(request(Opcode.GETATTR, 6, 5, Buffer.alloc(16)));
  h.send(request(Opcode.RELEASE, 8, 5, Buffer.alloc(24)));
  h.send(request(Opcode.OPENDIR, 10, 5, Buffer.alloc(8)));
  h.send(request(Opcode.STATFS, 12, 5));
  assert.equal(h.replyTo(2).error, -ENOSYS);
  assert.equal(h.replyTo(4).error, -ENOSYS);
  assert.equal(h.replyTo(6).error, -ENOSYS);
  assert.deepEqual([h.replyTo(8).error, h.replyTo(8).length], [0, 16]);
  assert.deepEqual([h.replyTo(10).error, h.replyTo(10).length], [0, 32]);
  const st = h.replyTo(12);
  assert.equal(st.length, 16 + 80);
  assert.equal(st.body.readUInt32LE(44), 255, "namelen");
});

test("errors map to errno: FuseError, Node fs errors, errno-named errors; others are EIO and reported", () => {
  const cases: [unknown, number, boolean][] = [
    [new FuseError("EACCES"), -EACCES, false],
    [
      (() => {
        try {
          fs.statSync("/definitely/not/here");
        } catch (e) {
          return e;
        }
      })(),
      -ENOENT,
      false,
    ],
    [Object.assign(new Error("lock wait"), { code: "ELOCKINTR", errno: "EINTR" }), -EINTR, false],
    [new Error("a bug"), -EIO, true],
    ["a string", -EIO, true],
  ];
  for (const [err, errno, reported] of cases) {
    const h = harness({
      getattr: () => {
        throw err;
      },
    });
    h.send(request(Opcode.GETATTR, 2, 1, Buffer.alloc(16)));
    assert.equal(h.replyTo(2).error, errno, String(err));
    assert.equal(h.errors.length, reported ? 1 : 0);
  }
});

test("a handler returning garbage gets EIO and a report, not a malformed reply", () => {
  const h = harness({ getattr: () => ({}) as never, write: () => -1 });
  h.send(request(Opcode.GETATTR, 2, 1, Buffer.alloc(16)));
  h.send(
    request(
      Opcode.WRITE,
      4,
      1,
      new Body().u64(1).u64(0).u32(1).u32(0).u64(0).u32(0).u32(0).bytes(Buffer.from("x")).build(),
    ),
  );
  assert.equal(h.replyTo(2).error, -EIO);
  assert.equal(h.replyTo(4).error, -EIO);
  assert.equal(h.errors.length, 2);
});

test("malformed requests: a bad header is dropped and reported; a name without NUL answers EINVAL", () => {
  const h = harness({ lookup: () => null });
  const bad = request(Opcode.LOOKUP, 2, 1, Buffer.from("abc\0"));
  bad.writeUInt32LE(999, 0);
  h.send(bad);
  assert.equal(h.replies.length, 0);
  h.send(request(Opcode.LOOKUP, 4, 1, Buffer.from("abc")));
  assert.equal(h.replyTo(4).error, -EINVAL);
  assert.equal(h.errors.length, 2);
});

test("FORGET and BATCH_FORGET call forget with exact counts and are never answered", () => {
  const forgotten: [number, number][] = [];
  const h = harness({ forget: (id, n) => void forgotten.push([id, n]) });
  h.send(request(Opcode.FORGET, 2, 7, new Body().u64(3).build()));
  h.send(
    request(
      Opcode.BATCH_FORGET,
      4,
      0,
      new Body()
        .u32(2)
        .u32(0)
        .u64(8)
        .u64(1)
        .u64(2 ** 40)
        .u64(5)
        .build(),
    ),
  );
  assert.deepEqual(forgotten, [
    [7, 3],
    [8, 1],
    [2 ** 40, 5],
  ]);
  assert.equal(h.replies.length, 0);
});

function lockBody(fh: number, owner: bigint, start: bigint, end: bigint, type: number, pid: number): Buffer {
  return new Body().u64(fh).u64(owner).u64(start).u64(end).u32(type).u32(pid).u32(0).u32(0).build();
}

test("GETLK: 64-bit owner exact, OFFSET_MAX in and out, never 2^63 in a reply", () => {
  const seen: LockRequest[] = [];
  const holders: (FileLock | null)[] = [
    { start: 100n, end: OFFSET_MAX, type: "write", pid: 77 },
    { start: 0n, end: 2n ** 63n, type: "read", pid: 78 },
    null,
  ];
  const h = harness({ getlk: (_c, _id, lock) => (seen.push(lock), holders[seen.length - 1]) });
  const owner = 0xfedc_ba98_7654_3210n;
  for (let i = 0; i < 3; i++)
    h.send(request(Opcode.GETLK, 2 + 2 * i, 5, lockBody(9, owner, 10n, OFFSET_MAX, 1, 4242)));
  assert.equal(seen[0].owner, owner);
  assert.equal(seen[0].end, OFFSET_MAX);
  assert.deepEqual(
    [seen[0].start, seen[0].type, seen[0].pid, seen[0].fh, seen[0].wait],
    [10n, "write", 4242, 9, false],
  );
  const r0 = h.replyTo(2).body;
  assert.equal(r0.length, 24);
  assert.deepEqual(
    [r0.readBigUInt64LE(0), r0.readBigUInt64LE(8), r0.readUInt32LE(16), r0.readUInt32LE(20)],
    [100n, OFFSET_MAX, 1, 77],
  );
  assert.equal(h.replyTo(4).body.readBigUInt64LE(8), OFFSET_MAX, "2^63 clamped to OFFSET_MAX");
  assert.equal(h.replyTo(4).body.readUInt32LE(16), 0, "F_RDLCK");
  assert.equal(h.replyTo(6).body.readUInt32LE(16), 2, "no conflict → F_UNLCK");
});

test("SETLKW: an INTERRUPT aborts the waiting handler's signal and the reply is EINTR", async () => {
  const waits: RequestContext[] = [];
  const h = harness({
    setlk: (ctx, _id, lock) => {
      if (!lock.wait) throw new FuseError("EAGAIN");
      waits.push(ctx);
      return new Promise<void>((_, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error)),
      );
    },
  });
  h.send(request(Opcode.SETLK, 2, 5, lockBody(1, 1n, 0n, 0n, 1, 1)));
  assert.equal(h.replyTo(2).error, -11, "EAGAIN without waiting");
  const held = h.send(request(Opcode.SETLKW, 4, 5, lockBody(1, 1n, 0n, 0n, 1, 1)));
  assert.ok(held instanceof Promise);
  assert.equal(h.dispatcher.inFlightCount, 1);
  h.send(request(Opcode.INTERRUPT, 5, 0, new Body().u64(4).build()));
  await held;
  assert.equal(h.replyTo(4).error, -EINTR);
  assert.equal(h.replies.filter((r) => r.unique === 5).length, 0, "INTERRUPT itself is never answered");
  assert.equal(h.dispatcher.inFlightCount, 0);
});

test("an INTERRUPT that arrives before its request is remembered: the handler starts aborted", async () => {
  let abortedOnEntry: boolean | undefined;
  const h = harness({
    setlk: (ctx) => {
      abortedOnEntry = ctx.signal.aborted;
      return Promise.reject(new FuseError("EINTR"));
    },
  });
  h.send(request(Opcode.INTERRUPT, 9, 0, new Body().u64(8).build()));
  await h.send(request(Opcode.SETLKW, 8, 5, lockBody(1, 1n, 0n, 0n, 1, 1)));
  assert.equal(abortedOnEntry, true);
  assert.equal(h.replyTo(8).error, -EINTR);
});

test("replies go out in the order handlers finish; a synchronous one is not held up by a slow one", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = harness({
    fsync: async (_c, nodeId) => {
      if (nodeId === 1) await gate;
    },
    getattr: () => ({ attr: ATTR }),
  });
  const slow = h.send(request(Opcode.FSYNC, 2, 1, Buffer.alloc(16)));
  const fast = h.send(request(Opcode.FSYNC, 4, 2, Buffer.alloc(16)));
  h.send(request(Opcode.GETATTR, 6, 2, Buffer.alloc(16)));
  await fast;
  assert.deepEqual(
    h.replies.map((r) => r.unique),
    [6, 4],
  );
  release();
  await slow;
  assert.deepEqual(
    h.replies.map((r) => r.unique),
    [6, 4, 2],
  );
});

test("WRITE: data is passed without a copy; an async handler holds the buffer until it settles", async () => {
  const got: string[] = [];
  let later!: () => void;
  const h = harness({
    write: (_c, _id, fh, offset, data, info) => {
      got.push(`${fh}@${offset}:${data.toString()}:${info.fromCache}:${info.lockOwner}`);
      if (fh === 2) return new Promise<number>((r) => (later = () => r(data.length)));
      return data.length;
    },
  });
  const body = (fh: number, flags: number) =>
    new Body()
      .u64(fh)
      .u64(2 ** 33)
      .u32(5)
      .u32(flags)
      .u64(99)
      .u32(2)
      .u32(0)
      .bytes(Buffer.from("hello"))
      .build();
  assert.equal(h.send(request(Opcode.WRITE, 2, 3, body(1, 1 | 2))), undefined);
  const hold = h.send(request(Opcode.WRITE, 4, 3, body(2, 0)));
  assert.ok(hold instanceof Promise);
  later();
  await hold;
  assert.deepEqual(got, [`1@${2 ** 33}:hello:true:99`, `2@${2 ** 33}:hello:false:undefined`]);
  for (const u of [2, 4]) {
    assert.equal(h.replyTo(u).length, 24);
    assert.equal(h.replyTo(u).body.readUInt32LE(0), 5);
  }
});

test("READ: the reply carries at most `size` bytes after the header", () => {
  const h = harness({ read: (_c, _id, _fh, offset, size) => Buffer.alloc(size + 10, offset % 256) });
  h.send(request(Opcode.READ, 2, 3, new Body().u64(1).u64(7).u32(4096).u32(0).u64(0).u32(0).u32(0).build()));
  const r = h.replyTo(2);
  assert.equal(r.length, 16 + 4096);
  assert.equal(r.body.length, 4096);
  assert.equal(r.body[0], 7);
});

test("READDIR: records padded to 8 bytes with ino, next offset, type; a full listing refuses entries", () => {
  let refused = 0;
  const h = harness({
    readdir: (_c, _id, _fh, offset, out) => {
      const names = ["a", "bbbbbbbbb", "c".repeat(255)];
      for (let i = offset; i < names.length; i++) {
        if (!out.add(names[i], { ino: 100 + i, mode: i === 1 ? 0o40755 : 0o100644 }, i + 1)) {
          refused++;
          break;
        }
      }
    },
  });
  h.send(request(Opcode.READDIR, 2, 1, new Body().u64(1).u64(0).u32(80).u32(0).u64(0).u32(0).u32(0).build()));
  const b = h.replyTo(2).body;
  assert.equal(b.length, 32 + 40, "a: 24+1 → 32, bbbbbbbbb: 24+9 → 40; the 255-byte name does not fit");
  assert.equal(refused, 1);
  assert.deepEqual(
    [Number(b.readBigUInt64LE(0)), Number(b.readBigUInt64LE(8)), b.readUInt32LE(16), b.readUInt32LE(20)],
    [100, 1, 1, 8],
  );
  assert.equal(b.toString("utf8", 24, 25), "a");
  assert.deepEqual(
    [Number(b.readBigUInt64LE(32)), Number(b.readBigUInt64LE(40)), b.readUInt32LE(48), b.readUInt32LE(52)],
    [101, 2, 9, 4],
  );
});

test("READDIRPLUS: entry_out then dirent per record", () => {
  const h = harness(
    { readdirplus: (_c, _id, _fh, _off, out) => void out.add("f", { nodeId: 12, attr: ATTR }, 1) },
    { readdirplus: true },
  );
  h.send(
    request(Opcode.READDIRPLUS, 2, 1, new Body().u64(1).u64(0).u32(4096).u32(0).u64(0).u32(0).u32(0).build()),
  );
  const b = h.replyTo(2).body;
  assert.equal(b.length, 128 + 32);
  assert.equal(Number(b.readBigUInt64LE(0)), 12);
  assert.equal(readAttr(b, 40).size, ATTR.size);
  assert.equal(Number(b.readBigUInt64LE(128)), ATTR.ino, "dirent ino");
  assert.equal(b.readUInt32LE(128 + 16), 1);
  assert.equal(b.readUInt32LE(128 + 20), 8, "DT_REG");
});

test("SETATTR decodes only the fields `valid` names; CREATE replies entry + open (144 bytes)", () => {
  let changes: unknown;
  const h = harness({
    setattr: (_c, _id, c) => ((changes = c), { attr: ATTR }),
    create: (_c, parent, name, mode, flags, umask) => ({
      nodeId: 20,
      attr: { ...ATTR, mode },
      fh: parent + name.length + flags + umask,
      keepCache: true,
      directIo: true,
    }),
  });
  // valid = MODE | SIZE | ATIME_NOW | MTIME | FH
  const valid = 1 | 8 | 128 | 32 | 64;
  const body = new Body()
    .u32(valid)
    .u32(0)
    .u64(17)
    .u64(2 ** 32 + 1)
    .u64(0)
    .u64(0)
    .u64(1000)
    .u64(0)
    .u32(0)
    .u32(5_000_000)
    .u32(0)
    .u32(0o100600)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(0)
    .build();
  h.send(request(Opcode.SETATTR, 2, 3, body));
  assert.deepEqual(changes, {
    killSuidgid: false,
    fh: 17,
    size: 2 ** 32 + 1,
    atimeMs: "now",
    mtimeMs: 1_000_005,
    mode: 0o100600,
  });
  h.send(
    request(Opcode.CREATE, 4, 1, new Body().u32(0o102).u32(0o100644).u32(0o022).u32(0).name("db").build()),
  );
  const r = h.replyTo(4);
  assert.equal(r.length, 16 + 144);
  assert.equal(Number(r.body.readBigUInt64LE(128)), 1 + 2 + 0o102 + 0o022, "fh");
  assert.equal(r.body.readUInt32LE(136), 1 | 2, "DIRECT_IO | KEEP_CACHE");
});

test("RELEASE passes the lock owner only with FLOCK_UNLOCK; FLUSH always carries it", () => {
  const seen: unknown[] = [];
  const h = harness({
    release: (_c, _id, fh, info) => void seen.push({ fh, ...info }),
    flush: (_c, _id, fh, owner) => void seen.push({ fh, owner }),
  });
  h.send(request(Opcode.RELEASE, 2, 3, new Body().u64(4).u32(2).u32(0).u64(55).build()));
  h.send(request(Opcode.RELEASE, 4, 3, new Body().u64(4).u32(2).u32(3).u64(55).build()));
  h.send(request(Opcode.FLUSH, 6, 3, new Body().u64(4).u32(0).u32(0).u64(0xffff_ffff_ffff_fffen).build()));
  assert.deepEqual(seen, [
    { fh: 4, flags: 2, lockOwner: undefined, flush: false },
    { fh: 4, flags: 2, lockOwner: 55n, flush: true },
    { fh: 4, owner: 0xffff_ffff_ffff_fffen },
  ]);
});

test("RENAME and RENAME2 pass both names, the new parent and the flags", () => {
  const seen: unknown[] = [];
  const h = harness({ rename: (_c, p, n, np, nn, flags) => void seen.push([p, n, np, nn, flags]) });
  h.send(request(Opcode.RENAME, 2, 3, new Body().u64(4).name("old").name("new").build()));
  h.send(request(Opcode.RENAME2, 4, 3, new Body().u64(5).u32(1).u32(0).name("a").name("b").build()));
  assert.deepEqual(seen, [
    [3, "old", 4, "new", 0],
    [3, "a", 5, "b", 1],
  ]);
});

test("FALLOCATE, LSEEK and FSYNC decode offsets above 4 GiB and their flags", () => {
  const seen: unknown[] = [];
  const h = harness({
    fallocate: (_c, id, fh, offset, length, mode) =>
      void seen.push(["fallocate", id, fh, offset, length, mode]),
    lseek: (_c, _id, _fh, offset, whence) => (seen.push(["lseek", offset, whence]), offset + 1),
    fsync: (_c, _id, fh, datasync) => void seen.push(["fsync", fh, datasync]),
  });
  h.send(
    request(
      Opcode.FALLOCATE,
      2,
      3,
      new Body()
        .u64(4)
        .u64(5 * 2 ** 30)
        .u64(2 ** 20)
        .u32(1)
        .u32(0)
        .build(),
    ),
  );
  h.send(
    request(
      Opcode.LSEEK,
      4,
      3,
      new Body()
        .u64(4)
        .u64(6 * 2 ** 30)
        .u32(3)
        .u32(0)
        .build(),
    ),
  );
  h.send(request(Opcode.FSYNC, 6, 3, new Body().u64(4).u32(1).u32(0).build()));
  assert.deepEqual(seen, [
    ["fallocate", 3, 4, 5 * 2 ** 30, 2 ** 20, 1],
    ["lseek", 6 * 2 ** 30, 3],
    ["fsync", 4, true],
  ]);
  assert.equal(Number(h.replyTo(4).body.readBigUInt64LE(0)), 6 * 2 ** 30 + 1);
});

test("notifications: INVAL_INODE (attributes only = offset -1), INVAL_ENTRY and DELETE layouts", () => {
  const inode = encodeInvalidateInode(2 ** 40 + 3, { offset: 4096, length: 8192 });
  assert.deepEqual(
    [inode.length, inode.readUInt32LE(0), inode.readInt32LE(4), inode.readBigUInt64LE(8)],
    [40, 40, 2, 0n],
  );
  assert.deepEqual(
    [inode.readBigUInt64LE(16), inode.readBigInt64LE(24), inode.readBigInt64LE(32)],
    [2n ** 40n + 3n, 4096n, 8192n],
  );
  const attrsOnly = encodeInvalidateInode(5, { attributesOnly: true });
  assert.equal(attrsOnly.readBigInt64LE(24), -1n);
  const all = encodeInvalidateInode(5);
  assert.deepEqual([all.readBigInt64LE(24), all.readBigInt64LE(32)], [0n, 0n]);
  const entry = encodeInvalidateEntry(1, "db-wal", true);
  assert.deepEqual(
    [
      entry.length,
      entry.readInt32LE(4),
      entry.readBigUInt64LE(16),
      entry.readUInt32LE(24),
      entry.readUInt32LE(28),
    ],
    [16 + 16 + 7, 3, 1n, 6, 1],
  );
  assert.equal(entry.toString("utf8", 32), "db-wal\0");
  const del = encodeNotifyDelete(1, 9, "x");
  assert.deepEqual(
    [del.length, del.readInt32LE(4), del.readBigUInt64LE(24), del.readUInt32LE(32)],
    [16 + 24 + 2, 6, 9n, 1],
  );
  assert.throws(() => encodeInvalidateEntry(1, "a/b"), RangeError);
  assert.throws(() => encodeInvalidateEntry(1, "x".repeat(256)), RangeError);
});

test("DESTROY calls destroy once, answers, and tells the session to end", async () => {
  let destroyed = 0;
  let ended = 0;
  const h = harness({ destroy: async () => void destroyed++ }, { onDestroy: () => void ended++ });
  h.send(request(Opcode.INIT, 2, 0, initBody(7, 45, KERNEL_FLAGS, KERNEL_FLAGS2)));
  await h.send(request(Opcode.DESTROY, 4, 0));
  assert.deepEqual([h.replyTo(4).error, h.replyTo(4).length], [0, 16]);
  assert.deepEqual([destroyed, ended], [1, 1]);
  assert.equal(h.dispatcher.destroyFileSystem(), undefined, "never twice");
  assert.equal(destroyed, 1);
});
