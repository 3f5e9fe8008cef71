// The POSIX record-lock table: scenario tests, then property tests against a naive reference that
// keeps one lock state per (owner, byte) over a few small offsets, with the last "byte" standing for
// everything up to OFFSET_MAX so that to-EOF locks are modelled too.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  LockTable,
  LockTableError,
  OFFSET_MAX,
  NO_OWNER,
  lockTypeFromPosix,
  posixFromLockType,
  type LockRecord,
  type LockType,
} from "../../src/fuse/lock-table.js";

const A = 0x1111_2222_3333_4444n;
const B = 0x1111_2222_3333_4445n;
const C = 7n;

function ranges(locks: LockRecord[]): string[] {
  return locks.map((l) => `${l.owner}:${l.type}[${l.start},${l.end}]`);
}

test("read locks of different owners coexist; a write conflicts with either", () => {
  const t = new LockTable();
  assert.equal(t.set(A, 100, 0n, 9n, "read"), true);
  assert.equal(t.set(B, 200, 5n, 14n, "read"), true);
  assert.equal(t.set(C, 300, 9n, 9n, "write"), false);
  const holder = t.test(C, 9n, 9n, "write");
  assert.deepEqual(holder, { owner: A, pid: 100, start: 0n, end: 9n, type: "read" });
  assert.deepEqual(t.test(C, 12n, 20n, "write"), { owner: B, pid: 200, start: 5n, end: 14n, type: "read" });
  assert.equal(t.test(C, 15n, 20n, "write"), null);
  assert.equal(t.test(C, 0n, 100n, "read"), null, "reads never conflict with reads");
  assert.equal(t.test(C, 0n, 100n, "unlock"), null);
  assert.equal(t.lockCount, 2);
});

test("an owner's own locks never conflict: upgrade and downgrade in place", () => {
  const t = new LockTable();
  assert.ok(t.set(A, 1, 0n, 9n, "read"));
  assert.ok(t.set(A, 1, 0n, 9n, "write"), "sole reader upgrades");
  assert.ok(t.set(B, 2, 10n, 10n, "read"));
  assert.equal(t.set(B, 2, 5n, 10n, "read"), false, "A's write blocks B's read");
  assert.ok(t.set(A, 1, 0n, 9n, "read"), "downgrade");
  assert.ok(t.set(B, 2, 5n, 10n, "read"));
  assert.equal(t.set(A, 1, 0n, 9n, "write"), false, "upgrade refused while B reads an overlapping byte");
  assert.deepEqual(ranges(t.locksOf(A)), [`${A}:read[0,9]`], "a refused set changes nothing");
});

test("unlocking a sub-range splits a lock; a different type in the middle splits it in three", () => {
  const t = new LockTable();
  assert.ok(t.set(A, 1, 0n, 99n, "write"));
  assert.ok(t.set(A, 1, 40n, 59n, "unlock"));
  assert.deepEqual(ranges(t.holders()), [`${A}:write[0,39]`, `${A}:write[60,99]`]);
  assert.ok(t.set(A, 1, 10n, 19n, "read"));
  assert.deepEqual(ranges(t.holders()), [
    `${A}:write[0,9]`,
    `${A}:read[10,19]`,
    `${A}:write[20,39]`,
    `${A}:write[60,99]`,
  ]);
  assert.ok(t.set(B, 2, 45n, 50n, "write"), "the unlocked hole is free for others");
  assert.ok(t.set(A, 1, 0n, 99n, "unlock"));
  assert.deepEqual(ranges(t.holders()), [`${B}:write[45,50]`]);
});

test("same-type locks of one owner merge when they overlap or touch; other types and owners do not", () => {
  const t = new LockTable();
  assert.ok(t.set(A, 1, 0n, 9n, "read"));
  assert.ok(t.set(A, 5, 10n, 19n, "read"));
  assert.deepEqual(t.locksOf(A), [{ owner: A, pid: 5, start: 0n, end: 19n, type: "read" }]);
  assert.ok(t.set(A, 1, 20n, 29n, "write"));
  assert.ok(t.set(B, 2, 30n, 39n, "write"));
  assert.deepEqual(ranges(t.holders()), [`${A}:read[0,19]`, `${A}:write[20,29]`, `${B}:write[30,39]`]);
  assert.ok(t.set(A, 1, 25n, 30n, "unlock") && t.set(A, 1, 0n, 0n, "read"));
  assert.deepEqual(ranges(t.locksOf(A)), [`${A}:read[0,19]`, `${A}:write[20,24]`]);
  assert.ok(t.set(A, 1, 5n, 22n, "write"), "a write over a read and a write merges with the write");
  assert.deepEqual(ranges(t.locksOf(A)), [`${A}:read[0,4]`, `${A}:write[5,24]`]);
});

