// Disk faults on this machine: a small tmpfs and an ext4 loop disk that really fill up (ENOSPC from the
// kernel, SQLITE_FULL from SQLite), and the faulty-disk FUSE process injecting delays and errnos into
// named requests. Skips (saying why) where mounting is not possible.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { PassthroughFileSystem } from "../../examples/passthrough-fs.js";
import type { RequestContext } from "../../src/fuse/index.js";
import { FaultyDisk, FaultyDiskError } from "./faulty-disk.js";
import { DiskFaultRuleError, FaultyFileSystem } from "./faulty-file-system.js";
import { isMounted } from "./mounts.js";
import { LoopDisk, mountSupport, SmallTmpfs } from "./small-disk.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

const support = mountSupport();
const skip = support.supported ? false : `cannot mount here: ${support.reason}`;
const fuseSkip = skip !== false ? skip : fs.existsSync("/dev/fuse") ? false : "no /dev/fuse";

/** Appends `chunkBytes` at a time to `file` until the kernel refuses; returns bytes written and the errno. */
function writeUntilRefused(
  file: string,
  chunkBytes: number,
  limitBytes: number,
): { written: number; code: string } {
  const fd = fs.openSync(file, "a");
  const chunk = Buffer.alloc(chunkBytes, 7);
  let written = 0;
  try {
    while (written < limitBytes) {
      try {
        written += fs.writeSync(fd, chunk);
        fs.fsyncSync(fd);
      } catch (err) {
        return { written, code: (err as NodeJS.ErrnoException).code ?? "?" };
      }
    }
    return { written, code: "none" };
  } finally {
    fs.closeSync(fd);
  }
}

/** Inserts 4 KiB rows until SQLite refuses; returns the rows committed and SQLite's error code. */
function insertUntilFull(db: Database.Database, limitRows: number): { rows: number; code: string } {
  const insert = db.prepare("INSERT INTO blobs (data) VALUES (randomblob(4096))");
  for (let rows = 0; rows < limitRows; rows++) {
    try {
      insert.run();
    } catch (err) {
      return { rows, code: (err as { code?: string }).code ?? String(err) };
    }
  }
  return { rows: limitRows, code: "none" };
}

test(
  "tmpfs: fills up with ENOSPC, takes writes again after resize, ballast fills and frees",
  { skip },
  () => {
    const disk = SmallTmpfs.mount(256 * 1024);
    try {
      assert.ok(isMounted(disk.dir));
      const first = writeUntilRefused(path.join(disk.dir, "data"), 16 * 1024, 1 << 20);
      assert.equal(first.code, "ENOSPC");
      assert.ok(first.written <= 256 * 1024 && first.written >= 200 * 1024, `wrote ${first.written}`);
      disk.resize(512 * 1024);
      assert.equal(disk.sizeBytes, 512 * 1024);
      const second = writeUntilRefused(path.join(disk.dir, "data"), 16 * 1024, 1 << 20);
      assert.equal(second.code, "ENOSPC");
      assert.ok(second.written >= 200 * 1024, `after resize wrote ${second.written} more`);
      assert.throws(() => disk.resize(64 * 1024), /resize tmpfs/, "shrinking below what is used fails");
      fs.rmSync(path.join(disk.dir, "data"));
      const ballast = disk.fillUp(32 * 1024);
      assert.ok(disk.availableBytes() <= 32 * 1024 && ballast > 400 * 1024, `ballast ${ballast}`);
      disk.fillUp();
      assert.equal(disk.availableBytes(), 0);
      assert.throws(() => fs.writeFileSync(path.join(disk.dir, "x"), Buffer.alloc(8192)), { code: "ENOSPC" });
      disk.releaseBallast();
      fs.writeFileSync(path.join(disk.dir, "x"), Buffer.alloc(8192));
    } finally {
      disk.unmount();
    }
    assert.ok(!fs.existsSync(disk.dir), "unmount removes the mount point");
    disk.unmount(); // idempotent
  },
);

