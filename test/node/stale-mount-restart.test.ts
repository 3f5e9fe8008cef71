// `litefs mount` after a kill -9, with nothing cleaned up in between: the dead mounts the killed node
// left (the main mount and, with kernel locks, the lock-file mount under the data directory) answer
// ENOTCONN until unmounted. The node must clear them itself and come up — the test harness's own
// stale-mount cleanup (mount-process.ts) is bypassed on purpose: a user restarting a crashed node has none.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";

import { freeLoopbackPort } from "../support/free-port.js";
import { litefsNodeConfig, writeLitefsConfig } from "../support/litefs-node.js";
import { isMounted, unmountSync } from "../support/mounts.js";
import { CLI_MAIN, REPO_ROOT, SQLITE3_CLI } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { TrackedProcess, unmountOnExit } from "../support/tracked-process.js";

const READY = /mount ready/;

for (const kernelLocks of [false, true]) {
  test(`a node killed with -9 restarts over its own dead mounts (kernel-locks: ${kernelLocks})`, async () => {
    const base = makeTempDir("stale-restart");
    const fuseDir = path.join(base, "fuse");
    const dataDir = path.join(base, "data");
    const lockDir = path.join(dataDir, "locks");
    const started: TrackedProcess[] = [];
    after(() => {
      for (const p of started) p.killGroup();
      for (const dir of [fuseDir, lockDir]) if (isMounted(dir)) unmountSync(dir);
      removeTempDir(base);
    });
    fs.mkdirSync(fuseDir, { recursive: true });
    const config = litefsNodeConfig({
      fuseDir,
      dataDir,
      httpPort: await freeLoopbackPort(),
      retention: "24h",
    });
    config.fuse = { ...(config.fuse as object), "kernel-locks": kernelLocks };
    const configPath = path.join(base, "litefs.yml");
    writeLitefsConfig(configPath, config);
    unmountOnExit(fuseDir);
    unmountOnExit(lockDir);

    const start = async (): Promise<TrackedProcess> => {
      const node = await TrackedProcess.spawn({
        label: "litefs mount",
        command: process.execPath,
        args: ["--enable-source-maps", CLI_MAIN, "mount", "--config", configPath],
        cwd: REPO_ROOT,
      });
      started.push(node);
      await node.waitForLine(READY, 30_000);
      return node;
    };
    const sql = (query: string): string => {
      const r = spawnSync(SQLITE3_CLI, [path.join(fuseDir, "app.db"), query], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    };

    const first = await start();
    sql("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);");
    first.killGroup();
    await first.exit;
    assert.ok(isMounted(fuseDir), "the killed node's mount is still there (dead)");
    assert.equal(isMounted(lockDir), kernelLocks, "the lock-file mount exists with kernel locks only");

    const second = await start();
    assert.equal(sql("SELECT count(*) FROM t;"), "2", second.describe());
    if (kernelLocks) {
      assert.equal(fs.readlinkSync(path.join(fuseDir, "app.db-lock")), path.join(lockDir, "app.db-lock"));
      assert.deepEqual(fs.readdirSync(lockDir), ["app.db-lock"]);
    }
    const status = await second.stop(10_000);
    assert.equal(status.code, 0, second.describe());
    assert.ok(!isMounted(fuseDir), "a clean stop unmounts the mount");
    assert.ok(!isMounted(lockDir), "a clean stop unmounts the lock-file mount");
  });
}
