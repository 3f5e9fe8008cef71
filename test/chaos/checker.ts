// The chaos checker: run at the end of a chaos run (faults healed, the cluster quiet), it reads every
// node's LTX history and database and reports, with the seed, everything that breaks the guarantees:
//
//   - a TXID committed by two nodes (split brain), from the LTX headers' node IDs across every node's
//     live and quarantined files (ltx-history.ts);
//   - a replica whose history is not a prefix of the primary's (post-apply checksum chain);
//   - `PRAGMA integrity_check` not "ok" on a node; a backing database whose checksum is not its
//     position's;
//   - an acknowledged write missing from the primary, unless it was lost inside the asynchronous window
//     of a primary fault AND kept in some node's quarantine (counted, listed, bounded); a lost write
//     that is in no quarantine was silently dropped.
//
// The checker never weakens a rule to pass: every rule has a self-test that feeds it a fabricated
// history breaking it (chaos.test.ts).
import * as fs from "node:fs";
import * as path from "node:path";

import { checksumDatabaseFile } from "../../src/ltx/checksum.js";
import { readLtxFileSync } from "../../src/store/ltx-file-reader.js";
import { ACK_TOKEN_PATTERN } from "./ack-token.js";
import { runCommand } from "../support/litefs-cli.js";
import { SQLITE3_CLI } from "../support/paths.js";
import {
  checkHistories,
  hex,
  readNodeHistory,
  type DuplicateCommit,
  type HistoryFile,
  type NodeHistory,
} from "./ltx-history.js";

export interface CheckedNode {
  name: string;
  /** The node's data directory (read directly, not through any mount). */
  dataDir: string;
  /** Where SQLite can open the database read-only (the mount path of a running node). */
  sqlPath: string;
}

export interface AckRecord {
  id: number;
  /** When the client got the acknowledgement (ms since the epoch). */
  ackedAtMs: number;
  /** Which node's proxy the client sent the write to. */
  via: string;
}

/** A stretch in which acknowledged writes may be lost: a primary fault with asynchronous replication. */
export interface AsyncWindow {
  label: string;
  startMs: number;
  endMs: number;
}

export interface ChaosCheckInput {
  seed: number;
  db: string;
  nodes: readonly CheckedNode[];
  /** The node that is primary at the end: its live history is the reference. */
  primary: string;
  acked: readonly AckRecord[];
  asyncWindows: readonly AsyncWindow[];
  /** Lost writes may sit this long before a window's start (replication lag at the fault). */
  windowSlackMs: number;
  allowFailoverReuse: boolean;
  requireConverged: boolean;
}

export interface LostWrite extends AckRecord {
  quarantined: boolean;
  window: string | null;
}

export interface ChaosCheckReport {
  seed: number;
  ok: boolean;
  violations: string[];
  acknowledged: number;
  present: number;
  lost: LostWrite[];
  duplicates: DuplicateCommit[];
  positions: Record<string, string>;
  referenceTxid: string;
  quarantinedFiles: number;
  unverifiable: number;
}

export async function checkChaos(input: ChaosCheckInput): Promise<ChaosCheckReport> {
  const violations: string[] = [];
  const histories = input.nodes.map((n) => readNodeHistory(n.name, n.dataDir, input.db));
  const history = checkHistories(histories, {
    reference: input.primary,
    allowFailoverReuse: input.allowFailoverReuse,
    requireConverged: input.requireConverged,
  });
  violations.push(...history.violations);

  for (const node of input.nodes) {
    const integrity = await sql(node.sqlPath, "PRAGMA integrity_check");
    if (integrity.error !== undefined || integrity.lines.join("\n") !== "ok") {
      violations.push(`${node.name}: integrity_check: ${integrity.error ?? integrity.lines.join("; ")}`);
    }
    const own = histories.find((h) => h.node === node.name)!;
    violations.push(...(await checkBackingChecksum(node, input.db, own)));
  }

  const primary = input.nodes.find((n) => n.name === input.primary);
  if (primary === undefined) throw new Error(`checker: primary ${input.primary} is not among the nodes`);
  const rows = await sql(primary.sqlPath, "SELECT id FROM acks");
  if (rows.error !== undefined) violations.push(`${primary.name}: cannot read acks: ${rows.error}`);
  const present = new Set(rows.lines.filter((l) => l !== "").map(Number));
  const missing = input.acked.filter((a) => !present.has(a.id));
  const quarantinedIds = missing.length === 0 ? new Set<number>() : scanQuarantinedTokens(histories);
  const lost: LostWrite[] = missing.map((ack) => {
    // Windows may overlap (a fault soon after another): the write is charged to the latest one begun.
    const window = input.asyncWindows
      .filter((w) => ack.ackedAtMs >= w.startMs - input.windowSlackMs && ack.ackedAtMs <= w.endMs)
      .sort((a, b) => b.startMs - a.startMs)[0];
    return { ...ack, quarantined: quarantinedIds.has(ack.id), window: window?.label ?? null };
  });
  for (const write of lost) {
    const at = new Date(write.ackedAtMs).toISOString();
    if (write.window === null) {
      violations.push(
        `acknowledged write ${write.id} (acked ${at} via ${write.via}) lost outside any async window`,
      );
    }
    if (!write.quarantined) {
      violations.push(
        `acknowledged write ${write.id} (acked ${at} via ${write.via}) silently dropped: in no quarantine`,
      );
    }
  }

  return {
    seed: input.seed,
    ok: violations.length === 0,
    violations,
    acknowledged: input.acked.length,
    present: input.acked.length - missing.length,
    lost,
    duplicates: history.duplicates,
    positions: Object.fromEntries([...history.positions].map(([n, p]) => [n, hex(p)])),
    referenceTxid: hex(history.referenceTxid),
    quarantinedFiles: history.quarantinedFiles,
    unverifiable: history.unverifiable,
  };
}

