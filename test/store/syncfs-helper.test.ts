import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import { HelperUnavailable, SyncFsHelper } from "../../src/store/syncfs-helper.js";
import { isProcessAlive } from "../support/tracked-process.js";

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isProcessAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return !isProcessAlive(pid);
}

test("one helper answers every request in order; sync's own failure is an answer, not unavailability", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "syncfs-helper-"));
  const helper = new SyncFsHelper();
  t.after(() => {
    helper.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await Promise.all([helper.request(dir), helper.request(dir), helper.request(dir)]);
  const pid = helper.pid;
  assert.ok(pid !== undefined);
  const missing = helper.request(path.join(dir, "no-such-dir"));
  const after = helper.request(dir);
  await assert.rejects(
    missing,
    (err: Error) => !(err instanceof HelperUnavailable) && err.message.length > 0,
  );
  await after;
  assert.equal(helper.pid, pid, "the same process served every request");
});

test("a helper that dies fails its pending requests as unavailable, and the next request starts another", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "syncfs-helper-"));
  const helper = new SyncFsHelper();
  t.after(() => {
    helper.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await helper.request(dir);
  const first = helper.pid!;
  process.kill(first, "SIGKILL");
  assert.ok(await waitGone(first, 5000));
  // Either the death was seen before this request (a new helper serves it) or it fails as unavailable.
  await helper.request(dir).catch((err: Error) => assert.ok(err instanceof HelperUnavailable, err.message));
  await helper.request(dir);
  assert.notEqual(helper.pid, first);
  helper.close();
  assert.equal(helper.pid, undefined);
  await helper.request(dir); // closed: a new one again
});

test("the helper neither keeps its node process alive nor outlives it", async () => {
  const module = new URL("../../src/store/syncfs-helper.js", import.meta.url).href;
  const script =
    `const { SyncFsHelper } = await import(${JSON.stringify(module)});` +
    "const h = new SyncFsHelper(); await h.request(process.argv[1]); console.log(h.pid);";
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script, os.tmpdir()], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(result.status, 0, `the process exited by itself (stderr: ${result.stderr})`);
  const pid = Number(result.stdout.trim());
  assert.ok(pid > 0);
  assert.ok(await waitGone(pid, 5000), "the helper ended with its process");
});
