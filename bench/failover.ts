// Failover and handoff on a real etcd (1 member, loopback), three `litefs mount` candidates, TTL 2 s,
// no lock delay (test/support/leased-cluster.ts), nodes logging JSON at debug level with times.
//
// A probe (primary-write-probe.ts) writes one row at a time, as fast as the cluster accepts, the way an
// application writing to "the primary" would: on the node it last succeeded on; after a failure it reads
// that node's `.primary` and moves to the named node once its `/info` says primary, retrying every
// 1 ms; a connection is reopened only when it must be. Measured per run:
//   failover  kill -9 of the primary → the first COMMIT that returns on another node;
//   handoff   `litefs promote --url <replica>` → the write gap: last COMMIT on the old primary → first
//             on the new one, wall clock (the CLI's own start-up is outside the gap: the old primary
//             accepts writes until the request reaches it); the CLI's wall time is printed beside it.
//             And the longest stall: the longest time from one COMMIT to the next from the CLI's start
//             to the first COMMIT on the new primary — the gap, or a commit the old primary answered
//             late while it paced its writers for the target (src/node/handoff-pacer.ts).
//             Also the node-internal part: the old primary pausing commits ("handing the lease off",
//             minus its catch-up wait) → the target's "role change: primary", from the nodes' logs, and
//             a per-handoff timeline of the steps in between (handoff-timeline.ts).
// Printed as p50/max beside the goals (failover ≤ 3 s at TTL 2 s; handoff ≤ 100 ms) and LiteFS's
// published figures (Consul: TTL 10 s + lock delay, so ≥ 11 s; handoff "a few milliseconds").
//
//   With --proxy-handoff-runs N (default 0), N more handoffs follow with the application behind each
//   node's LiteFS proxy instead (test/chaos/chaos-app.ts; proxy-write-probe.ts): writes go to the proxy
//   of the node that is neither the old primary nor the target, which forwards them to the primary.
//
//   node dist/bench/failover.js [--runs N] [--failover-runs N] [--handoff-runs N] [--ttl 2s]
//                               [--lock-delay 0s] [--handoff-back] [--json FILE] [--logs DIR]
//                               [--proxy-handoff-runs N] [--info-logs] [--journal-mode delete|wal]
//                               [--connections everywhere|lazy] [--load-seconds N]
//                               [--synchronous full|normal]
//   (default 5 runs of each; about 15 s per failover run and 3 s per handoff run here). Each handoff
//   goes to a replica other than the node the previous one demoted; --handoff-back targets that node.
//   Before each handoff the bench waits until every replica is connected to the primary. A handoff
//   that fails is counted and printed, not retried. --logs writes every node's whole log to
//   DIR/<name>.log (the nodes' output is then kept whole in memory, up to 256 MiB each, not its last
//   256 KiB).
//   --info-logs runs the nodes at the default log level (info) instead of debug: no line per commit
//   and per applied transaction for the nodes to write and this process (which runs the probe) to
//   read, but the timeline then has only its info-level steps. --journal-mode wal has the probe write in
//   WAL mode with synchronous=NORMAL (what most LiteFS applications run) instead of DELETE with
//   synchronous=FULL (the default: the costliest commit, so the widest gap); --synchronous sets it for
//   either mode (WAL with FULL: an fsync per commit, a slower writer). --connections everywhere (the
//   default in DELETE mode) has the probe open a connection on every node before each handoff, as
//   an application on every node keeps one (on a replica it opens read-write and writes once the node
//   is promoted); lazy (the default in WAL mode, where a replica's connection stays read-only) opens
//   one on a node only when it first writes there, inside the write gap. --load-seconds N (default 0)
//   has the probe write for N s before the first failover or handoff: a node's code that has not run
//   for a few full garbage collections is flushed by V8 unless the node keeps it (eager-compile.ts).

import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

import Database from "better-sqlite3";

