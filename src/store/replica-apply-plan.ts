// Whether a staged LTX file may be applied to a replica's database, decided before anything changes:
// it must continue the database's position (an incremental file: min TXID = TXID + 1 and pre-apply =
// the current checksum; a snapshot replaces everything), carry every page the database grows by (every
// page at all when the page size changes), and — checked here, not trusted — its post-apply
// checksum must be exactly what the database's checksum becomes once its pages are written. That last
// check is done on the in-memory page checksums alone (XOR out what is replaced or dropped, XOR in the
// new pages): no page is read and the checksum array is not modified.
//
// Pure: the position, the checksum array (read only) and the staged file in; a plan or EAPPLY out.

import { CHECKSUM_FLAG, EMPTY_DATABASE_CHECKSUM, lockPgno } from "../ltx/checksum.js";
import type { Pos } from "../ltx/pos.js";
import type { StagedLtx } from "./ltx-stager.js";
import { PlannedChecksums, type PageChecksumsView } from "./planned-checksums.js";
import { StoreError } from "./store-error.js";

export interface ReplicaApplyPlan {
  readonly staged: StagedLtx;
  /** The position the database moves to. */
  readonly pos: Pos;
  /** The position it must be at when the plan is carried out (checked again then). */
  readonly from: Pos;
  readonly snapshot: boolean;
}

export interface ReplicaState {
  readonly pos: Pos;
  /** The committed database's page checksums (null before its first transaction). Not modified. */
  readonly checksums: PageChecksumsView | null;
}

/** Checks `staged` against `state`; throws StoreError EAPPLY (naming the rule) when it must not apply. */
export function planReplicaApply(db: string, state: ReplicaState, staged: StagedLtx): ReplicaApplyPlan {
  const { header } = staged;
  const fail = (detail: string): never => {
    throw new StoreError("EAPPLY", detail, { db, txid: header.minTxid, file: staged.tempPath });
  };
  const pos = { txid: header.maxTxid, checksum: staged.postApplyChecksum };
  if (staged.snapshot !== null || header.minTxid === 1n) {
    // The parser verified that a snapshot's pages add up to its post-apply checksum.
    if (header.commit === 0 && staged.postApplyChecksum !== EMPTY_DATABASE_CHECKSUM) {
      fail("a snapshot of an empty database with a non-empty post-apply checksum");
    }
    return { staged, pos, from: state.pos, snapshot: true };
  }

  if (header.minTxid !== state.pos.txid + 1n) {
    fail(`LTX file starts at TXID ${header.minTxid}, the database is at TXID ${state.pos.txid}`);
  }
  if (header.preApplyChecksum !== state.pos.checksum) {
    fail(
      `LTX file applies to checksum ${hex(header.preApplyChecksum)}, the database's is ${hex(state.pos.checksum)}`,
    );
  }
  // A new page size (VACUUM, an import) is fine when the file carries every page: checksumAfterPages
  // keeps nothing of a database of another page size, so it requires them all.
  const current = state.checksums;
  const expected = checksumAfterPages(current, header.pageSize, header.commit, staged, fail);
  if (expected !== staged.postApplyChecksum) {
    fail(
      `LTX post-apply checksum ${hex(staged.postApplyChecksum)} is not what its pages make of the database ` +
        `(${hex(expected)}): the file does not belong to this history`,
    );
  }
  return { staged, pos, from: state.pos, snapshot: false };
}

/**
 * The state a database will be in once the incremental `plan`, made against `state`, is applied: what
 * the next transaction of a queued run is planned against (node/replica-applier.ts). `state.checksums`
 * must be the database's own array or a view from an earlier call, unchanged since.
 */
export function stateAfterPlan(state: ReplicaState, plan: ReplicaApplyPlan): ReplicaState {
  if (plan.snapshot) throw new Error("replica apply plan: a snapshot is not planned on top of");
  const { header } = plan.staged;
  const checksums = PlannedChecksums.after(state.checksums, {
    pageSize: header.pageSize,
    commit: header.commit,
    pgnos: plan.staged.pgnos,
    pageChecksums: plan.staged.pageChecksums,
    checksum: plan.pos.checksum,
    lockPgno: lockPgno(header.pageSize),
  });
  return { pos: plan.pos, checksums };
}

/**
 * The database's checksum after writing `pages` (page numbers ascending, with their LTX checksums) and
 * cutting it to `commit` pages, from the current checksum array alone. Calls `fail` (which throws)
 * when the pages cannot describe a whole database: a page beyond `commit`, or a page the database
 * grows by that is missing.
 */
export function checksumAfterPages(
  current: PageChecksumsView | null,
  pageSize: number,
  commit: number,
  pages: { readonly pgnos: readonly number[]; readonly pageChecksums: readonly bigint[] },
  fail: (detail: string) => never,
): bigint {
  if (commit === 0) return EMPTY_DATABASE_CHECKSUM;
  const samePageSize = current !== null && current.pageSize === pageSize;
  const kept = samePageSize ? current.pageCount : 0;
  let xor = samePageSize && kept > 0 ? current.checksum ^ CHECKSUM_FLAG : 0n;
  // Pages cut off by a shrink leave the checksum.
  for (let pgno = commit + 1; pgno <= kept; pgno++) {
    if (pgno !== current!.lockPgno) xor ^= current!.get(pgno);
  }
  const lock = lockPgno(pageSize);
  let grown = 0;
  for (let i = 0; i < pages.pgnos.length; i++) {
    const pgno = pages.pgnos[i];
    if (pgno > commit) fail(`page ${pgno} is beyond the LTX commit size ${commit}`);
    if (pgno <= kept) xor ^= current!.get(pgno);
    else grown++;
    xor ^= pages.pageChecksums[i];
  }
  // Every page the database grows by must be in the file, or its content would be unknown.
  const newPages = Math.max(0, commit - kept) - (lock > kept && lock <= commit ? 1 : 0);
  if (grown !== newPages) {
    fail(`the database grows from ${kept} to ${commit} pages but the LTX file carries ${grown} of them`);
  }
  return CHECKSUM_FLAG | xor;
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
