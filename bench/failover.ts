// Failover and handoff on a real etcd (1 member, loopback), three `litefs mount` candidates, TTL 2 s,
// no lock delay (test/support/leased-cluster.ts).
//
// A probe writes one row at a time, as fast as the cluster accepts, to whichever node accepts it: it
// keeps one better-sqlite3 connection per node and reopens a connection after any error (a
// connection opened while its node was a replica is read-only for good). Measured per run:
//   failover  kill -9 of the primary → the first COMMIT that returns on another node;
//   handoff   `litefs promote --url <replica>` → the write gap: last COMMIT on the old primary → first
//             on the new one (the CLI's own start-up is outside the gap: the old primary accepts
//             writes until the request reaches it); the CLI's wall time is printed beside it.
// Printed as p50/max beside the goals (failover ≤ 3 s at TTL 2 s; handoff ≤ 100 ms) and LiteFS's
// published figures (Consul: TTL 10 s + lock delay, so ≥ 11 s; handoff "a few milliseconds").
//
//   node dist/bench/failover.js [--runs N] [--ttl 2s] [--lock-delay 0s] [--handoff-back] [--json FILE]
//   (default 5 runs of each; about 15 s per failover run and 5 s per handoff run here). Each handoff
//   goes to a replica other than the node the previous one demoted; --handoff-back targets that node.
//   Before each handoff the bench waits until every replica is connected to the primary. A handoff
//   that fails is counted and printed, not retried.

import * as fs from "node:fs";
import { parseArgs } from "node:util";

import Database from "better-sqlite3";

import { runLitefsCli } from "../test/support/litefs-cli.js";
import { LeasedCluster, type LeasedNode } from "../test/support/leased-cluster.js";

const DB = "bench.db";

interface Options {
  runs: number;
  ttl: string;
  lockDelay: string;
  json: string | undefined;
  handoffBack: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      ttl: { type: "string", default: "2s" },
      "lock-delay": { type: "string", default: "0s" },
      json: { type: "string" },
      "handoff-back": { type: "boolean", default: false },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer: ${values.runs}`);
  return {
    runs,
    ttl: values.ttl,
    lockDelay: values["lock-delay"],
    json: values.json,
    handoffBack: values["handoff-back"],
  };
}

interface Commit {
  node: string;
  at: number;
}

/** Writes to whichever node accepts, one row per transaction, until stopped. */
class WriteProbe {
  readonly commits: Commit[] = [];
  readonly #cluster: LeasedCluster;
  readonly #connections = new Map<LeasedNode, Database.Database>();
  #stopped = false;
  #sticky: LeasedNode | undefined;
  readonly #loop: Promise<void>;

  constructor(cluster: LeasedCluster) {
    this.#cluster = cluster;
    this.#loop = this.#run();
  }

  /** The first commit at or after `t` on a node other than `not`; waits up to `timeoutMs`. */
  async firstCommitAfter(t: number, timeoutMs: number, not?: string): Promise<Commit> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const commit = this.commits.find((c) => c.at >= t && c.node !== not);
      if (commit !== undefined) return commit;
      if (performance.now() > deadline) throw new Error(`no commit within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  lastCommitOn(node: string, before: number): Commit | undefined {
    return this.commits.filter((c) => c.node === node && c.at <= before).at(-1);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    for (const db of this.#connections.values()) db.close();
  }

  async #run(): Promise<void> {
    let n = 0;
    while (!this.#stopped) {
      const nodes = this.#cluster.running();
      const order = this.#sticky !== undefined && nodes.includes(this.#sticky) ? [this.#sticky] : nodes;
      let wrote = false;
      for (const node of order) {
        if (this.#write(node, ++n)) {
          this.commits.push({ node: node.name, at: performance.now() });
          this.#sticky = node;
          wrote = true;
          break;
        }
      }
      if (!wrote) this.#sticky = undefined;
      // Yield to the event loop (status requests, process exits) between attempts.
      await sleep(wrote ? 2 : 1);
    }
  }

  #write(node: LeasedNode, n: number): boolean {
    if (!node.node.running) {
      this.#forget(node);
      return false;
    }
    try {
      let db = this.#connections.get(node);
      if (db === undefined) {
        db = new Database(node.node.dbPath(DB), { timeout: 50, fileMustExist: true });
        this.#connections.set(node, db);
      }
      db.prepare("INSERT INTO probe (n) VALUES (?)").run(n);
      return true;
    } catch {
      this.#forget(node);
      return false;
    }
  }

  #forget(node: LeasedNode): void {
    try {
      this.#connections.get(node)?.close();
    } catch {
      // a connection on a dead mount may not close cleanly; it is dropped either way
    }
    this.#connections.delete(node);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function waitForRole(cluster: LeasedCluster, node: LeasedNode, role: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await cluster.status(node))?.role !== role) {
    if (Date.now() > deadline) throw new Error(`${node.name} is not ${role} after 60 s\n${cluster.logs()}`);
    await sleep(50);
  }
}

