// Every node's LTX history of one database, read from its data directory (live `dbs/<db>/ltx/` and
// `quarantine/<db>/*/`), and the history checks of the chaos checker that need nothing but those
// files: each live chain is unbroken, every node's live chain is a prefix of the reference (the
// primary's) history, and no TXID was committed by two nodes unless the loser is a quarantined branch
// that ended before the winner's tenure began (a failover inside the asynchronous window — never a
// split brain). Only headers and trailers are read here; page contents are scanned in ack-scan.ts.
import * as fs from "node:fs";
import * as path from "node:path";

import { isSnapshot } from "../../src/ltx/header.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { readLtxHeaderAndTrailer } from "../../src/store/ltx-file-reader.js";

/** One LTX file as the checker sees it. */
export interface HistoryFile {
  node: string;
  /** Quarantine folder name (`<when>-<from>-<to>`) or null for the live chain. */
  quarantine: string | null;
  path: string;
  minTxid: bigint;
  maxTxid: bigint;
  nodeId: bigint;
  timestampMs: number;
  preApply: bigint;
  postApply: bigint;
  snapshot: boolean;
}

export interface NodeHistory {
  node: string;
  live: HistoryFile[];
  quarantined: HistoryFile[];
  /** Files that could not be read, with the reason. */
  unreadable: string[];
}

/** A TXID that more than one node committed (single-transaction files with different node IDs). */
export interface DuplicateCommit {
  txid: bigint;
  /** "<node id hex>@<where>" for every version. */
  versions: string[];
  /** Accepted as a failover inside the asynchronous window (loser quarantined, committed before). */
  excused: boolean;
}

export interface HistoryCheck {
  violations: string[];
  duplicates: DuplicateCommit[];
  /** Per node: position (max live TXID) and files compared with the reference. */
  positions: Map<string, bigint>;
  referenceTxid: bigint;
  /** Files of a replica whose TXID the reference no longer holds (retention, snapshot ranges). */
  unverifiable: number;
  quarantinedFiles: number;
}

export function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}

/** Reads every LTX header/trailer of database `db` under `dataDir` (live chain and quarantine). */
export function readNodeHistory(node: string, dataDir: string, db: string): NodeHistory {
  const history: NodeHistory = { node, live: [], quarantined: [], unreadable: [] };
  const read = (file: string, quarantine: string | null): void => {
    try {
      const { header, trailer } = readLtxHeaderAndTrailer(file);
      const entry: HistoryFile = {
        node,
        quarantine,
        path: file,
        minTxid: header.minTxid,
        maxTxid: header.maxTxid,
        nodeId: header.nodeId,
        timestampMs: header.timestamp,
        preApply: header.preApplyChecksum,
        postApply: trailer.postApplyChecksum,
        snapshot: isSnapshot(header) && header.maxTxid > 1n,
      };
      (quarantine === null ? history.live : history.quarantined).push(entry);
    } catch (err) {
      history.unreadable.push(`${file}: ${(err as Error).message}`);
    }
  };
  for (const file of listLtxFiles(path.join(dataDir, "dbs", db, "ltx"))) read(file.path, null);
  const quarantineRoot = path.join(dataDir, "quarantine", db);
  if (fs.existsSync(quarantineRoot)) {
    for (const dir of fs.readdirSync(quarantineRoot).sort()) {
      for (const file of listLtxFiles(path.join(quarantineRoot, dir))) read(file.path, dir);
    }
  }
  return history;
}

/** Where a file is, for messages: "n2:0000…0007" or "n2:quarantine/<dir>:…". */
function where(file: HistoryFile): string {
  const name = path.basename(file.path);
  return file.quarantine === null
    ? `${file.node}:${name}`
    : `${file.node}:quarantine/${file.quarantine}/${name}`;
}

/**
 * Checks one live chain on its own: post-apply checksums agree for equal TXIDs, and every
 * non-snapshot file starts right after a TXID the chain holds, with the pre-apply checksum equal to
 * that TXID's post-apply checksum. The first file may start anywhere (retention removes old ones).
 */
export function checkLiveChain(history: NodeHistory): string[] {
  const violations: string[] = [];
  const postAt = new Map<bigint, HistoryFile>();
  const files = [...history.live].sort((a, b) =>
    a.maxTxid === b.maxTxid ? Number(a.minTxid - b.minTxid) : a.maxTxid < b.maxTxid ? -1 : 1,
  );
  for (const [i, file] of files.entries()) {
    const seen = postAt.get(file.maxTxid);
    if (seen !== undefined && seen.postApply !== file.postApply) {
      violations.push(
        `${history.node}: two live files end at TXID ${hex(file.maxTxid)} with different checksums`,
      );
    }
    if (!file.snapshot && i > 0) {
      const before = postAt.get(file.minTxid - 1n);
      if (before === undefined) {
        violations.push(`${history.node}: live chain has a gap before ${where(file)}`);
      } else if (before.postApply !== file.preApply) {
        violations.push(
          `${history.node}: ${where(file)} pre-apply ${hex(file.preApply)} != post-apply ${hex(before.postApply)} of ${where(before)}`,
        );
      }
    }
    postAt.set(file.maxTxid, file);
  }
  return violations;
}

