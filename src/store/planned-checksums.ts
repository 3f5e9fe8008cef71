// The page checksums a replica's database will have once transactions that are planned but not yet
// written have been applied (node/replica-applier.ts queues a run of them so that their LTX files
// become durable together). The next transaction of the run is planned (replica-apply-plan.ts) against
// this view instead of the database's own array, which does not move until the pages are written.
//
// A view over the database's array plus the pages the queued transactions change: nothing is copied
// but those pages' checksums, and the database's array is only read. The array must not change while a
// view over it is in use — the applier writes the queued transactions only after planning them all.

/** What planning reads of a database's page checksums. */
export interface PageChecksumsView {
  readonly pageSize: number;
  readonly lockPgno: number;
  readonly pageCount: number;
  /** The database's rolling checksum. */
  readonly checksum: bigint;
  /** The checksum of page `pgno` (1..pageCount); 0n for the lock page. */
  get(pgno: number): bigint;
}

/** A planned transaction as the view needs it: pages (with their LTX checksums) and the result. */
export interface PlannedPages {
  readonly pageSize: number;
  /** The database's size in pages afterwards. */
  readonly commit: number;
  readonly pgnos: readonly number[];
  readonly pageChecksums: readonly bigint[];
  /** The database's checksum afterwards (already verified by the plan). */
  readonly checksum: bigint;
  readonly lockPgno: number;
}

export class PlannedChecksums implements PageChecksumsView {
  readonly pageSize: number;
  readonly lockPgno: number;
  readonly pageCount: number;
  readonly checksum: bigint;
  /** Pages not in #changed come from here (null: every page is in #changed). */
  readonly #base: PageChecksumsView | null;
  readonly #changed: ReadonlyMap<number, bigint>;

  private constructor(
    planned: PlannedPages,
    base: PageChecksumsView | null,
    changed: ReadonlyMap<number, bigint>,
  ) {
    this.pageSize = planned.pageSize;
    this.lockPgno = planned.lockPgno;
    this.pageCount = planned.commit;
    this.checksum = planned.checksum;
    this.#base = base;
    this.#changed = changed;
  }

  /**
   * The view after `planned` is applied on top of `current` (the database's array, or an earlier
   * view; null for a database without pages). A planned transaction that changes the page size carries
   * every page (the plan checked that), so nothing of `current` is kept then.
   */
  static after(current: PageChecksumsView | null, planned: PlannedPages): PlannedChecksums {
    const samePageSize = current !== null && current.pageSize === planned.pageSize;
    let base: PageChecksumsView | null = null;
    const changed = new Map<number, bigint>();
    if (samePageSize && current instanceof PlannedChecksums) {
      base = current.#base;
      for (const [pgno, sum] of current.#changed) if (pgno <= planned.commit) changed.set(pgno, sum);
    } else if (samePageSize) {
      base = current;
    }
    for (let i = 0; i < planned.pgnos.length; i++) changed.set(planned.pgnos[i], planned.pageChecksums[i]);
    return new PlannedChecksums(planned, base, changed);
  }

  get(pgno: number): bigint {
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > this.pageCount) {
      throw new RangeError(`planned page checksums: page ${pgno} outside 1..${this.pageCount}`);
    }
    const sum = this.#changed.get(pgno);
    if (sum !== undefined) return sum;
    if (pgno === this.lockPgno) return 0n;
    // A page beyond the base that no planned transaction carries cannot exist: a transaction that
    // grows the database carries every page it grows by (replica-apply-plan.ts).
    if (this.#base === null || pgno > this.#base.pageCount) {
      throw new RangeError(`planned page checksums: page ${pgno} is in no planned transaction`);
    }
    return this.#base.get(pgno);
  }
}
