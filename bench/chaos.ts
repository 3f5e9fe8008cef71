// The long chaos run: the same harness as test/chaos/chaos.test.ts (a cluster of real `litefs mount`
// nodes behind their proxies, writers and readers through the proxies, seeded faults one after another,
// then the checker), for longer and with more nodes. Prints, per fault kind: faults injected, writes
// acknowledged while the fault lasted, writes lost (inside the asynchronous window), and the longest
// stretch without any acknowledged write over a fault of that kind — and the checker's verdict.
//
//   node dist/bench/chaos.js [--seconds N] [--seed N] [--nodes N] [--lease etcd|static]
//                            [--journal-mode delete|wal] [--uncompressed]
//                            [--kinds kill9,freeze,partition,disk-full,slow-disk] [--json FILE]
//   --kinds may also name the planned lease moves `handoff` and `sigterm` (etcd lease only; not in the
//   default mix): `litefs promote` of a node, SIGTERM of a node — neither may lose an acknowledged write.
//   defaults: 300 s of faults, a random seed (printed; CHAOS_SEED works too), 3 nodes, etcd lease
//   (all nodes candidates, TTL 2 s), DELETE journal mode, v3 LTX files (--uncompressed: v1, that is
//   `data.compress: false`).
//   Exit code 1 when the checker finds a violation (the seed replays the fault schedule).
//   CHAOS_LOG_DIR=<dir> keeps every node's whole JSON log there (`<name>.log`, all of its runs).
import * as fs from "node:fs";
import { parseArgs } from "node:util";

import { FAULT_KINDS, PLANNED_KINDS, type FaultKind } from "../test/chaos/chaos-faults.js";
import type { LeaseMode } from "../test/chaos/chaos-cluster.js";
import { chaosSeed, formatChaosRun, runChaos } from "../test/chaos/harness.js";
import { keepOutputTail } from "../test/support/tracked-process.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "300" },
    seed: { type: "string" },
    nodes: { type: "string", default: "3" },
    lease: { type: "string", default: "etcd" },
    "journal-mode": { type: "string", default: "delete" },
    uncompressed: { type: "boolean", default: false },
    kinds: { type: "string", default: FAULT_KINDS.join(",") },
    json: { type: "string" },
  },
});

// A node process keeps only its output's last 256 KiB unless told more: a 150 s run's logs kept that
// way held 3 of its ~12 handoffs (session 22).
if ((process.env.CHAOS_LOG_DIR ?? "") !== "") keepOutputTail(256 << 20);

const seconds = Number(values.seconds);
const nodes = Number(values.nodes);
const seed = values.seed === undefined ? chaosSeed() : Number(values.seed) >>> 0;
const lease = values.lease as LeaseMode;
const kinds = values.kinds.split(",") as FaultKind[];
const journalMode = values["journal-mode"] as "delete" | "wal";
if (journalMode !== "delete" && journalMode !== "wal") throw new Error(`--journal-mode delete|wal`);
if (!(seconds > 0) || !(Number.isInteger(nodes) && nodes >= 2)) throw new Error("bad --seconds or --nodes");
if (lease !== "static" && lease !== "etcd") throw new Error(`--lease static|etcd, not ${String(lease)}`);
for (const kind of kinds) {
  const planned = (PLANNED_KINDS as readonly string[]).includes(kind);
  if (!planned && !(FAULT_KINDS as readonly string[]).includes(kind))
    throw new Error(`unknown fault kind ${kind}`);
  if (planned && lease !== "etcd") throw new Error(`--kinds ${kind} moves the lease: it needs --lease etcd`);
}

console.log(
  `chaos bench: seed ${seed} (replay: --seed ${seed}), ${nodes} nodes, ${lease} lease, ${seconds} s of faults`,
);
const run = await runChaos({
  seed,
  nodes,
  lease,
  journalMode,
  uncompressed: values.uncompressed,
  kinds,
  durationMs: seconds * 1000,
  log: (line) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`),
});
console.log(formatChaosRun(run));
console.log(
  `writes: ${run.workload.acked.length} acknowledged, ${run.check.lost.length} lost; ` +
    `reads: ${run.workload.reads} answered, ${run.workload.readErrors} failed; ` +
    `${run.workload.writeErrors} failed write attempts (retried)`,
);
if (values.json !== undefined) {
  const { workload, ...rest } = run;
  fs.writeFileSync(
    values.json,
    JSON.stringify(
      { ...rest, acknowledged: workload.acked.length },
      (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v),
      2,
    ),
  );
}
process.exit(run.ok ? 0 : 1);
