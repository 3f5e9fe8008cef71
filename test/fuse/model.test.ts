// Randomized model test: the same seeded sequence of file operations runs on our passthrough mount
// and on a plain directory (the reference) and must give the same results step by step — data read,
// sizes, directory listings and error codes — including sparse offsets past 4 GiB and descriptors
// kept open across rename, truncate and unlink. The seed is printed; MODEL_SEED=<n> replays one run.
// Bounded by MODEL_MS (default 25 s) of operations.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountPassthrough } from "./helpers/passthrough-mount.js";

/** mulberry32: small, seedable, good enough to pick operations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ["a", "b", "c", "d/a", "d/b", "d/e/f"];
const DIRS = ["d", "d/e"];
const GiB4 = 2 ** 32;

type Op =
  | { op: "create"; name: string }
  | { op: "write"; name: string; offset: number; len: number; fill: number }
  | { op: "read"; name: string; offset: number; len: number }
  | { op: "truncate"; name: string; size: number }
  | { op: "rename"; from: string; to: string }
  | { op: "unlink"; name: string }
  | { op: "mkdir"; name: string }
  | { op: "rmdir"; name: string }
  | { op: "readdir"; name: string }
  | { op: "stat"; name: string }
  | { op: "open"; slot: number; name: string }
  | { op: "fdwrite"; slot: number; offset: number; len: number; fill: number }
  | { op: "fdread"; slot: number; offset: number; len: number }
  | { op: "fdstat"; slot: number }
  | { op: "fdtruncate"; slot: number; size: number }
  | { op: "close"; slot: number };

function generator(rand: () => number): () => Op {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const offset = (): number => {
    const r = rand();
    if (r < 0.5) return int(70_000); // inside the first pages
    if (r < 0.8) return GiB4 - 5000 + int(10_000); // straddling 4 GiB
    return int(2 ** 41); // anywhere up to 2 TiB (sparse)
  };
  const len = (): number => (rand() < 0.7 ? 1 + int(9000) : 1 + int(200_000));
  return () => {
    const r = rand();
    if (r < 0.08) return { op: "create", name: pick(NAMES) };
    if (r < 0.26) return { op: "write", name: pick(NAMES), offset: offset(), len: len(), fill: int(256) };
    if (r < 0.42) return { op: "read", name: pick(NAMES), offset: offset(), len: len() };
    if (r < 0.5) return { op: "truncate", name: pick(NAMES), size: rand() < 0.5 ? int(70_000) : offset() };
    if (r < 0.56) return { op: "rename", from: pick([...NAMES, ...DIRS]), to: pick([...NAMES, ...DIRS]) };
    if (r < 0.6) return { op: "unlink", name: pick(NAMES) };
    if (r < 0.63) return { op: "mkdir", name: pick(DIRS) };
    if (r < 0.65) return { op: "rmdir", name: pick(DIRS) };
    if (r < 0.7) return { op: "readdir", name: pick([".", ...DIRS]) };
    if (r < 0.77) return { op: "stat", name: pick([...NAMES, ...DIRS]) };
    if (r < 0.84) return { op: "open", slot: int(3), name: pick(NAMES) };
    if (r < 0.9) return { op: "fdwrite", slot: int(3), offset: offset(), len: len(), fill: int(256) };
    if (r < 0.955) return { op: "fdread", slot: int(3), offset: offset(), len: len() };
    if (r < 0.965) return { op: "fdstat", slot: int(3) };
    if (r < 0.975) return { op: "fdtruncate", slot: int(3), size: rand() < 0.5 ? int(70_000) : offset() };
    return { op: "close", slot: int(3) };
  };
}

/** Reads up to `len` bytes at `offset` and describes them as "read N fnv H" (N bytes, FNV-1a digest). */
function readDigest(fd: number, offset: number, len: number): string {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  // A short digest keeps failure messages readable while still comparing every byte.
  let h = 0x811c9dc5;
  for (let i = 0; i < got; i++) h = Math.imul(h ^ buf[i], 16777619) >>> 0;
  return `read ${got} fnv ${h.toString(16)}`;
}

/** Every file and directory under `root` with, for files, the size and the digest of each region. */
function snapshot(root: string, regions: [number, number][]): string[] {
  return (fs.readdirSync(root, { recursive: true }) as string[]).sort().map((name) => {
    const p = path.join(root, name);
    const st = fs.statSync(p);
    if (st.isDirectory()) return `${name} dir`;
    const fd = fs.openSync(p, "r");
    try {
      return `${name} ${st.size} ${regions.map(([o, l]) => readDigest(fd, o, l)).join(",")}`;
    } finally {
      fs.closeSync(fd);
    }
  });
}

/** One side of the comparison: a root directory and the descriptors opened in it. */
class Side {
  readonly fds: (number | undefined)[] = [undefined, undefined, undefined];
  constructor(readonly root: string) {}

