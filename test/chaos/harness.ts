// A chaos run from start to verdict: a cluster (chaos-cluster.ts), the workload (chaos-workload.ts)
// through every node's proxy, faults drawn from a seeded PRNG (chaos-faults.ts) one after another
// for the run's duration, then everything healed, a bounded wait for convergence, and the checker
// (checker.ts). The result carries the seed, every fault, the check report and a per-kind summary;
// `CHAOS_SEED=<seed>` replays the same fault schedule (chaos.test.ts, bench/chaos.ts).
import * as path from "node:path";

import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { Prng } from "../support/prng.js";
import { CHAOS_DB, ChaosCluster, type LeaseMode } from "./chaos-cluster.js";
import { FAULT_KINDS, planFault, runFault, type FaultKind, type FaultRecord } from "./chaos-faults.js";
import { ChaosWorkload, type ReadAnomaly, type ReadFailure, type WorkloadResult } from "./chaos-workload.js";
import { checkChaos, formatCheckReport, type AsyncWindow, type ChaosCheckReport } from "./checker.js";

export interface ChaosRunOptions {
  seed: number;
  nodes?: number;
  lease?: LeaseMode;
  journalMode?: "delete" | "wal";
  /** The nodes write and stream v1 LTX files (`data.compress: false`). */
  uncompressed?: boolean;
  /** etcd lease TTL, whole seconds (default "2s"). */
  ttl?: string;
  /** How long faults are injected (the run is longer: start, settle, converge, check). */
  durationMs: number;
  /** Stop after this many faults even if time remains. */
  maxFaults?: number;
  kinds?: readonly FaultKind[];
  /** Concurrent writers (default 3) and readers (default 2). */
  writers?: number;
  readers?: number;
  /** Pause between faults, drawn in [min, max] ms. */
  gapMs?: [number, number];
  convergeTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface FaultKindSummary {
  kind: FaultKind;
  faults: number;
  /** Writes acknowledged between a fault's start and the node answering again. */
  acknowledged: number;
  lost: number;
  maxUnavailableMs: number;
  /**
   * Reads that failed between a fault's start and the node answering again: through the faulted node
   * (down, frozen or cut off: expected) and through the others (a planned move should fail none).
   */
  readsFailedVia: number;
  readsFailedElsewhere: number;
}

export interface ChaosRunResult {
  seed: number;
  lease: LeaseMode;
  journalMode: "delete" | "wal";
  /** The primary at the end (the checker's reference). */
  primary: string;
  faults: FaultRecord[];
  workload: WorkloadResult;
  check: ChaosCheckReport;
  /** Read anomalies not explained by a lost write (each also a violation in `violations`). */
  anomalies: ReadAnomaly[];
  /** Check violations plus workload anomalies and faults that left a node down. */
  violations: string[];
  ok: boolean;
  summary: FaultKindSummary[];
  elapsedMs: number;
}

/**
 * The seed of a run: `CHAOS_SEED` when set (an integer to replay a run, or "random"), else `fallback`
 * ("random": a fresh one).
 */
export function chaosSeed(fallback: number | "random" = "random"): number {
  const text = process.env.CHAOS_SEED;
  const choice = text !== undefined && text !== "" ? text : String(fallback);
  if (choice === "random") return (Math.random() * 0x1_0000_0000) >>> 0;
  const seed = Number(choice);
  if (!Number.isInteger(seed)) throw new Error(`CHAOS_SEED must be an integer or "random", got "${choice}"`);
  return seed >>> 0;
}

export async function runChaos(options: ChaosRunOptions): Promise<ChaosRunResult> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const lease = options.lease ?? "static";
  const kinds = options.kinds ?? FAULT_KINDS;
  const prng = new Prng(options.seed);
  log(
    `chaos run seed=${options.seed} lease=${lease} journal=${options.journalMode ?? "delete"} ` +
      `ltx=${options.uncompressed === true ? "v1" : "v3"} nodes=${options.nodes ?? 3} kinds=${kinds.join(",")}`,
  );
  const ttlMs = parseSeconds(options.ttl ?? "2s");
  const cluster = await ChaosCluster.start({
    nodes: options.nodes ?? 3,
    lease,
    faultyDisk: kinds.includes("slow-disk"),
    journalMode: options.journalMode,
    uncompressed: options.uncompressed,
    ttl: options.ttl,
  });
  try {
    await initSchema(cluster);
    const workload = new ChaosWorkload({
      targets: () => cluster.nodes.map((n) => ({ name: n.name, proxyUrl: n.proxyUrl })),
      writers: options.writers ?? 3,
      readers: options.readers ?? 2,
      seed: options.seed,
    });
    workload.start();
    await sleep(2_000);
    const faults: FaultRecord[] = [];
    const [gapMin, gapMax] = options.gapMs ?? [1_000, 3_000];
    while (Date.now() - started < options.durationMs && faults.length < (options.maxFaults ?? Infinity)) {
      await sleep(prng.int(gapMin, gapMax));
      const plan = planFault(
        prng,
        cluster.nodes.map((n) => n.name),
        kinds,
      );
      const record = await runFault(cluster, plan, log);
      faults.push(record);
      log(
        `  healed; node answering ${record.recoveredMs === null ? "never" : `after ${record.recoveredMs - record.healedMs} ms`}`,
      );
    }
    await sleep(2_000);
    const result = await workload.stop();
    log(
      `workload: ${result.acked.length} writes acknowledged, ${result.reads} reads, ${result.writeErrors} failed write attempts`,
    );

    const primary = await waitForPrimary(cluster, 30_000);
    const converged = await waitConverged(cluster, primary, options.convergeTimeoutMs ?? 60_000);
    log(`converged: ${converged}`);
    const asyncWindows: AsyncWindow[] =
      lease === "static"
        ? [] // no failover: the primary's acknowledged writes are durable on it, nothing may be lost
        : faults.filter((f) => f.role === "primary").flatMap((f) => asyncWindow(f, ttlMs));
    const check = await checkChaos({
      seed: options.seed,
      db: CHAOS_DB,
      nodes: cluster.nodes.map((n) => ({
        name: n.name,
        dataDir: n.sourceDataDir,
        sqlPath: n.dbPath,
      })),
      primary,
      acked: result.acked,
      asyncWindows,
      windowSlackMs: WINDOW_SLACK_MS,
      allowFailoverReuse: lease !== "static",
      requireConverged: true,
    });
    const lostIds = new Set(check.lost.map((l) => l.id));
    const anomalies = result.anomalies.filter((a) => a.kind === "torn" || !lostIds.has(a.id!));
    const violations = [
      ...check.violations,
      ...anomalies.map(
        (a) => `read anomaly ${a.kind} via ${a.via} at ${new Date(a.atMs).toISOString()}: ${a.detail}`,
      ),
      ...faults
        .filter((f) => f.recoveredMs === null)
        .map(
          (f) =>
            `after ${f.kind} on ${f.node} the node did not come back: ${f.notes.join(" | ").slice(0, 2000)}`,
        ),
      ...faults
        .filter((f) => f.stuck !== undefined)
        .map((f) => `${f.kind} on ${f.node} (${f.role}): the node ${f.stuck}`),
    ];
    return {
      seed: options.seed,
      lease,
      journalMode: options.journalMode ?? "delete",
      primary,
      faults,
      workload: result,
      check,
      anomalies,
      violations,
      ok: violations.length === 0,
      summary: summarize(kinds, faults, result, check),
      elapsedMs: Date.now() - started,
    };
  } finally {
    await cluster.cleanup();
  }
}