import { freeLoopbackPort } from "../test/support/free-port.js";
import { runLitefsCli } from "../test/support/litefs-cli.js";
import { REPO_ROOT } from "../test/support/paths.js";
import { keepOutputTail, TrackedProcess } from "../test/support/tracked-process.js";
import { LeasedCluster, type LeasedNode } from "../test/support/leased-cluster.js";
import {
  formatTimeline,
  handoffTimeline,
  oldPaceStep,
  targetEnterParts,
  targetLastApply,
  type TimelineStep,
} from "./handoff-timeline.js";
import {
  PrimaryWriteProbe,
  type ProbeAttempt,
  type ProbeLookup,
  type ProbeNode,
  wallNow,
} from "./primary-write-probe.js";
import { ProxyWriteProbe } from "./proxy-write-probe.js";

const DB = "bench.db";
/** The database the proxy runs write to, through test/chaos/chaos-app.ts behind each node's proxy. */
const PROXY_DB = "proxied.db";
const APP_MAIN = path.join(REPO_ROOT, "dist", "test", "chaos", "chaos-app.js");

interface Options {
  failoverRuns: number;
  handoffRuns: number;
  proxyHandoffRuns: number;
  ttl: string;
  lockDelay: string;
  json: string | undefined;
  logs: string | undefined;
  handoffBack: boolean;
  infoLogs: boolean;
  journalMode: "delete" | "wal";
  connections: "everywhere" | "lazy";
  loadSeconds: number;
  synchronous: "FULL" | "NORMAL";
}

function journalModeOption(value: string): "delete" | "wal" {
  if (value !== "delete" && value !== "wal")
    throw new Error(`--journal-mode must be delete or wal: ${value}`);
  return value;
}

function connectionsOption(value: string): "everywhere" | "lazy" {
  if (value !== "everywhere" && value !== "lazy")
    throw new Error(`--connections must be everywhere or lazy: ${value}`);
  return value;
}

function synchronousOption(value: string): "FULL" | "NORMAL" {
  if (value !== "full" && value !== "normal")
    throw new Error(`--synchronous must be full or normal: ${value}`);
  return value === "full" ? "FULL" : "NORMAL";
}