  #p(name: string): string {
    return path.join(this.root, name);
  }

  /** Runs `op` and describes its outcome as a string; errors become their code. */
  run(op: Op): string {
    try {
      return this.#run(op);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === undefined) throw err;
      return `error ${code}`;
    }
  }

  #fd(slot: number): number {
    const fd = this.fds[slot];
    if (fd === undefined) throw Object.assign(new Error("slot not open"), { code: "NOSLOT" });
    return fd;
  }

  #write(fd: number, offset: number, len: number, fill: number): string {
    const buf = Buffer.alloc(len, fill);
    // Vary the bytes inside the buffer so that misplaced data shows up.
    for (let i = 0; i < len; i += 4093) buf[i] = (fill + i) & 0xff;
    return `wrote ${fs.writeSync(fd, buf, 0, len, offset)}`;
  }

  #run(op: Op): string {
    switch (op.op) {
      case "create":
        fs.closeSync(fs.openSync(this.#p(op.name), "wx"));
        return "ok";
      case "write": {
        const fd = fs.openSync(this.#p(op.name), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
        try {
          return this.#write(fd, op.offset, op.len, op.fill);
        } finally {
          fs.closeSync(fd);
        }
      }
      case "read": {
        const fd = fs.openSync(this.#p(op.name), "r");
        try {
          return readDigest(fd, op.offset, op.len);
        } finally {
          fs.closeSync(fd);
        }
      }
      case "truncate":
        fs.truncateSync(this.#p(op.name), op.size);
        return "ok";
      case "rename":
        fs.renameSync(this.#p(op.from), this.#p(op.to));
        return "ok";
      case "unlink":
        fs.unlinkSync(this.#p(op.name));
        return "ok";
      case "mkdir":
        fs.mkdirSync(this.#p(op.name));
        return "ok";
      case "rmdir":
        fs.rmdirSync(this.#p(op.name));
        return "ok";
      case "readdir":
        return fs
          .readdirSync(this.#p(op.name), { withFileTypes: true })
          .map((d) => `${d.name}${d.isDirectory() ? "/" : ""}`)
          .sort()
          .join(" ");
      case "stat": {
        const st = fs.statSync(this.#p(op.name));
        return st.isDirectory() ? "dir" : `file size ${st.size} nlink ${st.nlink}`;
      }
      case "open": {
        const old = this.fds[op.slot];
        if (old !== undefined) fs.closeSync(old);
        this.fds[op.slot] = undefined;
        this.fds[op.slot] = fs.openSync(this.#p(op.name), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
        return "ok";
      }
      case "fdwrite":
        return this.#write(this.#fd(op.slot), op.offset, op.len, op.fill);
      case "fdread":
        return readDigest(this.#fd(op.slot), op.offset, op.len);
      case "fdstat": {
        const st = fs.fstatSync(this.#fd(op.slot));
        return `file size ${st.size} nlink ${st.nlink}`;
      }
      case "fdtruncate":
        fs.ftruncateSync(this.#fd(op.slot), op.size);
        return "ok";
      case "close":
        fs.closeSync(this.#fd(op.slot));
        this.fds[op.slot] = undefined;
        return "ok";
    }
  }

  closeAll(): void {
    for (const fd of this.fds) if (fd !== undefined) fs.closeSync(fd);
    this.fds.fill(undefined);
  }
}

test("the passthrough mount behaves like a plain directory under random operations", async (t) => {
  const seed =
    process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) : (Math.random() * 2 ** 32) >>> 0;
  const budgetMs = Number(process.env.MODEL_MS ?? 25_000);
  t.diagnostic(`MODEL_SEED=${seed}`);
  console.log(`model test: MODEL_SEED=${seed}`);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "fuse-model-"));
  const dirs = { plain: path.join(base, "plain"), src: path.join(base, "src"), mnt: path.join(base, "mnt") };
  for (const d of Object.values(dirs)) fs.mkdirSync(d);
  const mount = await mountPassthrough(dirs.src, dirs.mnt);
  t.after(async () => {
    await mount.unmount();
    fs.rmSync(base, { recursive: true, force: true });
  });

  const rand = prng(seed);
  const next = generator(rand);
  const deadline = Date.now() + budgetMs;
  let total = 0;
  const tally = new Map<string, number>(); // "op ok|error CODE" -> count, to show what the run exercised
  for (let round = 0; Date.now() < deadline; round++) {
    // Each round starts from an empty directory so that one sequence stays short enough to read.
    const sub = `r${round}`;
    fs.mkdirSync(path.join(dirs.plain, sub));
    fs.mkdirSync(path.join(dirs.mnt, sub));
    const plain = new Side(path.join(dirs.plain, sub));
    const fuse = new Side(path.join(dirs.mnt, sub));
    const history: string[] = [];
    const regions: [number, number][] = []; // byte ranges this round wrote or truncated at
    try {
      for (let i = 0; i < 150 && Date.now() < deadline; i++, total++) {
        const op = next();
        if (op.op === "write" || op.op === "fdwrite") regions.push([op.offset, op.len]);
        if (op.op === "truncate" || op.op === "fdtruncate") regions.push([Math.max(0, op.size - 4096), 8192]);
        const want = plain.run(op);
        const got = fuse.run(op);
        history.push(`${JSON.stringify(op)} -> ${want}`);
        const kind = `${op.op} ${want.startsWith("error") ? want : "ok"}`;
        tally.set(kind, (tally.get(kind) ?? 0) + 1);
        assert.equal(
          got,
          want,
          `seed ${seed} round ${round} step ${i}: ${JSON.stringify(op)}\nhistory:\n${history.slice(-25).join("\n")}`,
        );
      }
    } finally {
      plain.closeAll();
      fuse.closeAll();
    }
    // The backing directory must hold exactly what the reference holds (no stray or lost files, the
    // same bytes where this round wrote), read directly from disk rather than through the mount.
    assert.deepEqual(
      snapshot(path.join(dirs.src, sub), regions),
      snapshot(path.join(dirs.plain, sub), regions),
      `seed ${seed} round ${round}: backing directory differs`,
    );
    fs.rmSync(path.join(dirs.mnt, sub), { recursive: true });
    fs.rmSync(path.join(dirs.plain, sub), { recursive: true });
  }
  t.diagnostic(
    `${total} operations: ${[...tally]
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join(", ")}`,
  );
  assert.ok(total > 100, `only ${total} operations ran`);
});
