// The faults a chaos run injects, one at a time, chosen from a seeded PRNG (the same seed gives the
// same kinds, targets, durations and pauses — the timing of the workload around them varies):
//   kill9      SIGKILL the node's process group (mount torn down), restart it on the same data at heal
//   freeze     SIGSTOP the node (a frozen primary or replica), SIGCONT at heal
//   partition  cut the node's paths to the others (and to etcd): fault proxies dropped or paused
//   disk-full  fill the node's tmpfs with ballast (ENOSPC from the kernel), release it at heal
//   slow-disk  delay the node's writes and fsyncs on its FaultyDisk, clear the rules at heal
// and, asked for by name (--kinds; etcd lease only — they move the lease on purpose), the planned moves:
//   handoff    `litefs promote` of the node (of the next running node when it is the primary): the old
//              primary paces its commits until the target is close, then hands the lease over
//   sigterm    SIGTERM the primary, whichever node the plan drew (a deploy restarting the primary): it
//              hands off to a candidate first; restarted at heal
// Neither may lose an acknowledged write: they open no asynchronous window (harness.ts).
// Every fault is healed before the next one; a node that exited during any fault is restarted at heal
// (and the record says so, unless the fault stopped it on purpose).
import { continuePid, type ChaosCluster, type ChaosNode } from "./chaos-cluster.js";
import { abortFuseConnection } from "./fuse-abort.js";
import type { FaultProxy } from "../support/fault-proxy.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import type { Prng } from "../support/prng.js";

/** How long a SIGKILLed node may take to exit before it counts as stuck. */
const KILL_EXIT_MS = 15_000;

