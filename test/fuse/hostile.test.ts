// A local process making hostile or careless system calls against a real passthrough mount must get an
// errno (or the right data) for each, and the session must go on serving. The calls come from a Python
// child (test/fuse/helpers/hostile-client.py) because this thread serves the mount; the passthrough runs
// in this process so that every handler error it reports can be checked: a request answered EIO because
// a handler choked on a value the kernel let through is a defect.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  type AttrReply,
  type Entry,
  type FileAttributes,
  type FuseFileSystem,
  type MaybePromise,
  FuseError,
  FuseSession,
} from "../../src/fuse/index.js";
import { PassthroughFileSystem } from "../../examples/passthrough.js";
import { repoRoot } from "./helpers/repo-root.js";

type Outcome = { ok: unknown } | { errno: string };

function runChild(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

async function mountPassthroughHere(
  t: { after(fn: () => Promise<void>): void },
  options: { directIo: boolean },
): Promise<{ session: FuseSession; src: string; errors: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fuse-hostile-"));
  const src = path.join(dir, "src");
  const mnt = path.join(dir, "mnt");
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  const errors: string[] = [];
  const session = await FuseSession.mount(new PassthroughFileSystem(src, options), {
    mountpoint: mnt,
    fsName: "hostile",
    onError: (err, where) =>
      errors.push(`${where.opcode}: ${err instanceof Error ? err.message : String(err)}`),
  });
  t.after(async () => {
    await session.unmount();
    await fs.promises.rm(dir, { recursive: true, force: true });
  });
  return { session, src, errors };
}

test("hostile system calls get errnos, not EIO, and the passthrough keeps serving", async (t) => {
  const { session, src, errors } = await mountPassthroughHere(t, { directIo: true });
  const script = path.join(repoRoot(), "test/fuse/helpers/hostile-client.py");
  const { stdout } = await runChild("python3", [script, session.mountpoint]);
  const r = JSON.parse(stdout) as Record<string, Outcome>;
  const expect = (probe: string, outcome: Outcome): void => assert.deepEqual(r[probe], outcome, probe);

  expect("name_255", { ok: true });
  expect("name_256", { errno: "ENAMETOOLONG" });
  expect("name_1100", { errno: "ENAMETOOLONG" });
  // "bad-\xff" and "bad-\xfe" would both decode to "bad-\uFFFD": one file under two names.
  expect("name_not_utf8_create", { errno: "EILSEQ" });
  expect("name_not_utf8_other_stat", { errno: "EILSEQ" });
  expect("name_not_utf8_mkdir", { errno: "EILSEQ" });
  assert.deepEqual(
    fs.readdirSync(src).filter((n) => n.startsWith("bad-") || n.startsWith("dir-")),
    [],
    "nothing created under a mangled name",
  );

  // Past 2^53 a JS number is no longer the offset the caller gave: refuse (EFBIG) or read nothing.
  expect("pwrite_at_2^62", { errno: "EFBIG" });
  expect("pwrite_at_2^53", { errno: "EFBIG" });
  expect("pwrite_ending_past_2^53", { errno: "EFBIG" });
  expect("pread_at_2^62", { ok: 0 });
  expect("pread_at_2^63-4096", { ok: 0 });
  expect("pread_at_4", { ok: "4567" });
  expect("ftruncate_2^62", { errno: "EFBIG" });
  expect("truncate_2^60", { errno: "EFBIG" });
  expect("lseek_data_2^62", { errno: "ENXIO" });
  expect("fallocate_at_2^62", { errno: "EFBIG" });
  expect("size_after", { ok: 10 });
  expect("content_after", { ok: "0123456789" }); // an inexact position wrote at offset 0 once

  // Zeroing past EOF extends the file without writing a gibibyte of zeros; punching to EOF of a sparse
  // terabyte file takes no time and no disk.
  expect("zero_range_1GiB", { ok: true });
  expect("zero_range_size", { ok: 1 << 30 });
  assert.ok((r.zero_range_blocks_kib as { ok: number }).ok < 1024, JSON.stringify(r.zero_range_blocks_kib));
  expect("punch_to_eof_1TiB", { ok: true });
  expect("punch_size", { ok: 2 ** 40 });
  expect("punch_head", { ok: "68650000" });
  assert.ok((r.punch_blocks_kib as { ok: number }).ok < 1024, JSON.stringify(r.punch_blocks_kib));
  // Zeros inside a file are written (Node.js cannot punch holes), but not half a gibibyte of them.
  expect("punch_middle_512MiB", { errno: "ENOTSUP" }); // = EOPNOTSUPP (95)

  // Cookies never handed out list nothing (the kernel answers 0 bytes: end of directory).
  expect("getdents_cookie_0", { ok: [".", "..", "data", "n".repeat(255), "sparse"] });
  expect("getdents_cookie_2^62", { ok: [] });
  expect("getdents_cookie_2^53+1", { ok: [] });
  expect("getdents_cookie_999999", { ok: [] });

  assert.deepEqual(errors, [], "no request was a handler bug");
  // Still serving: a new process reads and lists through the mount.
  const { stdout: head } = await runChild("head", ["-c", "10", path.join(session.mountpoint, "data")]);
  assert.equal(head, "0123456789");
  const { stdout: listing } = await runChild("ls", [session.mountpoint]);
  assert.match(listing, /^data$/m);
  assert.equal(session.inFlightCount, 0);
});

/** A root directory whose LOOKUP of each name fails in its own way; "ok" exists. */
class ThrowingFileSystem implements FuseFileSystem {
  readonly #t = Date.now();
  attr(nodeId: number): FileAttributes {
    const dir = nodeId === 1;
    return {
      ino: nodeId,
      size: 0,
      blocks: 0,
      atimeMs: this.#t,
      mtimeMs: this.#t,
      ctimeMs: this.#t,
      mode: dir ? 0o40755 : 0o100644,
      nlink: 1,
      uid: 0,
      gid: 0,
      rdev: 0,
      blksize: 4096,
    };
  }
  getattr(_c: unknown, nodeId: number): AttrReply {
    return { attr: this.attr(nodeId) };
  }
  lookup(_c: unknown, _parent: number, name: string): MaybePromise<Entry | null> {
    switch (name) {
      case "ok":
        return { nodeId: 2, attr: this.attr(2) };
      case "uv-eof": // a libuv error: errno -4095, beyond what a reply may carry
        throw Object.assign(new Error("end of stream"), { code: "EOF", errno: -4095 });
      case "errno-600":
        throw Object.assign(new Error("odd errno"), { errno: -600 });
      case "string":
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler bug under test
        throw "not an error";
      case "null":
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler bug under test
        throw null;
      case "reject-undefined":
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a handler bug under test
        return Promise.reject(undefined);
      case "no-attr":
        return { nodeId: 3 } as unknown as Entry;
      case "errno-name":
        throw Object.assign(new Error("full"), { errno: "ENOSPC" });
      case "async-enoent":
        return Promise.reject(new FuseError("ENOENT"));
      default:
        return null;
    }
  }
}

test(
  "handler failures of every shape answer an errno the kernel accepts, and nobody hangs",
  { timeout: 60_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fuse-throwing-"));
    const reported: string[] = [];
    const session = await FuseSession.mount(new ThrowingFileSystem(), {
      mountpoint: dir,
      fsName: "throwing",
      onError: (_err, where) => reported.push(where.opcode),
    });
    t.after(async () => {
      await session.unmount();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const names = ["uv-eof", "errno-600", "string", "null", "reject-undefined", "no-attr", "errno-name"];
    const script = [
      "import errno, json, os, sys",
      "out = {}",
      "for n in sys.argv[2:]:",
      "    try:",
      "        os.stat(os.path.join(sys.argv[1], n)); out[n] = 'ok'",
      "    except OSError as e:",
      "        out[n] = errno.errorcode[e.errno]",
      "print(json.dumps(out))",
    ].join("\n");
    const { stdout } = await runChild("python3", ["-c", script, dir, ...names, "async-enoent", "ok"], 15_000);
    assert.deepEqual(JSON.parse(stdout), {
      "uv-eof": "EIO",
      "errno-600": "EIO",
      string: "EIO",
      null: "EIO",
      "reject-undefined": "EIO",
      "no-attr": "EIO",
      "errno-name": "ENOSPC",
      "async-enoent": "ENOENT",
      ok: "ok",
    });
    // Each EIO is a handler bug and is reported; the errno-carrying ones are answers, not bugs.
    assert.equal(reported.length, 6, reported.join(", "));
    assert.ok(
      reported.every((op) => op === "LOOKUP"),
      reported.join(", "),
    );
    assert.equal(session.inFlightCount, 0);
  },
);
