// Retention of LTX files by age (config `data.retention`): files older than the retention period are
// removed, except the newest file of each database, which is always kept (it holds the position that
// a restart and a replica's catch-up start from). Deciding is pure; removing is the caller's.

export interface RetentionCandidate {
  readonly name: string;
  readonly maxTxid: bigint;
  /** Last modification time of the file, ms since the epoch. */
  readonly mtimeMs: number;
}

/**
 * The files to remove: those whose age at `nowMs` exceeds `retentionMs`, never the one with the
 * highest TXID. The result is in ascending TXID order, so removal leaves a contiguous tail.
 */
export function filesToRetire<T extends RetentionCandidate>(
  files: readonly T[],
  nowMs: number,
  retentionMs: number,
): T[] {
  if (files.length <= 1) return [];
  const sorted = [...files].sort((a, b) => (a.maxTxid < b.maxTxid ? -1 : a.maxTxid > b.maxTxid ? 1 : 0));
  const newest = sorted[sorted.length - 1];
  const out: T[] = [];
  // Stop at the first file still young enough: removing only a prefix keeps the chain unbroken.
  for (const file of sorted) {
    if (file === newest || nowMs - file.mtimeMs <= retentionMs) break;
    out.push(file);
  }
  return out;
}