test("offsets are exact up to OFFSET_MAX: neighbours past 2^53 stay apart, to-EOF ends echo 2^63-1", () => {
  const t = new LockTable();
  const big = 2n ** 53n;
  assert.ok(t.set(A, 1, big + 1n, big + 1n, "write"));
  assert.ok(t.set(B, 2, big, big, "write"), "2^53 and 2^53+1 are different bytes");
  assert.ok(t.set(B, 2, big + 2n, big + 2n, "write"));
  assert.equal(t.set(B, 2, big + 1n, big + 1n, "write"), false);
  assert.ok(t.set(C, 3, OFFSET_MAX - 1n, OFFSET_MAX, "write"));
  const holder = t.test(A, OFFSET_MAX, OFFSET_MAX, "read");
  assert.equal(holder?.end, OFFSET_MAX);
  assert.equal(holder?.end, 0x7fff_ffff_ffff_ffffn);
  assert.ok(t.set(A, 1, 0x4000_0000n, OFFSET_MAX, "read") === false);
  assert.ok(t.set(A, 1, 0x4000_0000n, OFFSET_MAX - 2n, "read") === false, "B holds bytes near 2^53");
});

test("no-op requests (an unlock of nothing held, a lock already held) keep every record as it was", () => {
  const t = new LockTable();
  t.set(A, 1, 0n, 9n, "read");
  t.set(B, 2, 20n, 20n, "write");
  const before = t.holders();
  assert.equal(t.set(A, 1, 10n, 19n, "unlock"), true);
  assert.equal(t.set(C, 3, 0n, OFFSET_MAX, "unlock"), true);
  assert.equal(t.set(A, 1, 2n, 5n, "read"), true);
  assert.equal(t.set(B, 2, 20n, 20n, "write"), true);
  const after = t.holders();
  assert.equal(after.length, before.length);
  after.forEach((l, i) => assert.equal(l, before[i], "the same record, not a rebuilt one"));
  // Not a no-op: another type on part of a held range, or a range the held lock does not cover.
  assert.equal(t.set(A, 1, 2n, 5n, "write"), true);
  assert.equal(t.set(B, 2, 20n, 21n, "write"), true);
  assert.deepEqual(ranges(t.holders()), [
    `${A}:read[0,1]`,
    `${A}:write[2,5]`,
    `${A}:read[6,9]`,
    `${B}:write[20,21]`,
  ]);
});

test("owners are compared on all 64 bits", () => {
  const t = new LockTable();
  const low = 0x0000_0001_0000_0005n;
  const high = 0xffff_ffff_0000_0005n;
  assert.ok(t.set(low, 1, 0n, 0n, "write"));
  assert.equal(t.set(high, 2, 0n, 0n, "write"), false);
  assert.equal(t.set(0x0000_0002_0000_0005n, 2, 0n, 0n, "read"), false);
  assert.equal(t.test(NO_OWNER, 0n, 0n, "read")?.owner, low);
});

test("invalid ranges and types throw a coded error", () => {
  const t = new LockTable();
  const bad: [bigint, bigint][] = [
    [-1n, 5n],
    [5n, 4n],
    [0n, OFFSET_MAX + 1n],
  ];
  for (const [s, e] of bad) {
    assert.throws(
      () => t.set(A, 1, s, e, "read"),
      (err: unknown) => err instanceof LockTableError && err.code === "ELOCKRANGE" && err.errno === "EINVAL",
    );
    assert.throws(() => t.test(A, s, e, "read"), { code: "ELOCKRANGE" });
  }
  assert.throws(() => t.set(A, 1, 0n, 1n, "exclusive" as LockType), { code: "ELOCKTYPE" });
  assert.throws(() => t.set(A, 1, 0 as unknown as bigint, 1n, "read"), { code: "ELOCKRANGE" });
  assert.throws(() => lockTypeFromPosix(3), { code: "ELOCKTYPE" });
  assert.deepEqual([0, 1, 2].map(lockTypeFromPosix), ["read", "write", "unlock"]);
  assert.deepEqual((["read", "write", "unlock"] as const).map(posixFromLockType), [0, 1, 2]);
  assert.equal(t.lockCount, 0);
});

