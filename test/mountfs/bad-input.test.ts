// Bad input must give a clear error and lose nothing else:
//  - a truncated or corrupt last LTX file in the data directory;
//  - a database file changed behind the node's back while it was stopped (with a new mtime, and with
//    the old mtime put back, which only `--verify` can see);
//  - a wrong config (unknown key, wrong type, bad address) and an HTTP address already taken.
// "Clear" means: the node either refuses to start or starts and logs an error, and either way names the
// file or key at fault. "Nothing else lost" means: no other database or LTX file changed, the other
// database keeps its rows and still takes writes, and a failed start leaves nothing mounted.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { changedPaths, hashTree } from "../support/file-hashes.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import { LitefsNode, litefsNodeConfig, writeLitefsConfig } from "../support/litefs-node.js";
import { listLtxFiles } from "../support/ltx-chain.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { isMounted } from "../support/mounts.js";
import { runSqlJob } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { generateWorkload, type Workload } from "../support/workload.js";
import { checkWorkload, describeMismatches, runWorkload } from "../support/workload-run.js";

const DB_A = "a.db";
const DB_B = "b.db";

interface PreparedNode {
  node: LitefsNode;
  workloadA: Workload;
  workloadB: Workload;
}

let scratchDir: string;

before(() => {
  scratchDir = makeTempDir("bad-input-scratch");
});

after(() => {
  if (scratchDir !== undefined) removeTempDir(scratchDir);
});

/** A stopped node with two databases: a (rollback journal) and b (WAL), each with a few transactions. */
async function prepareStoppedNode(t: { after: (fn: () => Promise<void>) => void }): Promise<PreparedNode> {
  const node = await LitefsNode.start({ readyTimeoutMs: 15_000 });
  t.after(() => node.cleanup());
  const workloadA = generateWorkload({ seed: 11, journalMode: "DELETE", pageSize: 4096, scripts: 8 });
  const workloadB = generateWorkload({ seed: 12, journalMode: "WAL", pageSize: 4096, scripts: 8 });
  await runWorkload("sqlite3", node.dbPath(DB_A), workloadA);
  await runWorkload("sqlite3", node.dbPath(DB_B), workloadB);
  const status = await node.stop();
  assert.equal(status.code, 0, `clean stop failed\n${node.logs()}`);
  return { node, workloadA, workloadB };
}

interface StartOutcome {
  started: boolean;
  /** Everything the node printed (and the start error, if it did not start). */
  output: string;
}

async function startAllowingRefusal(
  node: LitefsNode,
  extraArgs: readonly string[] = [],
): Promise<StartOutcome> {
  try {
    await node.restart(extraArgs);
    // Give a node that reports problems after "mount ready" (a background check) a moment to log them.
    await new Promise((resolve) => setTimeout(resolve, 500));
    return { started: true, output: node.lastRunLogs() };
  } catch (err) {
    assert.ok(!isMounted(node.fuseDir), "a node that failed to start left its mount behind");
    // The error carries this run's output (MountProcess puts the process's stderr/stdout in it).
    return { started: false, output: (err as Error).message };
  }
}

/** The first line of `output` matching `pattern`, for the test's diagnostics. */
function firstLine(output: string, pattern: RegExp): string {
  return (output.split("\n").find((line) => pattern.test(line)) ?? "").slice(0, 300);
}

/** Only the files that hold data: databases and LTX files (not the node's bookkeeping). */
function dataFiles(node: LitefsNode): Map<string, string> {
  return hashTree(node.dataDir, (file) => file.endsWith(`${path.sep}database`) || file.endsWith(".ltx"));
}

/** When the node did start: b's rows are intact, b takes a write, and b's chain still matches. */
async function assertOtherDatabaseUnharmed(prepared: PreparedNode, outcome: StartOutcome): Promise<void> {
  if (!outcome.started) return;
  const { node, workloadB } = prepared;
  const mismatches = await checkWorkload("python", node.dbPath(DB_B), workloadB);
  assert.equal(mismatches.length, 0, `b.db damaged:\n${describeMismatches(mismatches)}`);
  const before = node.readPos(DB_B);
  await runSqlJob("better-sqlite3", {
    dbPath: node.dbPath(DB_B),
    scripts: ["CREATE TABLE IF NOT EXISTS after_bad_input (x); INSERT INTO after_bad_input VALUES (1);"],
    queries: ["PRAGMA wal_checkpoint(TRUNCATE)"],
  });
  assert.equal(node.readPos(DB_B).txid, before.txid + 1n, "b.db did not take a write after the bad input");
  await verifyLtxChainMatchesDatabase({
    dbFile: node.dbPath(DB_B),
    posFile: node.posPath(DB_B),
    ltxDir: node.ltxDir(DB_B),
    scratchDir,
  });
}