/** How long before a fault an acknowledged write may still be unreplicated (replication lag). */
const WINDOW_SLACK_MS = 2_000;
/** Between a commit on the primary and its acknowledgement reaching the client. */
const ACK_TRIP_MS = 1_000;

/**
 * When acknowledged writes may be lost to a fault of the primary (etcd lease): those acknowledged before
 * the fault and not yet replicated (WINDOW_SLACK_MS before its start), and those it acknowledged
 * afterwards while it still held its lease — a killed node none; a cut-off node until its lease
 * deadline (at most one TTL after its last renewal); a frozen node, a transaction in flight when it
 * froze, finished at SIGCONT. A lost write outside these bounds is a violation: a primary acknowledged
 * a write after its lease had run out.
 */
function asyncWindow(fault: FaultRecord, ttlMs: number): AsyncWindow[] {
  const label = `${fault.kind}@${fault.node}`;
  switch (fault.kind) {
    case "kill9":
      return [{ label, startMs: fault.startMs, endMs: fault.startMs + ACK_TRIP_MS }];
    case "partition":
      return [{ label, startMs: fault.startMs, endMs: fault.startMs + ttlMs + ACK_TRIP_MS }];
    case "freeze":
      return [{ label, startMs: fault.startMs, endMs: fault.healedMs + ACK_TRIP_MS }];
    default:
      return []; // the disk faults leave the node its lease and its connections
  }
}