test("releaseOwner drops only that owner's locks", () => {
  const t = new LockTable();
  t.set(A, 1, 0n, 9n, "read");
  t.set(A, 1, 20n, 29n, "write");
  t.set(B, 2, 5n, 14n, "read");
  assert.equal(t.releaseOwner(A), true);
  assert.equal(t.releaseOwner(A), false);
  assert.deepEqual(ranges(t.holders()), [`${B}:read[5,14]`]);
});

test("SQLite's rollback-journal lock sequence between two connections", () => {
  const PENDING = 0x4000_0000n;
  const RESERVED = PENDING + 1n;
  const SHARED_FIRST = PENDING + 2n;
  const SHARED_LAST = SHARED_FIRST + 509n;
  const t = new LockTable();
  // Reader B holds SHARED.
  assert.ok(t.set(B, 2, PENDING, PENDING, "read"));
  assert.ok(t.set(B, 2, SHARED_FIRST, SHARED_LAST, "read"));
  assert.ok(t.set(B, 2, PENDING, PENDING, "unlock"));
  // Writer A: SHARED, RESERVED, PENDING, then EXCLUSIVE fails while B reads.
  assert.ok(t.set(A, 1, PENDING, PENDING, "read"));
  assert.ok(t.set(A, 1, SHARED_FIRST, SHARED_LAST, "read"));
  assert.ok(t.set(A, 1, PENDING, PENDING, "unlock"));
  assert.ok(t.set(A, 1, RESERVED, RESERVED, "write"));
  assert.ok(t.set(A, 1, PENDING, PENDING, "write"));
  assert.equal(t.set(A, 1, SHARED_FIRST, SHARED_LAST, "write"), false);
  assert.equal(t.set(C, 3, PENDING, PENDING, "read"), false, "new readers are kept out by PENDING");
  assert.equal(t.test(A, SHARED_FIRST, SHARED_LAST, "write")?.owner, B);
  t.releaseOwner(B);
  assert.ok(t.set(A, 1, SHARED_FIRST, SHARED_LAST, "write"));
  assert.deepEqual(ranges(t.holders()), [
    `${A}:write[${PENDING},${SHARED_LAST}]`, // PENDING, RESERVED and SHARED merge into one write lock
  ]);
});

test("waitFor resolves when the holder unlocks, with the lock already held", async () => {
  const t = new LockTable();
  t.set(A, 1, 0n, 9n, "write");
  const ac = new AbortController();
  let done = false;
  const p = t.waitFor(B, 2, 5n, 5n, "read", ac.signal).then(() => (done = true));
  await Promise.resolve();
  assert.equal(done, false);
  assert.equal(t.waiterCount, 1);
  t.set(A, 1, 0n, 4n, "unlock");
  await Promise.resolve();
  assert.equal(done, false, "byte 5 is still written by A");
  t.set(A, 1, 5n, 5n, "read"); // a downgrade frees it for readers
  await p;
  assert.equal(t.waiterCount, 0);
  assert.deepEqual(t.locksOf(B), [{ owner: B, pid: 2, start: 5n, end: 5n, type: "read" }]);
});

test("waitFor grants at once when free and serves waiters first-come first-served", async () => {
  const t = new LockTable();
  const signal = new AbortController().signal;
  await t.waitFor(A, 1, 0n, 0n, "write", signal);
  const order: string[] = [];
  const pb = t.waitFor(B, 2, 0n, 0n, "write", signal).then(() => order.push("B"));
  const pc = t.waitFor(C, 3, 0n, 0n, "write", signal).then(() => order.push("C"));
  t.releaseOwner(A);
  await pb;
  assert.deepEqual(order, ["B"]);
  assert.equal(t.test(NO_OWNER, 0n, 0n, "read")?.owner, B);
  t.set(B, 2, 0n, 0n, "unlock");
  await pc;
  assert.deepEqual(order, ["B", "C"]);
});

test("a younger waiter whose range is free is not held back by an older blocked one", async () => {
  const t = new LockTable();
  const signal = new AbortController().signal;
  t.set(A, 1, 0n, 10n, "write");
  t.set(C, 3, 0n, 0n, "read");
  const pb = t.waitFor(B, 2, 0n, 0n, "write", signal); // blocked by A and C
  let granted = false;
  const pc = t.waitFor(C, 3, 10n, 10n, "write", signal).then(() => (granted = true));
  t.set(A, 1, 5n, 10n, "unlock");
  await pc;
  assert.equal(granted, true);
  assert.equal(t.waiterCount, 1);
  t.releaseOwner(A);
  t.releaseOwner(C);
  await pb;
});