test(
  "SQLite on a full tmpfs: the commit fails with SQLITE_FULL, the database stays whole, space returns",
  { skip },
  () => {
    const disk = SmallTmpfs.mount(512 * 1024);
    try {
      for (const journalMode of ["DELETE", "WAL"]) {
        const file = path.join(disk.dir, `${journalMode}.db`);
        const db = new Database(file);
        try {
          db.pragma(`journal_mode = ${journalMode}`);
          db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)");
          const full = insertUntilFull(db, 10_000);
          assert.equal(full.code, "SQLITE_FULL", `${journalMode}: ${full.code}`);
          assert.ok(full.rows > 10, `${journalMode}: only ${full.rows} rows fitted`);
          assert.equal((db.prepare("SELECT count(*) AS n FROM blobs").get() as { n: number }).n, full.rows);
          assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
          disk.resize(disk.sizeBytes + 256 * 1024);
          assert.equal(
            insertUntilFull(db, 5).code,
            "none",
            `${journalMode}: writes succeed once space returns`,
          );
          assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
        } finally {
          db.close();
        }
        for (const suffix of ["", "-wal", "-shm", "-journal"]) fs.rmSync(file + suffix, { force: true });
      }
    } finally {
      disk.unmount();
    }
  },
);

test("loop disk: ext4 on a loop device fills up with ENOSPC and is detached on unmount", { skip }, () => {
  const disk = LoopDisk.mount(4 << 20);
  const source = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .find((line) => line.includes(` ${disk.dir} `));
  try {
    assert.match(source ?? "", / - ext4 \/dev\/loop\d+ /);
    const result = writeUntilRefused(path.join(disk.dir, "data"), 64 * 1024, 16 << 20);
    assert.equal(result.code, "ENOSPC");
    assert.ok(result.written > 1 << 20 && result.written < 4 << 20, `wrote ${result.written}`);
  } finally {
    disk.unmount();
  }
  const holder = path.dirname(disk.dir);
  const attached = execFileSync("losetup", ["-a"], { encoding: "utf8" });
  assert.ok(!attached.includes(holder), `a loop device still backs our image:\n${attached}`);
});

async function startDisk(t: test.TestContext, options: { directIo?: boolean } = {}): Promise<FaultyDisk> {
  const dir = makeTempDir("faulty-disk");
  const sourceDir = path.join(dir, "source");
  const mountDir = path.join(dir, "mnt");
  fs.mkdirSync(sourceDir);
  fs.mkdirSync(mountDir);
  const disk = await FaultyDisk.start({ sourceDir, mountDir, ...options });
  t.after(async () => {
    await disk.cleanup();
    removeTempDir(dir);
  });
  return disk;
}

test("faulty disk: delays the named op only, for the named paths", { skip: fuseSkip }, async (t) => {
  const disk = await startDisk(t);
  const file = path.join(disk.mountDir, "slow.db");
  fs.writeFileSync(file, "before");
  assert.equal(fs.readFileSync(path.join(disk.sourceDir, "slow.db"), "utf8"), "before");
  await disk.setRules([{ ops: ["fsync"], delayMs: 200, pathPattern: "\\.db$" }]);
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, "after!", 0);
    const started = performance.now();
    fs.fsyncSync(fd);
    const fsyncMs = performance.now() - started;
    assert.ok(fsyncMs >= 195, `fsync took ${fsyncMs.toFixed(0)} ms under a 200 ms delay`);
  } finally {
    fs.closeSync(fd);
  }
  assert.equal(
    fs.readFileSync(path.join(disk.sourceDir, "slow.db"), "utf8"),
    "after!",
    "a delayed op still runs",
  );
  const other = fs.openSync(path.join(disk.mountDir, "other.txt"), "w");
  fs.fsyncSync(other);
  fs.closeSync(other);
  const stats = await disk.stats();
  assert.equal(stats.injected.fsync, 1, "the fsync of other.txt did not match the path pattern");
  assert.ok((stats.requests.fsync ?? 0) >= 2);
  assert.equal(stats.injected.write, undefined);
});