function parseSeconds(text: string): number {
  const match = /^(\d+)s$/.exec(text);
  if (match === null) throw new Error(`chaos: ttl must be whole seconds like "2s", not "${text}"`);
  return Number(match[1]) * 1000;
}

/** The run as text: seed, faults, the per-kind table and the check report. */
export function formatChaosRun(run: ChaosRunResult): string {
  const lines = [
    `chaos run seed=${run.seed} lease=${run.lease} journal=${run.journalMode}: ${run.ok ? "OK" : `${run.violations.length} VIOLATION(S)`} in ${(run.elapsedMs / 1000).toFixed(0)} s`,
    `replay: CHAOS_SEED=${run.seed}; primary at the end: ${run.primary}`,
    ...run.faults.map(
      (f) =>
        `  fault ${f.kind} ${f.node} (${f.role}) ${f.durationMs} ms` +
        (f.kind === "partition" ? ` ${f.flavour}` : f.kind === "slow-disk" ? ` ${f.delayMs} ms/op` : "") +
        (f.notes.length > 0 ? ` — ${f.notes.map((n) => n.split("\n")[0]).join("; ")}` : ""),
    ),
    formatSummary(run.summary),
    ...unexpectedReadFailures(run).map(
      ({ fault, failure }) =>
        `  failed read during ${fault.kind}@${fault.node} (+${failure.atMs - fault.startMs} ms) via ${failure.via}: ` +
        `${failure.status === 0 ? "no answer" : `HTTP ${failure.status}`} ${failure.detail}`,
    ),
    formatCheckReport(run.check),
    ...run.violations.filter((v) => !run.check.violations.includes(v)).map((v) => `  VIOLATION ${v}`),
  ];
  return lines.join("\n");
}

/**
 * The first reads that failed where no node was down for them: through a node other than the faulted
 * one, or during a handoff (no node stops there).
 */
function unexpectedReadFailures(
  run: ChaosRunResult,
  limit = 10,
): { fault: FaultRecord; failure: ReadFailure }[] {
  const found: { fault: FaultRecord; failure: ReadFailure }[] = [];
  for (const fault of run.faults) {
    const until = fault.recoveredMs ?? fault.healedMs;
    for (const failure of run.workload.readFailures) {
      if (failure.atMs < fault.startMs || failure.atMs > until) continue;
      if (failure.via === fault.node && fault.kind !== "handoff") continue;
      if (found.length === limit) return found;
      found.push({ fault, failure });
    }
  }
  return found;
}