export const FAULT_KINDS = ["kill9", "freeze", "partition", "disk-full", "slow-disk"] as const;
/** The planned lease moves: chosen only by name (etcd lease), not in the default mix. */
export const PLANNED_KINDS = ["handoff", "sigterm"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | (typeof PLANNED_KINDS)[number];

export interface FaultPlan {
  kind: FaultKind;
  node: string;
  durationMs: number;
  /** Partition flavour: "drop" (peers see resets) or "pause" (silence). */
  flavour: "drop" | "pause";
  /** Slow disk: delay per write/fsync. */
  delayMs: number;
}

export interface FaultRecord extends FaultPlan {
  /** Role of the node when the fault began. */
  role: "primary" | "replica" | "unknown";
  startMs: number;
  healedMs: number;
  /** The node is running and answering again (its API), or null if it never did within the bound. */
  recoveredMs: number | null;
  notes: string[];
  /** Set when the killed node could not exit by itself (a violation: it had to be freed by hand). */
  stuck?: string;
}

/** Draws the next fault from the PRNG. */
export function planFault(prng: Prng, nodes: readonly string[], kinds: readonly FaultKind[]): FaultPlan {
  return {
    kind: prng.pick(kinds),
    node: prng.pick(nodes),
    durationMs: prng.int(1_500, 5_000),
    flavour: prng.chance(0.5) ? "drop" : "pause",
    delayMs: prng.int(30, 250),
  };
}

/** Injects `plan`, waits its duration, heals it, and waits (bounded) until the node answers again. */
export async function runFault(
  cluster: ChaosCluster,
  plan: FaultPlan,
  log: (line: string) => void,
): Promise<FaultRecord> {
  // Right after a failover no node may say "primary" yet: wait a little so the role is known.
  let primary = await cluster.primary();
  for (const deadline = Date.now() + 5_000; primary === undefined && Date.now() < deadline;) {
    await sleep(100);
    primary = await cluster.primary();
  }
  const chaos = plan.kind === "sigterm" && primary !== undefined ? primary : cluster.node(plan.node);
  const role = primary === undefined ? "unknown" : primary === chaos ? "primary" : "replica";
  const record: FaultRecord = {
    ...plan,
    node: chaos.name,
    role,
    startMs: Date.now(),
    healedMs: 0,
    recoveredMs: null,
    notes: [],
  };
  log(`fault ${plan.kind} on ${chaos.name} (${role}) for ${plan.durationMs} ms`);
  await inject(cluster, chaos, plan, record);
  await sleep(plan.durationMs);
  await heal(cluster, chaos, plan, record);
  record.healedMs = Date.now();
  record.recoveredMs = await waitAnswering(chaos, 60_000);
  if (record.recoveredMs === null) record.notes.push("node API did not answer within 60 s of the heal");
  return record;
}

async function inject(
  cluster: ChaosCluster,
  chaos: ChaosNode,
  plan: FaultPlan,
  record: FaultRecord,
): Promise<void> {
  switch (plan.kind) {
    case "kill9": {
      const crashed = chaos.node.crash();
      const exited = await Promise.race([crashed.then(() => true), sleep(KILL_EXIT_MS).then(() => false)]);
      if (!exited) {
        // A process SIGKILLed with a file open on its own mount waits forever for its own FLUSH answer.
        record.stuck = `did not exit within ${KILL_EXIT_MS} ms of SIGKILL; ${abortFuseConnection(chaos.node.fuseDir)}`;
        await crashed;
      }
      return;
    }
    case "freeze":
      process.kill(chaos.node.pid, "SIGSTOP");
      chaos.frozen = true;
      return;
    case "partition":
      for (const proxy of cutProxies(cluster, chaos)) {
        if (plan.flavour === "drop") proxy.drop();
        else proxy.pause();
      }
      return;
    case "disk-full":
      chaos.tmpfs.fillUp();
      return;
    case "slow-disk":
      if (chaos.disk === undefined) throw new Error("slow-disk fault needs the FaultyDisk layer");
      await chaos.disk.setRules([
        { ops: ["write", "fsync", "fsyncdir", "create", "rename"], delayMs: plan.delayMs },
      ]);
      return;
    case "handoff": {
      const target =
        record.role === "primary" ? cluster.nodes.find((n) => n !== chaos && n.node.running) : chaos;
      if (target === undefined) {
        record.notes.push("no running replica to hand off to");
        return;
      }
      const result = await runLitefsCli(["promote", "--url", target.apiUrl], { timeoutMs: 30_000 });
      // The CLI's answer names the epoch the target holds and how long the promotion took.
      record.notes.push(
        result.code === 0
          ? `handed off to ${target.name}: ${result.stdout.trim()}`
          : `litefs promote of ${target.name} failed: ${(result.stderr + result.stdout).trim().slice(0, 500)}`,
      );
      return;
    }
    case "sigterm": {
      const status = await chaos.node.stop(KILL_EXIT_MS);
      if (status.signal === "SIGKILL") record.notes.push(`did not stop within ${KILL_EXIT_MS} ms of SIGTERM`);
      return;
    }
  }
}

/**
 * The proxies a partition of `chaos` cuts: its own paths, and with the static lease, for the primary
 * (which has none of its own), every replica's path to it.
 */
function cutProxies(cluster: ChaosCluster, chaos: ChaosNode): FaultProxy[] {
  if (chaos.pathProxies.length > 0) return chaos.pathProxies;
  return cluster.nodes.flatMap((n) => (n.toPrimary === undefined ? [] : [n.toPrimary]));
}

async function heal(
  cluster: ChaosCluster,
  chaos: ChaosNode,
  plan: FaultPlan,
  record: FaultRecord,
): Promise<void> {
  switch (plan.kind) {
    case "kill9":
      break;
    case "freeze":
      continuePid(chaos);
      break;
    case "partition":
      for (const proxy of cutProxies(cluster, chaos)) proxy.heal();
      break;
    case "disk-full":
      chaos.tmpfs.releaseBallast();
      break;
    case "slow-disk":
      await chaos.disk!.clearRules();
      break;
    case "handoff":
    case "sigterm":
      break;
  }
  if (!chaos.node.running) {
    if (plan.kind !== "kill9" && plan.kind !== "sigterm") {
      record.notes.push(`node exited during the fault:\n${chaos.node.lastRunLogs().slice(-3000)}`);
    }
    try {
      await chaos.node.restart();
    } catch (err) {
      record.notes.push(`restart failed: ${(err as Error).message.slice(0, 3000)}`);
    }
  }
}

/** Polls the node's API until it answers; the time it did, or null after `timeoutMs`. */
export async function waitAnswering(chaos: ChaosNode, timeoutMs: number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (chaos.node.running) {
      try {
        const res = await fetch(`${chaos.apiUrl}/status`, { signal: AbortSignal.timeout(2_000) });
        await res.text();
        if (res.status === 200) return Date.now();
      } catch {
        // Not yet.
      }
    }
    await sleep(100);
  }
  return null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