export interface HistoryCheckOptions {
  /** The node whose live history is the reference (the primary at the end). */
  reference: string;
  /**
   * Whether a TXID may have been committed by two nodes at different times (etcd failover with
   * asynchronous replication). False for the static lease: any such TXID is a violation.
   */
  allowFailoverReuse: boolean;
  /** Whether every node must be at the reference position (the run healed and converged). */
  requireConverged: boolean;
}

/** The cross-node checks. */
export function checkHistories(
  histories: readonly NodeHistory[],
  options: HistoryCheckOptions,
): HistoryCheck {
  const violations: string[] = [];
  const reference = histories.find((h) => h.node === options.reference);
  if (reference === undefined)
    throw new Error(`checker: no history for the reference node ${options.reference}`);
  for (const history of histories) {
    violations.push(...history.unreadable.map((u) => `unreadable LTX file ${u}`));
    violations.push(...checkLiveChain(history));
  }
  const referenceAt = new Map<bigint, HistoryFile>();
  for (const file of reference.live) referenceAt.set(file.maxTxid, file);
  const referenceTxid = reference.live.reduce((max, f) => (f.maxTxid > max ? f.maxTxid : max), 0n);

  // Every replica's live chain is a prefix of the reference's history.
  const positions = new Map<string, bigint>();
  let unverifiable = 0;
  for (const history of histories) {
    const position = history.live.reduce((max, f) => (f.maxTxid > max ? f.maxTxid : max), 0n);
    positions.set(history.node, position);
    if (history === reference) continue;
    for (const file of history.live) {
      const ref = referenceAt.get(file.maxTxid);
      if (ref === undefined) {
        if (file.maxTxid > referenceTxid) {
          violations.push(
            `${where(file)}: TXID ${hex(file.maxTxid)} is beyond the reference ${options.reference}'s position ${hex(referenceTxid)} (not a prefix)`,
          );
        } else unverifiable++;
      } else if (ref.postApply !== file.postApply) {
        violations.push(
          `${where(file)}: post-apply checksum ${hex(file.postApply)} != ${hex(ref.postApply)} of ${where(ref)} (not a prefix of the reference history)`,
        );
      }
    }
    if (options.requireConverged && position !== referenceTxid) {
      violations.push(
        `${history.node}: at TXID ${hex(position)}, the reference ${options.reference} at ${hex(referenceTxid)} (not converged)`,
      );
    }
  }

  extendReference(referenceAt, histories, reference);
  const duplicates = findDuplicateCommits(histories, referenceAt, options, violations);
  const quarantinedFiles = histories.reduce((n, h) => n + h.quarantined.length, 0);
  return { violations, duplicates, positions, referenceTxid, unverifiable, quarantinedFiles };
}

/**
 * Where the reference holds no single-transaction file for a TXID (a snapshot replaced its history, or
 * retention removed it), another node's live file may stand in for it: one on a continuous stretch of
 * that node's live chain that ends at a TXID where it meets the reference (same post-apply checksum).
 * Each transaction's pre-apply checksum is the previous one's post-apply, so such a stretch is the
 * reference's own branch. Without it the winner of a TXID reused by a failover would be unknown, and a
 * quarantine folder that also holds the shared prefix would be dated from that prefix.
 */
function extendReference(
  referenceAt: Map<bigint, HistoryFile>,
  histories: readonly NodeHistory[],
  reference: NodeHistory,
): void {
  for (const history of histories) {
    if (history === reference) continue;
    const byMax = new Map<bigint, HistoryFile>();
    for (const file of history.live) byMax.set(file.maxTxid, file);
    const meets = history.live
      .filter((f) => referenceAt.get(f.maxTxid)?.postApply === f.postApply)
      .map((f) => f.maxTxid);
    if (meets.length === 0) continue;
    let at: HistoryFile | undefined = byMax.get(meets.reduce((a, b) => (a > b ? a : b)));
    while (at !== undefined) {
      if (!referenceAt.has(at.maxTxid)) referenceAt.set(at.maxTxid, at);
      if (at.snapshot || at.minTxid <= 1n) break;
      const before = byMax.get(at.minTxid - 1n);
      at = before !== undefined && before.postApply === at.preApply ? before : undefined;
    }
  }
}

/**
 * Groups single-transaction files by TXID across every node (live and quarantined) and reports a
 * TXID whose versions carry more than one node ID. With failover reuse allowed, it is excused only
 * when every losing version sits in quarantine (or, live, has exactly the winner's contents) and was
 * committed before the first transaction of the reference history at or after the branch's first
 * TXID (the winner's tenure had not begun: no two nodes accepted writes at the same time).
 */