/** A report as text: the seed first, so a failure can be replayed from the message alone. */
export function formatCheckReport(report: ChaosCheckReport): string {
  const lines = [
    `chaos check seed=${report.seed}: ${report.ok ? "OK" : `${report.violations.length} VIOLATION(S)`}`,
    `  acknowledged ${report.acknowledged}, present ${report.present}, lost ${report.lost.length}` +
      ` (quarantined ${report.lost.filter((l) => l.quarantined).length})`,
    `  reference TXID ${report.referenceTxid}; positions ${JSON.stringify(report.positions)}`,
    `  quarantined LTX files ${report.quarantinedFiles}; TXIDs committed by two nodes ${report.duplicates.length}` +
      ` (excused as failover: ${report.duplicates.filter((d) => d.excused).length}); unverifiable files ${report.unverifiable}`,
  ];
  for (const write of report.lost.slice(0, 50)) {
    lines.push(
      `  lost write ${write.id} acked ${new Date(write.ackedAtMs).toISOString()} via ${write.via}` +
        ` window=${write.window ?? "none"} quarantined=${write.quarantined}`,
    );
  }
  for (const violation of report.violations.slice(0, 100)) lines.push(`  VIOLATION ${violation}`);
  if (report.violations.length > 100) lines.push(`  … ${report.violations.length - 100} more`);
  return lines.join("\n");
}

/**
 * The backing database's checksum must equal the node's position (its last live LTX file's
 * post-apply checksum). Only meaningful with no rollback journal beside it (a quiet node in DELETE
 * mode); skipped when there is none to compare.
 */
async function checkBackingChecksum(node: CheckedNode, db: string, history: NodeHistory): Promise<string[]> {
  const dir = path.join(node.dataDir, "dbs", db);
  const database = path.join(dir, "database");
  if (!fs.existsSync(database) || history.live.length === 0) return [];
  if (fs.existsSync(path.join(dir, "journal")) || fs.existsSync(path.join(dir, "wal"))) return [];
  const last = history.live.reduce((a, b) => (b.maxTxid > a.maxTxid ? b : a));
  const checksum = await checksumDatabaseFile(database);
  if (checksum === last.postApply) return [];
  return [
    `${node.name}: backing database checksum ${hex(checksum)} != position ${hex(last.maxTxid)}/${hex(last.postApply)}`,
  ];
}

/** Ids of every ack token found in the pages of quarantined LTX files (a diverged branch's writes). */
function scanQuarantinedTokens(histories: readonly NodeHistory[]): Set<number> {
  const ids = new Set<number>();
  const files: HistoryFile[] = histories.flatMap((h) => h.quarantined);
  for (const file of files) {
    try {
      readLtxFileSync(file.path, (page) => {
        const text = Buffer.from(page.data.buffer, page.data.byteOffset, page.data.byteLength).toString(
          "latin1",
        );
        for (const match of text.matchAll(ACK_TOKEN_PATTERN)) ids.add(Number(match[1]));
      });
    } catch {
      // An unreadable file is already a violation (ltx-history.ts); its writes count as not found.
    }
  }
  return ids;
}

/** Runs one statement with the sqlite3 shell, read-only, in a child process (a hung mount cannot hang us). */
async function sql(dbPath: string, statement: string): Promise<{ lines: string[]; error?: string }> {
  const result = await runCommand(SQLITE3_CLI, ["-readonly", "-cmd", ".timeout 10000", dbPath, statement], {
    timeoutMs: 60_000,
  });
  if (result.code !== 0) {
    return { lines: [], error: `sqlite3 exited ${result.code ?? result.signal}: ${result.stderr.trim()}` };
  }
  return { lines: result.stdout.split("\n").filter((l) => l !== "") };
}