test("an aborted wait rejects with ELOCKINTR and leaves the queue", async () => {
  const t = new LockTable();
  t.set(A, 1, 0n, 0n, "write");
  const ac = new AbortController();
  const p = t.waitFor(B, 2, 0n, 0n, "read", ac.signal);
  ac.abort(new Error("INTERRUPT"));
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof LockTableError);
    assert.equal(err.code, "ELOCKINTR");
    assert.equal(err.errno, "EINTR");
    return true;
  });
  assert.equal(t.waiterCount, 0);
  t.releaseOwner(A);
  assert.deepEqual(t.locksOf(B), [], "an aborted waiter is never granted later");
  // Already aborted: rejected at once if blocked, granted if free.
  t.set(A, 1, 0n, 0n, "write");
  await assert.rejects(t.waitFor(B, 2, 0n, 0n, "read", ac.signal), { code: "ELOCKINTR" });
  await t.waitFor(B, 2, 1n, 1n, "read", ac.signal);
  assert.equal(t.isEmpty, false);
  // Aborting after the grant is harmless.
  const late = new AbortController();
  const q = t.waitFor(C, 3, 0n, 0n, "read", late.signal);
  t.releaseOwner(A);
  late.abort();
  await q;
  assert.equal(t.locksOf(C).length, 1);
});

// ---- property tests against a byte-map reference ----

const N = 8; // modelled offsets base+0 .. base+N-1; index N stands for [base+N, OFFSET_MAX]
type Cell = "read" | "write" | undefined;

/** Naive reference: per owner, one lock state per modelled byte. */
class ByteMapReference {
  readonly cells = new Map<bigint, Cell[]>();

  #row(owner: bigint): Cell[] {
    let row = this.cells.get(owner);
    if (row === undefined) this.cells.set(owner, (row = new Array<Cell>(N + 1).fill(undefined)));
    return row;
  }

  conflicts(owner: bigint, s: number, e: number, type: LockType): boolean {
    if (type === "unlock") return false;
    for (const [o, row] of this.cells) {
      if (o === owner) continue;
      for (let i = s; i <= e; i++)
        if (row[i] !== undefined && (type === "write" || row[i] === "write")) return true;
    }
    return false;
  }

  set(owner: bigint, s: number, e: number, type: LockType): boolean {
    if (this.conflicts(owner, s, e, type)) return false;
    const row = this.#row(owner);
    for (let i = s; i <= e; i++) row[i] = type === "unlock" ? undefined : type;
    return true;
  }

  release(owner: bigint): void {
    this.cells.delete(owner);
  }

  /** Canonical lock list: each owner's maximal same-type runs, sorted like LockTable.holders(). */
  canonical(base: bigint): string[] {
    const out: { start: bigint; text: string; owner: bigint }[] = [];
    for (const [owner, row] of this.cells) {
      for (let i = 0; i <= N;) {
        const type = row[i];
        let j = i;
        while (j + 1 <= N && row[j + 1] === type) j++;
        if (type !== undefined) {
          const start = base + BigInt(i);
          const end = j === N ? OFFSET_MAX : base + BigInt(j);
          out.push({ start, owner, text: `${owner}:${type}[${start},${end}]` });
        }
        i = j + 1;
      }
    }
    out.sort((a, b) => (a.start !== b.start ? (a.start < b.start ? -1 : 1) : a.owner < b.owner ? -1 : 1));
    return out.map((x) => x.text);
  }
}

const OWNERS = [A, B, C, 0xffff_ffff_ffff_fff0n];
const rangeArb = fc
  .tuple(fc.integer({ min: 0, max: N - 1 }), fc.integer({ min: 0, max: N }))
  .map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]));
const typeArb = fc.constantFrom<LockType>("read", "write", "unlock");
const opArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("set" as const),
      owner: fc.constantFrom(...OWNERS),
      range: rangeArb,
      type: typeArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("test" as const),
      owner: fc.constantFrom(...OWNERS),
      range: rangeArb,
      type: typeArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("release" as const), owner: fc.constantFrom(...OWNERS) }),
  },
);

function offsets(base: bigint, [s, e]: [number, number]): [bigint, bigint] {
  return [base + BigInt(s), e === N ? OFFSET_MAX : base + BigInt(e)];
}

