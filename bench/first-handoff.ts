// The first handoffs of fresh clusters, the nodes compiling eagerly (the default: src/cli/eager-compile.ts)
// and lazily (LITEFS_LAZY_COMPILE=1), side by side in one run. A cluster's first handoffs run code its
// nodes never ran before (a primary stepping down, a replica becoming primary and answering two stream
// requests); in production every handoff is such a one, hours apart. Each round starts one fresh cluster
// per mode, in alternating order, through bench/failover.ts (`--failover-runs 0 --handoff-runs H`,
// the probe in DELETE mode, connections everywhere) and reads its JSON.
//
//   node dist/bench/first-handoff.js [--clusters N] [--handoffs H] [--load-seconds S]
//   (default 5 clusters per mode, 2 handoffs each, no load before the first; ~25 s per cluster)
//
// Printed per mode: p50/max of each handoff's write gap and of its in-the-nodes part, the cluster's
// start-up time (etcd and three nodes) and the nodes' resident memory at the end; then eager/lazy ratios.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";

import { REPO_ROOT } from "../test/support/paths.js";
import { TrackedProcess } from "../test/support/tracked-process.js";

const FAILOVER_MAIN = path.join(REPO_ROOT, "dist", "bench", "failover.js");
const MODES = ["eager", "lazy"] as const;
type Mode = (typeof MODES)[number];

interface ClusterResult {
  handoffs: number[];
  nodeInternal: number[];
  clusterStartMs: number;
  nodeRssMb: number[];
  handoffFailures: string[];
}

function count(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min}: ${value}`);
  return n;
}

function p50(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length / 2) - 1)];
}

async function runCluster(
  mode: Mode,
  handoffs: number,
  loadSeconds: number,
  jsonFile: string,
): Promise<ClusterResult> {
  const env = { ...process.env, LITEFS_LAZY_COMPILE: mode === "lazy" ? "1" : "" };
  const child = await TrackedProcess.spawn({
    label: `failover bench (${mode})`,
    command: process.execPath,
    args: [
      "--enable-source-maps",
      FAILOVER_MAIN,
      "--failover-runs",
      "0",
      "--handoff-runs",
      String(handoffs),
      "--load-seconds",
      String(loadSeconds),
      "--json",
      jsonFile,
    ],
    env,
  });
  const status = await child.exit;
  if (status.code !== 0) throw new Error(`bench/failover (${mode}) failed: ${child.describe()}`);
  return JSON.parse(fs.readFileSync(jsonFile, "utf8")) as ClusterResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clusters: { type: "string", default: "5" },
      handoffs: { type: "string", default: "2" },
      "load-seconds": { type: "string", default: "0" },
    },
    strict: true,
  });
  const clusters = count("clusters", values.clusters, 1);
  const handoffs = count("handoffs", values.handoffs, 1);
  const loadSeconds = count("load-seconds", values["load-seconds"], 0);
  process.stdout.write(
    `first handoffs of fresh clusters: ${clusters} clusters per mode, ${handoffs} handoffs each, ` +
      `${loadSeconds} s of writes before the first\n`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "first-handoff-"));
  const results: Record<Mode, ClusterResult[]> = { eager: [], lazy: [] };
  try {
    for (let round = 1; round <= clusters; round++) {
      const order = round % 2 === 1 ? MODES : [...MODES].reverse();
      for (const mode of order) {
        const r = await runCluster(mode, handoffs, loadSeconds, path.join(dir, `${mode}-${round}.json`));
        results[mode].push(r);
        process.stdout.write(
          `  round ${round} ${mode.padEnd(5)}: write gaps ${r.handoffs.map((g) => g.toFixed(0)).join(", ")} ms; ` +
            `in the nodes ${r.nodeInternal.map((g) => g.toFixed(0)).join(", ")} ms; cluster up in ` +
            `${(r.clusterStartMs / 1000).toFixed(2)} s; nodes ${r.nodeRssMb.map((m) => m.toFixed(0)).join("/")} MB` +
            `${r.handoffFailures.length > 0 ? `; FAILED: ${r.handoffFailures.join("; ")}` : ""}\n`,
        );
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const column = (mode: Mode, pick: (r: ClusterResult) => number | undefined): number[] =>
    results[mode].map(pick).filter((v): v is number => v !== undefined);
  const rows: { label: string; pick: (r: ClusterResult) => number | undefined }[] = [];
  for (let h = 0; h < handoffs; h++) {
    rows.push({ label: `handoff ${h + 1}: write gap (ms)`, pick: (r) => r.handoffs[h] });
    rows.push({ label: `handoff ${h + 1}: in the nodes (ms)`, pick: (r) => r.nodeInternal[h] });
  }
  rows.push({ label: "cluster start-up (ms)", pick: (r) => r.clusterStartMs });
  rows.push({
    label: "node resident memory (MB)",
    pick: (r) => (r.nodeRssMb.length > 0 ? p50(r.nodeRssMb) : undefined),
  });
  process.stdout.write(
    `\n${"".padEnd(34)}${"eager p50".padStart(10)}${"max".padStart(8)}${"lazy p50".padStart(10)}${"max".padStart(8)}${"eager/lazy p50".padStart(16)}\n`,
  );
  for (const { label, pick } of rows) {
    const eager = column("eager", pick);
    const lazy = column("lazy", pick);
    if (eager.length === 0 || lazy.length === 0) continue;
    process.stdout.write(
      `${label.padEnd(34)}${p50(eager).toFixed(0).padStart(10)}${Math.max(...eager)
        .toFixed(0)
        .padStart(8)}` +
        `${p50(lazy).toFixed(0).padStart(10)}${Math.max(...lazy)
          .toFixed(0)
          .padStart(8)}` +
        `${(p50(eager) / p50(lazy)).toFixed(2).padStart(16)}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench/first-handoff: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
