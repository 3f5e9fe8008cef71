// The locks the node itself takes on a database's files so that local SQLite connections see it as
// one more locker (replica apply, HALT hold and apply, import/export, snapshot reads): one interface,
// two implementations.
// - table mode (`tableNodeLocks`): the mount answers every lock request of local connections from its
//   lock tables (mount-locks.ts), so the node's locks are entries in the same tables. A take that wants
//   the WAL read marks exclusively holds new WAL readers back meanwhile (`holdWalReaders`,
//   mount-locks.ts): a stream of short read transactions cannot starve it.
// - kernel mode (kernel-node-locks.ts): the kernel keeps local connections' locks, so the node's must
//   be real kernel locks too, taken by a helper process on files opened through the mount.
// Spans of kind "lock" (the HALT byte of `<db>-lock`) are node-internal bookkeeping read from the lock
// table in both modes: `routeLockFileToTable` sends them there when the other locks go to the kernel.
//
// Contract for callers: the operations of one owner on one database must not overlap on the same bytes
// (a drop of spans a take of the same owner is still acquiring). Table mode does its work synchronously
// (the promise only reports it); kernel mode finishes when the helper answered.

import type { LockTable } from "../fuse/lock-table.js";
import { LockTableError } from "../fuse/lock-table.js";
import { SHM_READ_LOCK_COUNT, SHM_READ_LOCK_FIRST } from "../store/sqlite-locks.js";
import type { MountFileKind } from "./node-table.js";

export interface NodeLockSpan {
  readonly kind: MountFileKind;
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  readonly type: "read" | "write";
}

/** A span from plain byte numbers (SQLite's lock bytes are constants below 2^53). */
export function lockSpan(
  kind: MountFileKind,
  start: number | bigint,
  end: number | bigint,
  type: "read" | "write",
): NodeLockSpan {
  return { kind, start: BigInt(start), end: BigInt(end), type };
}

export interface NodeLocks {
  readonly mode: "table" | "kernel";
  /** The pid that opens mount files to hold kernel locks (kernel mode), else null. */
  readonly helperPid: number | null;
  /**
   * Takes the spans in order for `owner`, each waiting (wait=true) until it is free or `signal`
   * aborts; wait=false: a conflict fails at once. On failure none of these spans stays held (the
   * owner's earlier locks stay). Errors: NodeLockError code "ELOCKBUSY" (conflict, wait=false),
   * "ELOCKINTR" (the signal aborted; its reason is the cause), "ELOCKHELPER" (kernel mode: the helper
   * is gone), "ELOCKKIND" (a kind the implementation cannot lock).
   */
  take(
    db: string,
    owner: bigint,
    spans: readonly NodeLockSpan[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
  ): Promise<void>;
  /** Unlocks those spans of `owner` (its other locks stay). */
  drop(db: string, owner: bigint, spans: readonly NodeLockSpan[]): Promise<void>;
  /** Drops everything `owner` holds on `db`. */
  releaseOwner(db: string, owner: bigint): Promise<void>;
  /**
   * Kernel mode: makes the kernel fetch the database file's attributes now, if it dropped them
   * (kernel-node-locks.ts `refreshAttributes`); table mode: nothing to do.
   */
  refreshAttributes(db: string): Promise<void>;
  close(): Promise<void>;
}

export type NodeLockErrorCode = "ELOCKBUSY" | "ELOCKINTR" | "ELOCKHELPER" | "ELOCKKIND";

export class NodeLockError extends Error {
  override readonly name = "NodeLockError";
  readonly code: NodeLockErrorCode;