function findDuplicateCommits(
  histories: readonly NodeHistory[],
  referenceAt: ReadonlyMap<bigint, HistoryFile>,
  options: HistoryCheckOptions,
  violations: string[],
): DuplicateCommit[] {
  const byTxid = new Map<bigint, HistoryFile[]>();
  for (const history of histories) {
    for (const file of [...history.live, ...history.quarantined]) {
      if (file.minTxid !== file.maxTxid || file.nodeId === 0n) continue;
      const list = byTxid.get(file.maxTxid) ?? [];
      list.push(file);
      byTxid.set(file.maxTxid, list);
    }
  }
  // Where each quarantined branch starts: its smallest TXID whose version the reference does not hold
  // (a folder may also hold the shared prefix, e.g. a whole history quarantined as "unverifiable").
  const branchStart = new Map<string, bigint>();
  for (const history of histories) {
    for (const file of history.quarantined) {
      const ref = referenceAt.get(file.maxTxid);
      if (ref !== undefined && ref.postApply === file.postApply) continue;
      const key = `${file.node}/${file.quarantine}`;
      const start = branchStart.get(key);
      if (start === undefined || file.minTxid < start) branchStart.set(key, file.minTxid);
    }
  }
  const duplicates: DuplicateCommit[] = [];
  for (const [txid, files] of [...byTxid].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const nodeIds = new Set(files.map((f) => f.nodeId));
    if (nodeIds.size < 2) continue;
    // No live file of the reference's branch at this TXID, and every version set aside: the history
    // that names the winner is gone (a snapshot replaced it; the winner's own copy was quarantined as
    // unverifiable). The latest version is then taken as the winner, and its own chain dates its tenure.
    const presumed =
      referenceAt.get(txid) === undefined && files.every((f) => f.quarantine !== null)
        ? files.reduce((a, b) => (b.timestampMs > a.timestampMs ? b : a))
        : undefined;
    const winner = referenceAt.get(txid) ?? presumed;
    // The winner's tenure: the reference's history, or the presumed winner's own folder (its node's files).
    const tenureFiles: readonly HistoryFile[] =
      presumed === undefined
        ? [...referenceAt.values()]
        : histories
            .flatMap((h) => h.quarantined)
            .filter(
              (f) =>
                f.node === presumed.node &&
                f.quarantine === presumed.quarantine &&
                f.nodeId === presumed.nodeId,
            );
    const tenureFrom = (start: bigint): number | undefined => firstTimestampFrom(tenureFiles, start);
    const losers = files.filter((f) => winner === undefined || f.nodeId !== winner.nodeId);
    let excused = options.allowFailoverReuse && winner !== undefined;
    const reasons: string[] =
      presumed === undefined ? [] : [`no live version: ${where(presumed)}, the latest, taken as the winner`];
    for (const loser of losers) {
      if (!excused) break;
      // A live losing version is acceptable only when its contents equal the winner's (the same write,
      // retried by its client on the new primary, from the same base: byte-identical pages), so the
      // rejoining node found nothing diverged. The tenure rule below still applies to it.
      if (loser.quarantine === null && loser.postApply !== winner!.postApply) {
        excused = false;
        reasons.push(`${where(loser)} is live, not quarantined`);
        continue;
      }
      const start =
        loser.quarantine === null ? txid : (branchStart.get(`${loser.node}/${loser.quarantine}`) ?? txid);
      const tenureStart = tenureFrom(start);
      // The same contents written again later, by the node whose tenure the reference's history then
      // continues (its next TXID is that node's): the winner's node had written them first and stopped
      // (e.g. killed right after its commit, whose client retried on the next primary; the winner's node
      // rejoined at the same state and kept its own copy). Not two writers at once.
      const followed =
        loser.quarantine === null &&
        loser.postApply === winner!.postApply &&
        winner!.timestampMs < loser.timestampMs &&
        referenceAt.get(txid + 1n)?.nodeId === loser.nodeId;
      if (tenureStart !== undefined && loser.timestampMs >= tenureStart && !followed) {
        excused = false;
        reasons.push(
          `${where(loser)} committed at ${new Date(loser.timestampMs).toISOString()}, after the winner's ` +
            `first commit from TXID ${hex(start)} at ${new Date(tenureStart).toISOString()} (split brain)`,
        );
      }
    }
    const versions = files.map(
      (f) => `${hex(f.nodeId)}@${where(f)} ${new Date(f.timestampMs).toISOString()} ${hex(f.postApply)}`,
    );
    duplicates.push({ txid, versions, excused });
    if (!excused) {
      violations.push(
        `TXID ${hex(txid)} committed by ${nodeIds.size} nodes: ${versions.join(", ")}` +
          (reasons.length > 0 ? ` — ${reasons.join("; ")}` : ""),
      );
    }
  }
  return duplicates;
}

/** Timestamp of the single-transaction file with the smallest TXID at or after `txid` among `files`. */
function firstTimestampFrom(files: readonly HistoryFile[], txid: bigint): number | undefined {
  let best: HistoryFile | undefined;
  for (const file of files) {
    if (file.minTxid !== file.maxTxid || file.maxTxid < txid) continue;
    if (best === undefined || file.maxTxid < best.maxTxid) best = file;
  }
  return best?.timestampMs;
}