test(
  "faulty disk: errnos instead of the op, limited by count, ENOSPC by path, then healed",
  { skip: fuseSkip },
  async (t) => {
    const disk = await startDisk(t);
    fs.writeFileSync(path.join(disk.mountDir, "app.log"), "kept");
    await disk.setRules([{ ops: ["write"], error: "EIO", pathPattern: "\\.log$" }]);
    assert.throws(() => fs.writeFileSync(path.join(disk.mountDir, "app.log"), "lost"), { code: "EIO" });
    assert.equal(
      fs.readFileSync(path.join(disk.sourceDir, "app.log"), "utf8"),
      "",
      "truncated by open, never written",
    );
    fs.writeFileSync(path.join(disk.mountDir, "notes.txt"), "fine");

    await disk.setRules([{ ops: ["create"], error: "ENOSPC", times: 2 }]);
    for (const name of ["a", "b"]) {
      assert.throws(() => fs.writeFileSync(path.join(disk.mountDir, name), "x"), { code: "ENOSPC" });
    }
    fs.writeFileSync(path.join(disk.mountDir, "c"), "x");
    assert.deepEqual((await disk.stats()).remaining, [0]);
    assert.ok(!fs.existsSync(path.join(disk.sourceDir, "a")), "a refused create made no file");

    fs.mkdirSync(path.join(disk.mountDir, "data"));
    await disk.fillUp("^/data/");
    assert.throws(() => fs.writeFileSync(path.join(disk.mountDir, "data", "new"), "x"), { code: "ENOSPC" });
    // fillUp replaced the rules: outside /data, and for writes to *.log, everything works again.
    fs.appendFileSync(path.join(disk.mountDir, "notes.txt"), "!");
    fs.appendFileSync(path.join(disk.mountDir, "app.log"), "back");
    await disk.clearRules();
    fs.writeFileSync(path.join(disk.mountDir, "data", "new"), "x");
    await assert.rejects(disk.setRules([{ ops: ["nosuchop" as "write"], error: "EIO" }]), FaultyDiskError);
    await assert.rejects(
      disk.setRules([{ ops: ["write"], error: "ENOTANERRNO" as "EIO" }]),
      /not an errno name/,
    );
  },
);

test(
  "faulty disk: SQLite sees SQLITE_FULL mid-commit, the database stays whole and recovers",
  { skip: fuseSkip },
  async (t) => {
    const disk = await startDisk(t);
    const db = new Database(path.join(disk.mountDir, "app.db"));
    t.after(() => db.close());
    db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)");
    assert.equal(insertUntilFull(db, 20).code, "none");
    await disk.fillUp();
    const full = insertUntilFull(db, 5);
    assert.equal(full.code, "SQLITE_FULL");
    assert.equal(full.rows, 0);
    await disk.clearRules();
    assert.equal((db.prepare("SELECT count(*) AS n FROM blobs").get() as { n: number }).n, 20);
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    assert.equal(insertUntilFull(db, 5).code, "none");
  },
);

test("faulty disk: crash leaves nothing mounted", { skip: fuseSkip }, async (t) => {
  const disk = await startDisk(t);
  assert.ok(isMounted(disk.mountDir));
  const status = await disk.crash();
  assert.equal(status.signal, "SIGKILL");
  assert.ok(!isMounted(disk.mountDir));
});

test("FaultyFileSystem: a seeded probability hits the same requests on every run; bad rules are refused", () => {
  const dir = makeTempDir("faulty-fs");
  try {
    fs.writeFileSync(path.join(dir, "f"), "x");
    const ctx = { unique: 1, uid: 0, gid: 0, pid: 1 } as unknown as RequestContext;
    const pattern = (seed: number): string => {
      const faulty = new FaultyFileSystem(new PassthroughFileSystem(dir), { seed });
      faulty.setRules([{ ops: ["getattr"], error: "EIO", probability: 0.5 }]);
      let hits = "";
      for (let i = 0; i < 40; i++) {
        try {
          faulty.fileSystem.getattr!(ctx, 1, undefined);
          hits += ".";
        } catch (err) {
          assert.equal((err as { code?: string }).code, "EIO");
          hits += "x";
        }
      }
      return hits;
    };
    assert.equal(pattern(7), pattern(7));
    assert.notEqual(pattern(7), pattern(8));
    assert.match(pattern(7), /x/);
    assert.match(pattern(7), /\./);
    const faulty = new FaultyFileSystem(new PassthroughFileSystem(dir));
    assert.ok(!("readdirplus" in faulty.fileSystem), "READDIRPLUS is not offered");
    for (const bad of [
      [{ ops: [], error: "EIO" }],
      [{ ops: ["write"] }],
      [{ ops: ["write"], delayMs: -1 }],
      [{ ops: ["write"], error: "EIO", probability: 2 }],
      [{ ops: ["write"], error: "EIO", times: 1.5 }],
      [{ ops: ["write"], error: "EIO", pathPattern: "(" }],
    ]) {
      assert.throws(() => faulty.setRules(bad as never), DiskFaultRuleError, JSON.stringify(bad));
    }
  } finally {
    removeTempDir(dir);
  }
});
