// The README's main job, started and stopped by a test: the three-node local cluster comes up, a
// write through every node's proxy shows up on every node, and everything is unmounted afterwards.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { REPO_ROOT } from "../support/paths.js";

test("the demo cluster: writes through any node are seen on every node; nothing left mounted", async () => {
  const demo = path.join(REPO_ROOT, "dist", "scripts", "demo.js");
  // A base port away from the demo's default, so a demo a person is running does not collide.
  // Below the kernel's ephemeral range (32768+): no other test's socket can be holding one of these.
  const basePort = 10000 + (process.pid % 1000) * 10;
  const child = spawn(process.execPath, [demo, "--self-check", "--base-port", String(basePort)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill("SIGTERM"), 150_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  assert.equal(code, 0, out);
  assert.match(out, /self-check ok: every write is on every node/);
  assert.equal((out.match(/lists 3 of the 3 new entries/g) ?? []).length, 3, out);
  const base = /local cluster \(static lease\) in (\S+)/.exec(out)?.[1];
  assert.ok(base !== undefined, out);
  const mounts = fs.readFileSync("/proc/mounts", "utf8");
  assert.ok(!mounts.includes(base), `a demo mount is left under ${base}`);
  assert.ok(!fs.existsSync(base), `the demo left ${base} behind`);
});
