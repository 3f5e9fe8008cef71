// The demo's `--lease etcd` mode, started and stopped by a test: three candidates on the demo's own
// etcd; a write through node-2's URL shows up everywhere; the primary's litefs process is killed with
// SIGKILL and a write through a surviving URL succeeds within a (generous) bound; Ctrl-C (SIGINT)
// stops everything: no mount, no temp dir, no etcd left.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { REPO_ROOT } from "../support/paths.js";
import { isProcessAlive } from "../support/tracked-process.js";

const FAILOVER_BOUND_MS = 30_000;

async function postEntry(url: string, message: string): Promise<number> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "test", message }),
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

async function listsEntry(url: string, message: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}entries`, { signal: AbortSignal.timeout(5_000) });
      const entries = (await res.json()) as { message: string }[];
      if (entries.some((e) => e.message === message)) return true;
    } catch {
      // the node may be between roles; ask again
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

test(
  "the demo on etcd: a write via node-2, the primary killed, writes go on; Ctrl-C cleans up",
  {
    timeout: 180_000,
  },
  async (t) => {
    const demo = path.join(REPO_ROOT, "dist", "scripts", "demo.js");
    // Below the ephemeral range (32768+), and apart from demo.test.ts's 10000–20082.
    const basePort = 20200 + (process.pid % 1000) * 10 + 5;
    const child = spawn(process.execPath, [demo, "--lease", "etcd", "--base-port", String(basePort)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGINT");
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
        await exited;
        clearTimeout(timer);
      }
    });

    const deadline = Date.now() + 120_000;
    while (!out.includes("Ctrl-C stops every node")) {
      assert.ok(child.exitCode === null && Date.now() < deadline, `the demo did not come up:\n${out}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const base = /local cluster \(etcd lease\) in (\S+)/.exec(out)?.[1];
    const etcdPid = Number(/etcd up: .* \(pid (\d+)\)/.exec(out)?.[1]);
    const pids = new Map(
      [...out.matchAll(/(node-\d) \(candidate\) up: .*litefs pid (\d+)/g)].map((m) => [m[1], Number(m[2])]),
    );
    const primaryName = /^ {2}primary: (node-\d)$/m.exec(out)?.[1];
    assert.ok(base !== undefined && etcdPid > 0 && pids.size === 3 && primaryName !== undefined, out);
    const url = (name: string): string => `http://127.0.0.1:${basePort + 80 + Number(name.slice(5))}/`;
    const names = [...pids.keys()];

    const first = `via node-2 at ${Date.now()}`;
    assert.ok((await postEntry(url("node-2"), first)) < 400, `POST via node-2 failed\n${out}`);
    for (const name of names)
      assert.ok(await listsEntry(url(name), first, 20_000), `${name} lacks the entry\n${out}`);

    const killedAt = Date.now();
    process.kill(pids.get(primaryName)!, "SIGKILL");
    // Through every surviving URL: one of them is the new primary, whose app opened its connection
    // while the node was a replica (read-only) and must reopen it to write.
    const survivors = names.filter((n) => n !== primaryName);
    const written: string[] = [];
    for (const survivor of survivors) {
      const message = `through ${survivor} after the failover at ${killedAt}`;
      let status = 0;
      while ((status = await postEntry(url(survivor), message)) >= 400 || status === 0) {
        assert.ok(
          Date.now() - killedAt < FAILOVER_BOUND_MS,
          `no write through ${survivor} (last ${status})\n${out}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      t.diagnostic(
        `write through ${survivor} accepted ${Date.now() - killedAt} ms after killing ${primaryName}`,
      );
      written.push(message);
    }
    for (const name of survivors) {
      for (const message of written) {
        assert.ok(await listsEntry(url(name), message, 20_000), `${name} lacks "${message}"`);
      }
    }

    child.kill("SIGINT");
    assert.equal(await exited, 0, out);
    const mounts = fs.readFileSync("/proc/mounts", "utf8");
    assert.ok(!mounts.includes(base), `a demo mount is left under ${base}`);
    assert.ok(!fs.existsSync(base), `the demo left ${base} behind`);
    assert.ok(!isProcessAlive(etcdPid), "etcd still runs");
    for (const [name, pid] of pids) assert.ok(!isProcessAlive(pid), `${name}'s litefs still runs`);
  },
);