export function formatSummary(summary: readonly FaultKindSummary[]): string {
  const rows = [
    [
      "fault",
      "injected",
      "writes acked",
      "writes lost",
      "max unavailability",
      "failed reads (via it / others)",
    ],
  ];
  for (const s of summary) {
    rows.push([
      s.kind,
      String(s.faults),
      String(s.acknowledged),
      String(s.lost),
      `${(s.maxUnavailableMs / 1000).toFixed(2)} s`,
      `${s.readsFailedVia} / ${s.readsFailedElsewhere}`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => "  | " + r.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |").join("\n");
}

function summarize(
  kinds: readonly FaultKind[],
  faults: readonly FaultRecord[],
  workload: WorkloadResult,
  check: ChaosCheckReport,
): FaultKindSummary[] {
  const times = workload.acked.map((a) => a.ackedAtMs).sort((a, b) => a - b);
  const end = times.at(-1) ?? Date.now();
  return kinds.map((kind) => {
    const ofKind = faults.filter((f) => f.kind === kind);
    let acknowledged = 0;
    let maxUnavailableMs = 0;
    let readsFailedVia = 0;
    let readsFailedElsewhere = 0;
    for (const fault of ofKind) {
      const until = fault.recoveredMs ?? fault.healedMs;
      acknowledged += times.filter((t) => t >= fault.startMs && t <= until).length;
      for (const failure of workload.readFailures) {
        if (failure.atMs < fault.startMs || failure.atMs > until) continue;
        if (failure.via === fault.node) readsFailedVia++;
        else readsFailedElsewhere++;
      }
      maxUnavailableMs = Math.max(maxUnavailableMs, longestGap(times, fault.startMs, until, end));
    }
    const lost = check.lost.filter((l) => l.window !== null && l.window.startsWith(`${kind}@`)).length;
    return {
      kind,
      faults: ofKind.length,
      acknowledged,
      lost,
      maxUnavailableMs,
      readsFailedVia,
      readsFailedElsewhere,
    };
  });
}

/** The longest stretch without an acknowledged write that overlaps [from, to]. */
export function longestGap(sortedTimes: readonly number[], from: number, to: number, runEnd: number): number {
  let previous = from;
  for (const t of sortedTimes) {
    if (t < from) previous = t;
    else break;
  }
  let longest = 0;
  for (const t of sortedTimes) {
    if (t < from) continue;
    longest = Math.max(longest, t - Math.max(previous, from));
    previous = t;
    if (t > to) return longest;
  }
  return Math.max(longest, runEnd - Math.max(previous, from));
}

async function initSchema(cluster: ChaosCluster): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = "";
  while (Date.now() < deadline) {
    const primary = await cluster.primary();
    if (primary !== undefined) {
      try {
        const res = await fetch(`${primary.proxyUrl}/init`, {
          method: "POST",
          signal: AbortSignal.timeout(5_000),
        });
        last = `${res.status} ${await res.text()}`;
        if (res.status === 200) return;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    await sleep(200);
  }
  throw new Error(`chaos: could not create the schema within 30 s: ${last}`);
}

async function waitForPrimary(cluster: ChaosCluster, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const primary = await cluster.primary();
    if (primary !== undefined) return primary.name;
    if (Date.now() > deadline) throw new Error(`chaos: no primary within ${timeoutMs} ms after the faults`);
    await sleep(200);
  }
}

/** Waits until every node's last live LTX TXID equals the primary's; false on timeout (the checker then reports). */
async function waitConverged(cluster: ChaosCluster, primary: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const position = (dataDir: string): bigint =>
    listLtxFiles(path.join(dataDir, "dbs", CHAOS_DB, "ltx")).reduce(
      (m, f) => (f.maxTxid > m ? f.maxTxid : m),
      0n,
    );
  for (;;) {
    const want = position(cluster.node(primary).sourceDataDir);
    if (cluster.nodes.every((n) => position(n.sourceDataDir) === want)) return true;
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