describe("a damaged last LTX file", () => {
  const damages: Array<{ name: string; damage: (file: string) => void }> = [
    {
      name: "truncated to half",
      damage: (file) => fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2)),
    },
    {
      name: "one byte flipped in its page data",
      damage: (file) => {
        const bytes = fs.readFileSync(file);
        bytes[120] ^= 0xff;
        fs.writeFileSync(file, bytes);
      },
    },
  ];
  for (const { name, damage } of damages) {
    test(`${name}: named in a clear error, nothing else changed`, async (t) => {
      const prepared = await prepareStoppedNode(t);
      const { node } = prepared;
      const last = listLtxFiles(node.ltxDir(DB_A)).at(-1)!;
      damage(last.path);
      const before = dataFiles(node);

      const outcome = await startAllowingRefusal(node);
      const fileName = new RegExp(path.basename(last.path).replace(".", "\\."));
      t.diagnostic(`started: ${outcome.started}; ${firstLine(outcome.output, fileName)}`);
      assert.match(
        outcome.output,
        fileName,
        `the error does not name the damaged file (started: ${outcome.started})\n${outcome.output}`,
      );
      const changed = changedPaths(before, dataFiles(node)).filter(
        (file) => !file.endsWith(path.basename(last.path)),
      );
      assert.deepEqual(changed, [], "files other than the damaged LTX changed");
      if (outcome.started) {
        const mismatches = await checkWorkload("sqlite3", node.dbPath(DB_A), prepared.workloadA);
        assert.equal(mismatches.length, 0, `a.db rows lost:\n${describeMismatches(mismatches)}`);
      }
      await assertOtherDatabaseUnharmed(prepared, outcome);
    });
  }
});

describe("a database changed behind the node's back", () => {
  const variants: Array<{ name: string; keepMtime: boolean; args: string[] }> = [
    { name: "new mtime, plain start", keepMtime: false, args: [] },
    { name: "mtime put back, --verify", keepMtime: true, args: ["--verify"] },
  ];
  for (const variant of variants) {
    test(`${variant.name}: reported, nothing else changed`, async (t) => {
      const prepared = await prepareStoppedNode(t);
      const { node } = prepared;
      const file = path.join(node.storeDir(DB_A), "database");
      const stat = fs.statSync(file);
      const bytes = fs.readFileSync(file);
      // A byte near the end of the last page: row data, not a header SQLite reads at open.
      bytes[bytes.length - 10] ^= 0x01;
      fs.writeFileSync(file, bytes);
      if (variant.keepMtime) fs.utimesSync(file, stat.atime, stat.mtime);
      const before = dataFiles(node);

      const outcome = await startAllowingRefusal(node, variant.args);
      t.diagnostic(`started: ${outcome.started}; ${firstLine(outcome.output, /a\.db/)}`);
      assert.match(outcome.output, /a\.db/, `the error does not name the database\n${outcome.output}`);
      assert.match(outcome.output, /checksum|mismatch|changed|verif/i, `no clear error\n${outcome.output}`);
      assert.deepEqual(changedPaths(before, dataFiles(node)), [], "the node changed data files");
      await assertOtherDatabaseUnharmed(prepared, outcome);
    });
  }
});

describe("a wrong config", () => {
  const mistakes: Array<{
    name: string;
    mutate: (config: Record<string, Record<string, unknown>>) => void;
    key: RegExp;
  }> = [
    { name: "unknown key", mutate: (c) => (c.fuse.bogus = true), key: /bogus/ },
    { name: "wrong type", mutate: (c) => (c.lease.candidate = { yes: 1 }), key: /candidate/ },
    { name: "bad duration", mutate: (c) => (c.data.retention = "soon"), key: /retention/ },
    { name: "bad address", mutate: (c) => (c.http.addr = "127.0.0.1:notaport"), key: /addr/ },
    { name: "unknown lease type", mutate: (c) => (c.lease.type = "zookeeper"), key: /lease\.type|type/ },
  ];
  for (const mistake of mistakes) {
    test(`${mistake.name}: exits with file, line and key; mounts nothing`, async (t) => {
      const base = makeTempDir("bad-config");
      t.after(() => removeTempDir(base));
      const config = litefsNodeConfig({
        fuseDir: path.join(base, "fuse"),
        dataDir: path.join(base, "data"),
        httpPort: 1,
        retention: "1h",
      });
      fs.mkdirSync(path.join(base, "fuse"));
      mistake.mutate(config);
      const configPath = path.join(base, "litefs.yml");
      writeLitefsConfig(configPath, config);
      const result = await runLitefsCli(["mount", "--config", configPath], { timeoutMs: 15_000 });
      const output = result.stderr + result.stdout;
      t.diagnostic(firstLine(output, /litefs\.yml/));
      assert.notEqual(result.code, 0, `litefs mount accepted a bad config\n${output}`);
      assert.equal(result.signal, null, `litefs mount hung on a bad config (killed)\n${output}`);
      assert.match(output, /litefs\.yml:\d+/, `no file:line in the error\n${output}`);
      assert.match(output, mistake.key, `the error does not name the key\n${output}`);
      assert.ok(!isMounted(path.join(base, "fuse")), "mounted despite the bad config");
      assert.ok(!fs.existsSync(path.join(base, "data", "dbs")), "created databases despite the bad config");
    });
  }

  test("an HTTP address already in use: clear error, unmounted, data unchanged", async (t) => {
    const prepared = await prepareStoppedNode(t);
    const { node } = prepared;
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(node.httpPort, "127.0.0.1", resolve));
    t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const before = dataFiles(node);
    const result = await runLitefsCli(["mount", "--config", node.configPath], { timeoutMs: 20_000 });
    const output = result.stderr + result.stdout;
    t.diagnostic(firstLine(output, /EADDRINUSE|in use/i));
    assert.notEqual(result.code, 0, `litefs mount started on a taken port\n${output}`);
    assert.equal(result.signal, null, `litefs mount hung on a taken port (killed)\n${output}`);
    assert.match(output, new RegExp(`${node.httpPort}|EADDRINUSE|in use`), `no clear error\n${output}`);
    assert.ok(!isMounted(node.fuseDir), "left its mount behind after failing");
    assert.deepEqual(changedPaths(before, dataFiles(node)), [], "data files changed");
  });
});
