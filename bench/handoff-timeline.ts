// Where a handoff's write gap goes, from the nodes' own logs (JSON lines with `time`, debug level:
// bench/failover.ts starts the nodes so) lined up with the write probe's wall clock.
//
// One handoff = old primary → target. The steps, each the first matching log line inside the window:
//   old  "handing the lease off"            commits are already paused; the target has caught up
//   old  "handoff recorded at the coordinator"   the etcd transaction returned
//   old  "HANDOFF frame sent"
//   tgt  "the lease watch: holder"  (null)  the target's watch saw the lease free
//   tgt  "the primary hands its lease to this node"   the target read HANDOFF
//   tgt  "acquiring the lease" / "lease acquired"
//   tgt  "role change: primary"             the target accepts writes (after its switch)
// and from the probe: its last commit on the old primary (t = 0), its first failure there, its first
// commit on the target. Log times are whole milliseconds, so each offset is ±1 ms.

export interface TimelineStep {
  readonly label: string;
  /** Offset from the probe's last commit on the old primary (ms); undefined when not logged. */
  readonly ms: number | undefined;
}

interface LogLine {
  readonly wallMs: number;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

const STEPS: readonly { label: string; on: "old" | "target"; msg: string; holderNull?: boolean }[] = [
  { label: "old: commits paused, handing off", on: "old", msg: "handing the lease off" },
  { label: "old: etcd handoff txn done", on: "old", msg: "handoff recorded at the coordinator" },
  { label: "old: HANDOFF frame sent", on: "old", msg: "HANDOFF frame sent" },
  { label: "target: watch saw no holder", on: "target", msg: "the lease watch: holder", holderNull: true },
  { label: "target: HANDOFF frame read", on: "target", msg: "the primary hands its lease to this node" },
  { label: "target: acquire started", on: "target", msg: "acquiring the lease" },
  { label: "target: lease acquired", on: "target", msg: "lease acquired" },
  { label: "target: primary (accepts writes)", on: "target", msg: "role change: primary" },
];

/** JSON log lines with a `time` from `text`, inside [fromWallMs, toWallMs]. */
function parseLog(text: string, fromWallMs: number, toWallMs: number): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of text.split("\n")) {
    if (!raw.startsWith("{")) continue;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof record.time !== "string" || typeof record.msg !== "string") continue;
    const wallMs = Date.parse(record.time);
    if (!(wallMs >= fromWallMs && wallMs <= toWallMs)) continue;
    lines.push({ wallMs, msg: record.msg, fields: record });
  }
  return lines;
}

/**
 * The steps of one handoff, as offsets from `zeroWallMs` (the probe's last commit on the old primary),
 * looking at log lines in [zeroWallMs − lookBackMs, endWallMs].
 */
export function handoffTimeline(opts: {
  oldLog: string;
  targetLog: string;
  zeroWallMs: number;
  endWallMs: number;
  lookBackMs?: number;
}): TimelineStep[] {
  const from = opts.zeroWallMs - (opts.lookBackMs ?? 200);
  const old = parseLog(opts.oldLog, from, opts.endWallMs);
  const target = parseLog(opts.targetLog, from, opts.endWallMs);
  return STEPS.map((step) => {
    const lines = step.on === "old" ? old : target;
    const line = lines.find(
      (l) => l.msg === step.msg && (step.holderNull !== true || l.fields.holder === null),
    );
    return { label: step.label, ms: line === undefined ? undefined : line.wallMs - opts.zeroWallMs };
  });
}

/** "label +12" pairs in order of time, for one printed line. */
export function formatTimeline(steps: readonly TimelineStep[], extra: readonly TimelineStep[] = []): string {
  return [...steps, ...extra]
    .filter((s) => s.ms !== undefined)
    .sort((a, b) => a.ms! - b.ms!)
    .map((s) => `${s.label} ${s.ms! >= 0 ? "+" : ""}${s.ms!.toFixed(0)}`)
    .join(" | ");
}

/** The target's last apply before it read the HANDOFF frame: its lock and total times (debug logs). */
export interface LastApply {
  /** Taking the locks (ms, 0.01 resolution, as the node measured). */
  readonly lockMs: number;
  /** Persist + locks + write + invalidation + wal-index header + release + fsync (ms). */
  readonly totalMs: number;
}

/** The target's log and the window of one handoff: [zeroWallMs − lookBackMs (200), endWallMs]. */
export interface TargetLogWindow {
  readonly targetLog: string;
  readonly zeroWallMs: number;
  readonly endWallMs: number;
  readonly lookBackMs?: number;
}

function targetLines(opts: TargetLogWindow): LogLine[] {
  return parseLog(opts.targetLog, opts.zeroWallMs - (opts.lookBackMs ?? 200), opts.endWallMs);
}

/**
 * The last "replicated transaction applied" line the target logged in [zeroWallMs − lookBackMs, the
 * HANDOFF frame read], or undefined when its log has none there (info-level logs, or nothing applied).
 */
export function targetLastApply(opts: TargetLogWindow): LastApply | undefined {
  const lines = targetLines(opts);
  const frame = lines.findIndex((l) => l.msg === "the primary hands its lease to this node");
  const before = frame < 0 ? lines : lines.slice(0, frame);
  const applied = before.filter((l) => l.msg === "replicated transaction applied").at(-1);
  if (applied === undefined) return undefined;
  const ms = (name: string): number => (typeof applied.fields[name] === "number" ? applied.fields[name] : 0);
  return {
    lockMs: ms("lockMs"),
    totalMs: ["persistMs", "settleMs", "lockMs", "writeMs", "invalidateMs", "shmMs", "syncMs"].reduce(
      (s, n) => s + ms(n),
      0,
    ),
  };
}

/**
 * The target's "primary role entered" line in [zeroWallMs − lookBackMs, endWallMs]: the parts of
 * entering the role after the lease (stopping the replica, the cluster id, the epoch files' fsyncs,
 * publishing the role), as "epochs 2.6, publish 0.5, …" (ms), or undefined when not logged.
 */
export function targetEnterParts(opts: TargetLogWindow): string | undefined {
  const lines = targetLines(opts);
  const entered = lines.find((l) => l.msg === "primary role entered");
  if (entered === undefined) return undefined;
  const parts: [string, string][] = [
    ["stop replica", "stopReplicaMs"],
    ["cluster id", "clusterIdMs"],
    ["epochs", "epochsMs"],
    ["publish", "publishMs"],
  ];
  const ms = (field: string): string => {
    const value = entered.fields[field];
    return typeof value === "number" ? String(value) : "?";
  };
  return parts.map(([label, field]) => `${label} ${ms(field)}`).join(", ");
}

/**
 * The old primary's pace step (src/node/handoff-pacer.ts) logged in [fromWallMs, toWallMs], as
 * "12 ms, close, 1 commit held (longest 9 ms), 2 behind at the end", or undefined when not logged.
 */
export function oldPaceStep(opts: {
  oldLog: string;
  fromWallMs: number;
  toWallMs: number;
}): string | undefined {
  const line = parseLog(opts.oldLog, opts.fromWallMs, opts.toWallMs).find(
    (l) => l.msg === "handoff: the pace step ended",
  );
  if (line === undefined) return undefined;
  const f = line.fields;
  const held = typeof f.held === "number" ? f.held : 0;
  return (
    `${String(f.waitedMs)} ms, ${f.close === true ? "close" : "not close"}, ` +
    `${held} commit${held === 1 ? "" : "s"} held (longest ${String(f.longestHoldMs)} ms), ` +
    `${typeof f.behind === "number" ? f.behind : "?"} behind at the end`
  );
}