async function main(): Promise<void> {
  const opts = options();
  process.stdout.write(
    `failover bench: etcd (1 member), 3 candidates, ttl ${opts.ttl}, lock-delay ${opts.lockDelay}, ${opts.runs} runs each\n`,
  );
  const cluster = await LeasedCluster.start({ nodes: 3, ttl: opts.ttl, lockDelay: opts.lockDelay });
  const failovers: number[] = [];
  const handoffs: number[] = [];
  const promoteWall: number[] = [];
  const handoffFailures: string[] = [];
  let probe: WriteProbe | undefined;
  try {
    const first = await cluster.primary();
    const setup = new Database(first.node.dbPath(DB));
    setup.exec(
      "PRAGMA journal_mode=delete; CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, n INTEGER)",
    );
    setup.close();
    probe = new WriteProbe(cluster);
    await probe.firstCommitAfter(0, 30_000);

    for (let run = 1; run <= opts.runs; run++) {
      const primary = await cluster.waitForPrimary({ timeoutMs: 30_000 });
      await sleep(500);
      const killedAt = performance.now();
      const crashed = cluster.kill9(primary);
      const commit = await probe.firstCommitAfter(killedAt, 60_000, primary.name);
      await crashed;
      failovers.push(commit.at - killedAt);
      process.stdout.write(
        `  failover ${run}: ${primary.name} killed → first write on ${commit.node} after ${(commit.at - killedAt).toFixed(0)} ms\n`,
      );
      await cluster.restart(primary);
      await waitForRole(cluster, primary, "replica");
    }

    let previous: LeasedNode | undefined;
    for (let run = 1; run <= opts.runs; run++) {
      const primary = await cluster.waitForPrimary({ timeoutMs: 30_000 });
      // Not the node the previous handoff demoted: handing the lease straight back fails today
      // (/work/notes/s2/bugs-h3.md, 4 and 6); --handoff-back measures that case.
      const candidates = cluster.others(primary);
      const target = opts.handoffBack
        ? (candidates.find((n) => n === previous) ?? candidates[0])
        : (candidates.find((n) => n !== previous) ?? candidates[0]);
      previous = primary;
      const reconnectMs = await cluster.waitForReplicasConnected(primary, 60_000);
      process.stdout.write(
        `  (replicas connected to ${primary.name} ${reconnectMs} ms after the last step)\n`,
      );
      await sleep(500);
      const started = performance.now();
      const result = await runLitefsCli(["promote", "--url", target.node.httpUrl], { timeoutMs: 60_000 });
      const wallMs = performance.now() - started;
      if (result.code !== 0) {
        // Counted and shown, not hidden: a handoff that failed is a result of this benchmark too.
        handoffFailures.push(`${primary.name} → ${target.name}: ${(result.stderr + result.stdout).trim()}`);
        process.stdout.write(`  handoff ${run}: FAILED ${handoffFailures.at(-1)}\n`);
        await cluster.waitForPrimary({ timeoutMs: 30_000 });
        continue;
      }
      const commit = await probe.firstCommitAfter(started, 30_000, primary.name);
      const last = probe.lastCommitOn(primary.name, commit.at);
      const gap = commit.at - (last?.at ?? started);
      handoffs.push(gap);
      promoteWall.push(wallMs);
      process.stdout.write(
        `  handoff ${run}: ${primary.name} → ${commit.node}: write gap ${gap.toFixed(1)} ms (promote CLI ${wallMs.toFixed(0)} ms)\n`,
      );
      await waitForRole(cluster, primary, "replica");
    }
  } finally {
    await probe?.stop();
    await cluster.cleanup();
  }

  const row = (name: string, values: number[], goal: string, litefs: string): string =>
    values.length === 0
      ? `${name.padEnd(34)}${"-".padStart(8)}${"-".padStart(8)}   ${goal.padEnd(12)}${litefs}`
      : `${name.padEnd(34)}${percentile(values, 50).toFixed(0).padStart(8)}${Math.max(...values)
          .toFixed(0)
          .padStart(8)}   ${goal.padEnd(12)}${litefs}`;
  process.stdout.write(
    `\n${"".padEnd(34)}${"p50 ms".padStart(8)}${"max ms".padStart(8)}   ${"goal".padEnd(12)}LiteFS\n`,
  );
  process.stdout.write(
    row(`failover (kill -9, ttl ${opts.ttl})`, failovers, "≤ 3000", "≥ 11000 (Consul)") + "\n",
  );
  process.stdout.write(row("handoff (write gap)", handoffs, "≤ 100", "a few ms") + "\n");
  process.stdout.write(row("  litefs promote, CLI wall time", promoteWall, "", "") + "\n");
  if (handoffFailures.length > 0) {
    process.stdout.write(`handoffs that failed: ${handoffFailures.length} of ${opts.runs}\n`);
  }
  if (opts.json !== undefined) {
    fs.writeFileSync(
      opts.json,
      JSON.stringify(
        { ttl: opts.ttl, lockDelay: opts.lockDelay, failovers, handoffs, promoteWall, handoffFailures },
        null,
        2,
      ),
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench/failover: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