for (const base of [0n, 2n ** 53n - 3n, OFFSET_MAX - 100n]) {
  test(`set/test/releaseOwner match the byte-map reference (offsets from ${base})`, () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const table = new LockTable();
        const ref = new ByteMapReference();
        for (const o of ops) {
          if (o.op === "release") {
            table.releaseOwner(o.owner);
            ref.release(o.owner);
          } else if (o.op === "set") {
            const [s, e] = offsets(base, o.range);
            assert.equal(
              table.set(o.owner, 1, s, e, o.type),
              ref.set(o.owner, o.range[0], o.range[1], o.type),
            );
          } else {
            const [s, e] = offsets(base, o.range);
            const got = table.test(o.owner, s, e, o.type);
            assert.equal(got !== null, ref.conflicts(o.owner, o.range[0], o.range[1], o.type));
            if (got !== null) {
              assert.notEqual(got.owner, o.owner);
              assert.ok(got.start <= e && got.end >= s, "the reported lock overlaps the range");
              assert.ok(o.type === "write" || got.type === "write");
              assert.ok(ranges(table.holders()).includes(ranges([got])[0]), "the reported lock is held");
            }
          }
          // Locks are canonical: one owner's locks never overlap and same-type ones never touch, so
          // the list equals the reference's maximal runs exactly.
          assert.deepEqual(ranges(table.holders()), ref.canonical(base));
        }
      }),
      { numRuns: 300 },
    );
  });
}

test("waitFor: no pending waiter is ever grantable, and grants follow the FIFO reference", async () => {
  const waitOpArb = fc.oneof(
    opArb,
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("wait" as const),
        owner: fc.constantFrom(...OWNERS),
        range: rangeArb,
        type: fc.constantFrom<LockType>("read", "write"),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("abort" as const), pick: fc.nat() }) },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(waitOpArb, { maxLength: 40 }), async (ops) => {
      const table = new LockTable();
      const ref = new ByteMapReference();
      type Pending = {
        owner: bigint;
        range: [number, number];
        type: LockType;
        ac: AbortController;
        state: string;
      };
      let pending: Pending[] = []; // reference queue, oldest first
      const all: Pending[] = [];
      const refWake = (): void => {
        for (let progress = true; progress;) {
          progress = false;
          for (const w of pending) {
            if (w.state === "waiting" && ref.set(w.owner, w.range[0], w.range[1], w.type)) {
              w.state = "granted-ref";
              progress = true;
            }
          }
          pending = pending.filter((w) => w.state === "waiting");
        }
      };
      for (const o of ops) {
        if (o.op === "wait") {
          const [s, e] = offsets(0n, o.range);
          const w: Pending = {
            owner: o.owner,
            range: o.range,
            type: o.type,
            ac: new AbortController(),
            state: "waiting",
          };
          all.push(w);
          const p = table.waitFor(o.owner, 1, s, e, o.type, w.ac.signal);
          p.then(
            () => (w.state = w.state === "granted-ref" ? "ok" : "granted-early"),
            () => (w.state = w.state === "aborted-ref" ? "aborted" : "rejected-wrongly"),
          );
          if (ref.set(o.owner, o.range[0], o.range[1], o.type)) {
            w.state = "granted-ref";
            refWake(); // a granted request may downgrade the owner's write lock and free others
          } else pending.push(w);
        } else if (o.op === "abort") {
          const waiting = pending.filter((w) => w.state === "waiting");
          if (waiting.length > 0) {
            const w = waiting[o.pick % waiting.length];
            w.state = "aborted-ref";
            pending = pending.filter((x) => x !== w);
            w.ac.abort();
          }
        } else if (o.op === "set") {
          const [s, e] = offsets(0n, o.range);
          assert.equal(table.set(o.owner, 1, s, e, o.type), ref.set(o.owner, o.range[0], o.range[1], o.type));
          refWake();
        } else if (o.op === "release") {
          table.releaseOwner(o.owner);
          ref.release(o.owner);
          refWake();
        }
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(ranges(table.holders()), ref.canonical(0n));
        assert.equal(table.waiterCount, pending.length);
        for (const w of all)
          assert.ok(w.state === "ok" || w.state === "aborted" || w.state === "waiting", w.state);
        for (const w of pending) {
          const [s, e] = offsets(0n, w.range);
          assert.notEqual(table.test(w.owner, s, e, w.type), null, "a pending waiter must be blocked");
        }
      }
      for (const w of pending) w.ac.abort();
    }),
    { numRuns: 200 },
  );
});