function runCount(flag: string, value: string): number {
  const runs = Number(value);
  if (!Number.isInteger(runs) || runs < 0) throw new Error(`--${flag} must be an integer ≥ 0: ${value}`);
  return runs;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      "failover-runs": { type: "string" },
      "handoff-runs": { type: "string" },
      "proxy-handoff-runs": { type: "string", default: "0" },
      ttl: { type: "string", default: "2s" },
      "lock-delay": { type: "string", default: "0s" },
      json: { type: "string" },
      logs: { type: "string" },
      "handoff-back": { type: "boolean", default: false },
      "info-logs": { type: "boolean", default: false },
      "journal-mode": { type: "string", default: "delete" },
      connections: { type: "string" },
      "load-seconds": { type: "string", default: "0" },
      synchronous: { type: "string" },
    },
    strict: true,
  });
  const runs = runCount("runs", values.runs);
  const journalMode = journalModeOption(values["journal-mode"]);
  return {
    failoverRuns: runCount("failover-runs", values["failover-runs"] ?? String(runs)),
    handoffRuns: runCount("handoff-runs", values["handoff-runs"] ?? String(runs)),
    proxyHandoffRuns: runCount("proxy-handoff-runs", values["proxy-handoff-runs"]),
    ttl: values.ttl,
    lockDelay: values["lock-delay"],
    json: values.json,
    logs: values.logs,
    handoffBack: values["handoff-back"],
    infoLogs: values["info-logs"],
    journalMode,
    connections: connectionsOption(values.connections ?? (journalMode === "wal" ? "lazy" : "everywhere")),
    loadSeconds: runCount("load-seconds", values["load-seconds"]),
    synchronous: synchronousOption(values.synchronous ?? (journalMode === "wal" ? "normal" : "full")),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function probeNode(n: LeasedNode): ProbeNode {
  return { name: n.name, mountDir: n.node.fuseDir, httpUrl: n.node.httpUrl, running: () => n.node.running };
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

/**
 * Handoffs while a ProxyWriteProbe writes through the proxy of the node that is neither the old primary
 * nor the target (a replica throughout: every write is forwarded). The gap is the longest time between
 * two answered writes from the promote request on until a write answered after it returned.
 */
async function proxyHandoffs(
  cluster: LeasedCluster,
  runs: number,
  appPorts: readonly number[],
  apps: TrackedProcess[],
  gaps: number[],
  failures: string[],
): Promise<void> {
  for (const [i, n] of cluster.nodes.entries()) {
    const app = await TrackedProcess.spawn({
      label: `app ${n.name}`,
      command: process.execPath,
      args: [
        "--enable-source-maps",
        APP_MAIN,
        "--db",
        n.node.dbPath(PROXY_DB),
        "--port",
        String(appPorts[i]),
      ],
    });
    apps.push(app);
    await app.waitForLine(/chaos app listening/, 15_000);
  }
  const first = await cluster.waitForPrimary({ timeoutMs: 30_000 });
  const init = await fetch(`http://127.0.0.1:${first.proxyPort}/init`, { method: "POST" });
  if (init.status !== 200) throw new Error(`POST /init through ${first.name}'s proxy: ${await init.text()}`);
  await cluster.waitConverged([PROXY_DB]);
  let via = "";
  const probe = new ProxyWriteProbe(() => via, 1);
  try {
    let previous: LeasedNode | undefined;
    for (let run = 1; run <= runs; run++) {
      const primary = await cluster.waitForPrimary({ timeoutMs: 30_000 });
      const candidates = cluster.others(primary);
      const target = candidates.find((n) => n !== previous) ?? candidates[0];
      const third = candidates.find((n) => n !== target) ?? target;
      via = `http://127.0.0.1:${third.proxyPort}`;
      previous = primary;
      await cluster.waitForReplicasConnected(primary, 60_000);
      await probe.okAfter(performance.now(), 30_000);
      await sleep(500);
      const started = performance.now();
      const result = await runLitefsCli(["promote", "--url", target.node.httpUrl], { timeoutMs: 60_000 });
      if (result.code !== 0) {
        failures.push(`(proxy) ${primary.name} → ${target.name}: ${(result.stderr + result.stdout).trim()}`);
        process.stdout.write(`  proxy handoff ${run}: FAILED ${failures.at(-1)}\n`);
        continue;
      }
      const answered = await probe.okAfter(performance.now(), 30_000);
      const gap = probe.longestGap(started, answered);
      gaps.push(gap);
      const failed = probe.failuresBetween(started, answered);
      process.stdout.write(
        `  proxy handoff ${run}: ${primary.name} → ${target.name}, writes through ${third.name}'s proxy: ` +
          `longest wait ${gap.toFixed(1)} ms (${failed.length} failed requests` +
          `${failed.length === 0 ? "" : `: ${[...new Set(failed.map((f) => `${f.status} ${f.detail ?? ""}`.trim()))].join("; ")}`})\n`,
      );
      await waitForRole(cluster, primary, "replica");
    }
  } finally {
    await probe.stop();
  }
}

/** "node-0 SQLITE_IOERR ×3 (1–4 ms)" per run of equal failures, in order. */
function describeFailures(failed: readonly ProbeAttempt[]): string {
  const parts: { key: string; count: number; min: number; max: number }[] = [];
  for (const f of failed) {
    const key = `${f.node} ${f.error ?? "?"}`;
    const lastPart = parts.at(-1);
    if (lastPart !== undefined && lastPart.key === key) {
      lastPart.count++;
      lastPart.min = Math.min(lastPart.min, f.tookMs);
      lastPart.max = Math.max(lastPart.max, f.tookMs);
    } else parts.push({ key, count: 1, min: f.tookMs, max: f.tookMs });
  }
  return parts.length === 0
    ? "none"
    : parts.map((p) => `${p.key} ×${p.count} (${p.min.toFixed(1)}–${p.max.toFixed(1)} ms)`).join(", ");
}

/** "+12 node-0→node-1 (3.1 ms)" per look for the primary, merging repeats. */
function describeLookups(lookups: readonly ProbeLookup[], zeroWallMs: number): string {
  const parts: string[] = [];
  let previous = "";
  let repeats = 0;
  for (const l of lookups) {
    const key = `${l.from}${l.named === null ? "" : `(.primary ${l.named})`}→${l.next ?? "?"}`;
    if (key === previous) {
      repeats++;
      continue;
    }
    if (repeats > 0) parts[parts.length - 1] += ` ×${repeats + 1}`;
    repeats = 0;
    previous = key;
    parts.push(
      `+${(l.wallMs - zeroWallMs).toFixed(0)} ${key} (${l.tookMs.toFixed(1)} ms, .primary ${l.primaryFileMs.toFixed(1)})`,
    );
  }
  if (repeats > 0) parts[parts.length - 1] += ` ×${repeats + 1}`;
  return parts.length === 0 ? "none" : parts.join(", ");
}

/** The first of `steps` labelled `label`, or undefined. */
function stepMs(steps: readonly TimelineStep[], label: string): number | undefined {
  return steps.find((s) => s.label === label)?.ms;
}

async function main(): Promise<void> {
  const opts = options();
  if (opts.logs !== undefined) keepOutputTail(256 << 20);
  process.stdout.write(
    `failover bench: etcd (1 member), 3 candidates, ttl ${opts.ttl}, lock-delay ${opts.lockDelay}, ` +
      `${opts.failoverRuns} failover and ${opts.handoffRuns} handoff runs, probe in ${opts.journalMode} mode ` +
      `(synchronous ${opts.synchronous}), ` +
      `connections ${opts.connections}, compile ${process.env.LITEFS_LAZY_COMPILE === "1" ? "lazy" : "eager"}\n`,
  );
  // With proxy runs: a proxy on every node in front of the chaos app on that node.
  const appPorts =
    opts.proxyHandoffRuns > 0 ? await Promise.all([0, 1, 2].map(() => freeLoopbackPort())) : [];
  const clusterStarted = performance.now();
  const cluster = await LeasedCluster.start({
    nodes: 3,
    ttl: opts.ttl,
    lockDelay: opts.lockDelay,
    config: { log: { format: "json", timestamp: true, debug: !opts.infoLogs } },
    ...(appPorts.length === 0
      ? {}
      : { proxy: { target: (i: number) => `127.0.0.1:${appPorts[i]}`, db: PROXY_DB } }),
  });
  const clusterStartMs = performance.now() - clusterStarted;
  const apps: TrackedProcess[] = [];
  const proxyGaps: number[] = [];
  /** Resident memory of each running node at the end (MB). */
  const nodeRssMb: number[] = [];
  const failovers: number[] = [];
  const handoffs: number[] = [];
  /** Per handoff, the probe's longest wait from one commit to the next, from `litefs promote` on. */
  const handoffStalls: number[] = [];
  const nodeInternal: number[] = [];
  const promoteWall: number[] = [];
  const handoffFailures: string[] = [];
  const timelines: { gapMs: number; steps: TimelineStep[] }[] = [];
  /** The target's last apply before the HANDOFF frame, per handoff (debug logs only). */
  const lastApplyLockMs: number[] = [];
  const lastApplyTotalMs: number[] = [];
  let probe: PrimaryWriteProbe | undefined;
  const commitTimes: number[] = [];
  try {
    const first = await cluster.primary();
    const setup = new Database(first.node.dbPath(DB));
    setup.exec(
      `PRAGMA journal_mode=${opts.journalMode}; ` +
        "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, n INTEGER)",
    );
    setup.close();
    probe = new PrimaryWriteProbe({
      nodes: () => cluster.running().map(probeNode),
      db: DB,
      synchronous: opts.synchronous,
    });
    await probe.firstCommitAfter(0, 30_000);
    if (opts.loadSeconds > 0) {
      const before = probe.commits.length;
      await sleep(opts.loadSeconds * 1000);
      process.stdout.write(
        `  load: ${probe.commits.length - before} commits in ${opts.loadSeconds} s before the first measurement\n`,
      );
    }

    for (let run = 1; run <= opts.failoverRuns; run++) {
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
    for (let run = 1; run <= opts.handoffRuns; run++) {
      const primary = await cluster.waitForPrimary({ timeoutMs: 30_000 });
      // Not the node the previous handoff demoted unless --handoff-back asks for exactly that.
      const candidates = cluster.others(primary);
      const target = opts.handoffBack
        ? (candidates.find((n) => n === previous) ?? candidates[0])
        : (candidates.find((n) => n !== previous) ?? candidates[0]);
      previous = primary;
      const reconnectMs = await cluster.waitForReplicasConnected(primary, 60_000);
      if (opts.connections === "everywhere") probe.openEverywhere();
      await sleep(500);
      const opened = probe.opened;
      const started = performance.now();
      const startedWall = wallNow();
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
      const stall = probe.longestStall(started, commit.at);
      handoffStalls.push(stall);
      promoteWall.push(wallMs);
      await waitForRole(cluster, primary, "replica");
      // The logs are complete up to the target's switch by now (it answered /promote after it).
      const zero = last?.wallMs ?? commit.wallMs - gap;
      const failed = probe.failuresBetween(last?.at ?? started, commit.at);
      const targetLog = target.node.lastRunLogs();
      const steps = handoffTimeline({
        oldLog: primary.node.lastRunLogs(),
        targetLog,
        zeroWallMs: zero,
        endWallMs: commit.wallMs + 100,
      });
      const lastApply = targetLastApply({
        targetLog,
        zeroWallMs: zero,
        endWallMs: commit.wallMs + 100,
      });
      const enterParts = targetEnterParts({ targetLog, zeroWallMs: zero, endWallMs: commit.wallMs + 100 });
      const pace = oldPaceStep({
        oldLog: primary.node.lastRunLogs(),
        fromWallMs: startedWall,
        toWallMs: commit.wallMs + 100,
      });
      if (lastApply !== undefined) {
        lastApplyLockMs.push(lastApply.lockMs);
        lastApplyTotalMs.push(lastApply.totalMs);
      }
      const onTarget = failed.filter((f) => f.node === target.name);
      const probeSteps: TimelineStep[] = [
        {
          label: "probe: first failure on target",
          ms: onTarget[0] === undefined ? undefined : onTarget[0].wallMs - zero,
        },
        {
          label: "probe: last failure on target",
          ms: onTarget.at(-1) === undefined ? undefined : onTarget.at(-1)!.wallMs - zero,
        },
        { label: "probe: first failure", ms: failed[0] === undefined ? undefined : failed[0].wallMs - zero },
        { label: "probe: first commit on target", ms: commit.wallMs - zero },
      ];
      timelines.push({ gapMs: gap, steps: [...steps, ...probeSteps] });
      const paused = stepMs(steps, "old: commits paused, handing off");
      const primaryAt = stepMs(steps, "target: primary (accepts writes)");
      const internal = paused !== undefined && primaryAt !== undefined ? primaryAt - paused : undefined;
      if (internal !== undefined) nodeInternal.push(internal);
      process.stdout.write(
        `  handoff ${run}: ${primary.name} → ${commit.node}: write gap ${gap.toFixed(1)} ms, longest stall ` +
          `${stall.toFixed(1)} ms, in the nodes ` +
          `${internal?.toFixed(0) ?? "?"} ms (promote CLI ${wallMs.toFixed(0)} ms; ${failed.length} failed ` +
          `attempts, ${probe.opened - opened} connections opened; replicas had reconnected in ${reconnectMs} ms)\n` +
          `    pace step: ${pace ?? "not logged"}\n` +
          `    ${formatTimeline(steps, probeSteps)}\n` +
          `    target's last apply before the frame: ${lastApply === undefined ? "not logged" : `locks ${lastApply.lockMs} ms of ${lastApply.totalMs.toFixed(2)} ms`}; ` +
          `entering the role: ${enterParts ?? "not logged"} ms; ` +
          `failed attempts: ${describeFailures(failed)}; first commit on target took ` +
          `${commit.tookMs.toFixed(1)} ms\n` +
          `    lookups: ${describeLookups(
            probe.lookups.filter((l) => l.at > (last?.at ?? started) && l.at <= commit.at),
            zero,
          )}\n`,
      );
    }

    if (opts.proxyHandoffRuns > 0) {
      commitTimes.push(...probe.commits.map((c) => c.tookMs));
      await probe.stop(); // one writer at a time
      probe = undefined;
      await proxyHandoffs(cluster, opts.proxyHandoffRuns, appPorts, apps, proxyGaps, handoffFailures);
    }
  } finally {
    if (probe !== undefined) commitTimes.push(...probe.commits.map((c) => c.tookMs));
    await probe?.stop();
    for (const app of apps) await app.stop(3_000).catch(() => undefined);
    for (const n of cluster.running()) {
      const status = fs.readFileSync(`/proc/${n.node.pid}/status`, "utf8");
      const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
      if (kb !== undefined) nodeRssMb.push(Number(kb) / 1024);
    }
    if (opts.logs !== undefined) {
      fs.mkdirSync(opts.logs, { recursive: true });
      for (const n of cluster.nodes) fs.writeFileSync(`${opts.logs}/${n.name}.log`, n.node.logs());
    }
    await cluster.cleanup();
  }

  const row = (name: string, values: number[], goal: string, litefs: string): string =>
    values.length === 0
      ? `${name.padEnd(40)}${"-".padStart(8)}${"-".padStart(8)}   ${goal.padEnd(12)}${litefs}`
      : `${name.padEnd(40)}${percentile(values, 50).toFixed(0).padStart(8)}${Math.max(...values)
          .toFixed(0)
          .padStart(8)}   ${goal.padEnd(12)}${litefs}`;
  process.stdout.write(
    `\n${"".padEnd(40)}${"p50 ms".padStart(8)}${"max ms".padStart(8)}   ${"goal".padEnd(12)}LiteFS\n`,
  );
  process.stdout.write(
    row(`failover (kill -9, ttl ${opts.ttl})`, failovers, "≤ 3000", "≥ 11000 (Consul)") + "\n",
  );
  process.stdout.write(row("handoff (write gap, probe)", handoffs, "≤ 100", "a few ms") + "\n");
  // The gap, or a commit the old primary answered late while it paced its writers (handoff-pacer.ts).
  process.stdout.write(row("  longest stall between commits", handoffStalls, "≤ 100", "") + "\n");
  process.stdout.write(row("  inside the nodes (pause → primary)", nodeInternal, "", "") + "\n");
  process.stdout.write(row("  litefs promote, CLI wall time", promoteWall, "", "") + "\n");
  if (lastApplyLockMs.length > 0) {
    process.stdout.write(row("  target's last apply, whole", lastApplyTotalMs, "", "") + "\n");
    process.stdout.write(row("  target's last apply, locks", lastApplyLockMs, "", "") + "\n");
  }
  // What one of the probe's commits costs at all (DELETE and synchronous=FULL by default): a handoff
  // gap holds at least one, on the target, after it accepts writes.
  process.stdout.write(row("  any probe commit (every run)", commitTimes, "", "") + "\n");
  if (opts.proxyHandoffRuns > 0) {
    process.stdout.write(row("handoff (through a replica's proxy)", proxyGaps, "≤ 100", "") + "\n");
  }
  if (timelines.length > 0) {
    process.stdout.write("handoff steps, p50 ms after the last commit on the old primary:\n");
    for (const { label } of timelines[0].steps) {
      const values = timelines.map((t) => stepMs(t.steps, label)).filter((v) => v !== undefined);
      if (values.length === 0) continue;
      process.stdout.write(
        `  ${label.padEnd(38)}${percentile(values, 50).toFixed(0).padStart(6)}  (max ${Math.max(...values).toFixed(0)}, ${values.length} runs)\n`,
      );
    }
  }
  if (handoffFailures.length > 0) {
    process.stdout.write(`handoffs that failed: ${handoffFailures.length} of ${opts.handoffRuns}\n`);
  }
  if (opts.json !== undefined) {
    fs.writeFileSync(
      opts.json,
      JSON.stringify(
        {
          ttl: opts.ttl,
          lockDelay: opts.lockDelay,
          compile: process.env.LITEFS_LAZY_COMPILE === "1" ? "lazy" : "eager",
          clusterStartMs,
          nodeRssMb,
          failovers,
          handoffs,
          handoffStalls,
          nodeInternal,
          promoteWall,
          lastApplyLockMs,
          lastApplyTotalMs,
          proxyGaps,
          handoffFailures,
          timelines,
        },
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