  constructor(code: NodeLockErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${message} (${code})`, options);
    this.code = code;
  }
}

export type LockTableOf = (db: string, kind: MountFileKind) => LockTable;

const READ_MARKS_FIRST = BigInt(SHM_READ_LOCK_FIRST);
const READ_MARKS_LAST = BigInt(SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1);

/** True for a span that shuts WAL readers out: a write lock on any of READ0..4. */
export function excludesWalReaders(span: NodeLockSpan): boolean {
  return (
    span.kind === "shm" &&
    span.type === "write" &&
    span.start <= READ_MARKS_LAST &&
    span.end >= READ_MARKS_FIRST
  );
}

/** The node's locks as entries of the mount's lock tables (see the header). */
export function tableNodeLocks(tableOf: LockTableOf, holdWalReaders?: (db: string) => () => void): NodeLocks {
  /** `${db}\0${owner}` → the kinds the owner locked (releaseOwner visits only those tables). */
  const kindsOf = new Map<string, Set<MountFileKind>>();
  /** `${db}\0${owner}` → how to open the reader gate that owner closed. */
  const gates = new Map<string, () => void>();
  const keyOf = (db: string, owner: bigint): string => `${db}\0${owner}`;

  /** Opens the owner's reader gate once it no longer holds (or waits for) any read mark exclusively. */
  const openGateIfDone = (db: string, owner: bigint): void => {
    const key = keyOf(db, owner);
    const open = gates.get(key);
    if (open === undefined) return;
    const holds = tableOf(db, "shm")
      .locksOf(owner)
      .some((l) => excludesWalReaders({ kind: "shm", start: l.start, end: l.end, type: l.type }));
    if (holds) return;
    gates.delete(key);
    open();
  };

  const unlock = (db: string, owner: bigint, spans: readonly NodeLockSpan[]): void => {
    for (const s of spans) tableOf(db, s.kind).set(owner, process.pid, s.start, s.end, "unlock");
    openGateIfDone(db, owner);
  };

  return {
    mode: "table",
    helperPid: null,
    async take(db, owner, spans, opts) {
      const key = keyOf(db, owner);
      let kinds = kindsOf.get(key);
      if (kinds === undefined) kindsOf.set(key, (kinds = new Set()));
      if (holdWalReaders !== undefined && !gates.has(key) && spans.some(excludesWalReaders)) {
        gates.set(key, holdWalReaders(db));
      }
      const taken: NodeLockSpan[] = [];
      try {
        for (const s of spans) {
          const table = tableOf(db, s.kind);
          kinds.add(s.kind);
          if (opts.wait) await table.waitFor(owner, process.pid, s.start, s.end, s.type, opts.signal);
          else if (!table.set(owner, process.pid, s.start, s.end, s.type)) {
            throw new NodeLockError("ELOCKBUSY", `database ${JSON.stringify(db)}: ${s.kind} is locked`);
          }
          taken.push(s);
        }
      } catch (err) {
        unlock(db, owner, taken);
        if (err instanceof LockTableError && err.code === "ELOCKINTR") {
          throw new NodeLockError("ELOCKINTR", `database ${JSON.stringify(db)} stayed locked`, {
            cause: opts.signal.reason,
          });
        }
        throw err;
      }
    },
    drop(db, owner, spans) {
      unlock(db, owner, spans);
      return Promise.resolve();
    },
    releaseOwner(db, owner) {
      const key = keyOf(db, owner);
      for (const kind of kindsOf.get(key) ?? []) tableOf(db, kind).releaseOwner(owner);
      kindsOf.delete(key);
      openGateIfDone(db, owner);
      return Promise.resolve();
    },
    refreshAttributes() {
      return Promise.resolve();
    },
    close() {
      return Promise.resolve();
    },
  };
}

/** The kinds that go to the kernel in kernel mode; everything else stays in the lock tables. */
export function isKernelKind(kind: MountFileKind): boolean {
  return kind === "database" || kind === "shm";
}

/**
 * `kernel` for "database" and "shm" spans, `table` for the rest (the HALT byte of `<db>-lock`, which
 * the mount's hooks read from its table). A take that spans both runs them in order and, on failure,
 * drops what it took from either. With `kernel` in table mode, it is returned as it is.
 */
export function routeLockFileToTable(kernel: NodeLocks, table: NodeLocks): NodeLocks {
  if (kernel.mode === "table") return kernel;
  const target = (s: NodeLockSpan): NodeLocks => (isKernelKind(s.kind) ? kernel : table);
  /** Consecutive spans with the same target, in order. */
  const runs = (spans: readonly NodeLockSpan[]): Array<[NodeLocks, NodeLockSpan[]]> => {
    const out: Array<[NodeLocks, NodeLockSpan[]]> = [];
    for (const s of spans) {
      const last = out.at(-1);
      if (last !== undefined && last[0] === target(s)) last[1].push(s);
      else out.push([target(s), [s]]);
    }
    return out;
  };
  return {
    mode: kernel.mode,
    get helperPid() {
      return kernel.helperPid;
    },
    async take(db, owner, spans, opts) {
      const done: Array<[NodeLocks, NodeLockSpan[]]> = [];
      try {
        for (const run of runs(spans)) {
          await run[0].take(db, owner, run[1], opts);
          done.push(run);
        }
      } catch (err) {
        for (const [locks, taken] of done.reverse())
          await locks.drop(db, owner, taken).catch(() => undefined);
        throw err;
      }
    },
    async drop(db, owner, spans) {
      for (const [locks, part] of runs(spans)) await locks.drop(db, owner, part);
    },
    async releaseOwner(db, owner) {
      await table.releaseOwner(db, owner);
      await kernel.releaseOwner(db, owner);
    },
    refreshAttributes(db) {
      return kernel.refreshAttributes(db);
    },
    async close() {
      await kernel.close();
      await table.close();
    },
  };
}
