// The node's own locks as real kernel locks (kernel-locks mode, `fuse.kernel-locks`): the kernel keeps
// every lock of local SQLite connections, so what the node must exclude them with has to be a kernel
// lock too. A helper process (lock-helper-process.ts) opens, per (owner, database, file kind), one
// descriptor of `<mount>/<db>` or `<mount>/<db>-shm` and takes OFD locks on it; closing it drops them.
//
// Waiting: the helper only tries (F_OFD_SETLK, the ranges of one span in one request); what was busy
// is retried here with a backoff from 0.2 ms to 5 ms until it is free or the signal aborts, so one
// owner's wait never stalls another's. Spans are taken in order; consecutive spans of one file and one
// type (a rollback apply's PENDING, RESERVED and SHARED range) go in one request, each range kept once
// caught — PENDING is tried first there too, so new readers stop while the rest is polled — and the
// run is complete before the next one starts. The first request on a file not open yet goes out with
// its open (one round trip): each round trip waits for the node's event loop, which is busiest exactly
// when a replica applies a primary's last transactions before a handoff.
// Starvation: nothing holds new readers back in the mount any more (no lock request reaches it), so
// `-shm` spans are taken one byte at a time, each kept once caught: a read mark (READ0..4) is taken in
// an instant it is free, not only when all five happen to be.
// Cost (uncontended, passthrough mount, loaded 2-core machine): a WAL apply's take + release ~0.2–0.4 ms,
// a rollback apply's ~0.4–0.6 ms — a few helper round trips of ~15–50 µs, the helper reusing its
// descriptors (lock-helper-process.ts) so that most owners cost no open through the mount. Rollback mode needs no such care: the
// node takes PENDING first, as SQLite's writers do, and PENDING stops new readers.
//
// One owner's operations run one after another (take, drop, releaseOwner of one (db, owner) are
// queued): they share the owner's descriptors and state. Unqueued, a drop of some of an owner's locks
// while a take of the same owner was still polling (a HALT released while a transaction of its holder
// waited for its apply locks) closed the descriptor under the take and forgot the owner: the take then
// failed on the closed descriptor, or opened a new one the owner's later drop never found — its locks
// stayed for good.
//
// Files that do not exist are never created (on a replica, and for SQLite's sake: an empty `-shm`
// would make the next connection run a recovery), and no connection can hold a lock on a missing file:
// - a missing database file: its spans are recorded as held but lock nothing — no connection is in it.
// - a missing `-shm`: true *at the moment of the check only*. Every connection that uses `-shm` first
//   holds SHARED on the database file (it reads the header under it, then opens the WAL and `-shm`), so
//   one that holds SHARED now may create `-shm` right after the check and use it unhindered. Hence:
//   * when the database is in rollback mode (header bytes 18/19 = 1) and the owner holds a lock in
//     the database's PENDING..SHARED range, no connection can switch to WAL while it is held (that
//     takes EXCLUSIVE): the `-shm` spans are recorded and lock nothing;
//   * otherwise the owner takes a stand-in on the database file — PENDING, then the whole SHARED range,
//     both exclusive — which keeps out every connection that could create or use `-shm`; while it waits
//     for SHARED it looks for `-shm` again, and takes the real spans if it appeared. The stand-in goes
//     when the owner's last `-shm` span does. It blocks new connections, but so did the table mode: a
//     first connection to a WAL database without `-shm` must run a recovery, which needs the WRITE and
//     CKPT locks that every `-shm` span set of the node holds.

import { setImmediate as immediate, setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import { constants as osConstants } from "node:os";

import { LockTable, OFFSET_MAX } from "../fuse/lock-table.js";
import { PENDING_BYTE, SHARED_FIRST, SHARED_SIZE } from "../store/sqlite-locks.js";
import type { StoreLogger } from "../store/store-logger.js";
import { type HelperAnswer, LockHelperProcess } from "./lock-helper-process.js";
import { isKernelKind, NodeLockError, type NodeLocks, type NodeLockSpan } from "./node-locks.js";
import { SUFFIX_OF_KIND } from "./node-table.js";

type KernelKind = "database" | "shm";
/** The inode number the mount answers now for `db`'s file of `kind`, if the caller knows it. */
export type InodeOf = (db: string, kind: KernelKind) => number | undefined;
/** An inclusive byte range. */
type Range = readonly [bigint, bigint];
type LockType = "read" | "write" | "unlock";

const PENDING = BigInt(PENDING_BYTE);
const SHARED_LAST = BigInt(SHARED_FIRST + SHARED_SIZE - 1);
/** The stand-in for `-shm` spans when `-shm` is missing (see the header), taken in this order. */
const STAND_IN: readonly Range[] = [
  [PENDING, PENDING],
  [BigInt(SHARED_FIRST), SHARED_LAST],
];
const POLL_FIRST_MS = 0.2;
const POLL_MAX_MS = 5;

/** An open sent to the helper, not yet answered. */
interface Opening {
  readonly key: number;
  readonly writable: boolean;
  readonly file: string;
  readonly answer: Promise<HelperAnswer>;
}

interface OpenFile {
  /** The helper's key for the descriptor, or null: the file did not exist (its spans lock nothing). */
  readonly key: number | null;
  readonly writable: boolean;
}

/** What one owner holds on one database. */
interface OwnerState {
  readonly db: string;
  readonly owner: bigint;
  readonly files: Map<KernelKind, OpenFile>;
  /** What the callers asked for and hold, per kind (one owner per table). */
  readonly held: Record<KernelKind, LockTable>;
  /** The `-shm` stand-in is held on the database file. */
  standIn: boolean;
}

export class KernelNodeLocks implements NodeLocks {
  readonly mode = "kernel" as const;
  readonly #helper: LockHelperProcess;
  readonly #mountDir: string;
  readonly #inodeOf: InodeOf;
  readonly #states = new Map<string, OwnerState>();
  /** `stateKey` → the end of the owner's last queued operation (see the header); gone once idle. */
  readonly #queues = new Map<string, Promise<void>>();
  #nextKey = 1;

  private constructor(helper: LockHelperProcess, mountDir: string, inodeOf: InodeOf) {
    this.#helper = helper;
    this.#mountDir = mountDir;
    this.#inodeOf = inodeOf;
  }

  /**
   * Starts the helper for the mount at `mountDir`. Rejects with ELOCKHELPER when it cannot run.
   * `inodeOf`: the inode number the mount answers now for a database's file, or undefined when it
   * cannot say (lock-helper-process.ts: a descriptor kept from an earlier owner is then reused without
   * a stat through the mount); the default never says.
   */
  static async start(opts: {
    mountDir: string;
    log: StoreLogger;
    inodeOf?: InodeOf;
  }): Promise<KernelNodeLocks> {
    const helper = await LockHelperProcess.start((err) =>
      opts.log.error("the lock helper died: the node's locks are gone and no new ones can be taken", {
        error: err.message,
      }),
    );
    return new KernelNodeLocks(helper, opts.mountDir, opts.inodeOf ?? (() => undefined));
  }

  get helperPid(): number | null {
    return this.#helper.pid;
  }

  take(
    db: string,
    owner: bigint,
    spans: readonly NodeLockSpan[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
  ): Promise<void> {
    for (const s of spans) {
      if (!isKernelKind(s.kind)) {
        return Promise.reject(
          new NodeLockError("ELOCKKIND", `kernel node locks cannot lock ${s.kind} files`),
        );
      }
    }
    return this.#queued(db, owner, () => this.#take(db, owner, spans, opts));
  }

  drop(db: string, owner: bigint, spans: readonly NodeLockSpan[]): Promise<void> {
    return this.#queued(db, owner, () => this.#drop(db, owner, spans));
  }

  releaseOwner(db: string, owner: bigint): Promise<void> {
    return this.#queued(db, owner, () => this.#releaseOwner(db, owner));
  }

  /**
   * Has the helper stat `<mount>/<db>`, so that the kernel asks the node for the file's attributes now
   * if it holds none. A caller that changed the database file under its locks and dropped the
   * kernel's cached pages and attributes (replica-applier.ts) calls it before it lets go. Why: an
   * invalidation leaves the old size in the kernel's inode, and the first stat after it fetches the
   * attributes — but the kernel marks them valid a moment before it writes the size it got
   * (fuse_change_attributes_i, as we read Linux 6.18). A reader whose transaction started right after
   * the unlock, while another process's stat was completing (this helper's own, after a close), could
   * take the old size for valid next to the new page 1, and SQLite finds the header's page count beyond
   * the file's: "database disk image is malformed" (btree.c lockBtree). Traced with ftrace (FUSE
   * requests, file locks) and a VFS shim in the reader: its SHARED lock came after the helper's unlock,
   * its fstat sent no GETATTR and returned the old size ~150 µs after the node had answered the
   * helper's GETATTR with the new one. Under the locks no reader can stat in that moment, and once this
   * stat returns the kernel holds the new size as valid. A missing file is fine.
   */
  async refreshAttributes(db: string): Promise<void> {
    const file = path.join(this.#mountDir, db + SUFFIX_OF_KIND.database);
    const answer = await this.#helper.request(["S", Buffer.from(file).toString("hex")]);
    if (answer.kind === "err" && answer.errno === osConstants.errno.ENOENT) return;
    expectOk(answer, `stat ${file}`);
  }

  async close(): Promise<void> {
    this.#states.clear();
    await this.#helper.close();
  }

  /**
   * What the helper holds for the node now, per (database, owner): the spans callers hold and how
   * many descriptors the helper keeps open for them (a debugging aid; tests check for leaks with it).
   */
  heldSnapshot(): Array<{ db: string; owner: bigint; spans: NodeLockSpan[]; descriptors: number }> {
    return [...this.#states.values()].map((state) => ({
      db: state.db,
      owner: state.owner,
      spans: (["database", "shm"] as const).flatMap((kind) =>
        state.held[kind].locksOf(state.owner).map((l) => ({
          kind,
          start: l.start,
          end: l.end,
          type: l.type,
        })),
      ),
      descriptors: [...state.files.values()].filter((f) => f.key !== null).length,
    }));
  }

  /** Runs `operation` after every earlier operation of the owner has settled (see the header). */
  #queued(db: string, owner: bigint, operation: () => Promise<void>): Promise<void> {
    const key = stateKey(db, owner);
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const result = previous.then(operation);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return result;
  }

  async #take(
    db: string,
    owner: bigint,
    spans: readonly NodeLockSpan[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
  ): Promise<void> {
    const state = this.#state(db, owner);
    const taken: NodeLockSpan[] = [];
    try {
      for (const run of runsOf(spans)) {
        await this.#takeRun(state, run, spans, opts);
        taken.push(...run);
      }
    } catch (err) {
      await this.#dropSpans(state, taken).catch(() => undefined);
      if (err instanceof NodeLockError && err.code === "ELOCKINTR") throw err;
      if (opts.signal.aborted && !(err instanceof NodeLockError)) throw intr(db, opts.signal);
      throw err;
    }
  }

  async #drop(db: string, owner: bigint, spans: readonly NodeLockSpan[]): Promise<void> {
    const state = this.#states.get(stateKey(db, owner));
    if (state === undefined) return;
    await this.#dropSpans(
      state,
      spans.filter((s) => isKernelKind(s.kind)),
    );
  }

  async #releaseOwner(db: string, owner: bigint): Promise<void> {
    const state = this.#states.get(stateKey(db, owner));
    if (state === undefined) return;
    this.#states.delete(stateKey(db, owner));
    for (const file of state.files.values()) if (file.key !== null) await this.#close(file.key);
  }

  #state(db: string, owner: bigint): OwnerState {
    const key = stateKey(db, owner);
    let state = this.#states.get(key);
    if (state === undefined) {
      state = {
        db,
        owner,
        files: new Map(),
        held: { database: new LockTable(), shm: new LockTable() },
        standIn: false,
      };
      this.#states.set(key, state);
    }
    return state;
  }

  /**
   * Takes a run of spans of one file and one type (see `runsOf`) in one request, polling what was busy.
   * When the owner has no descriptor of that file yet, the open and the first try go out together: the
   * helper answers in order, and a try behind an open that failed answers "no such descriptor", which
   * is then ignored — one round trip instead of two.
   */
  async #takeRun(
    state: OwnerState,
    run: readonly NodeLockSpan[],
    call: readonly NodeLockSpan[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
  ): Promise<void> {
    const kind = run[0].kind as KernelKind;
    const type = run[0].type;
    if (kind === "shm" && state.held.shm.lockCount === 0 && !state.files.has("shm")) {
      await this.#placeShm(state, call, opts);
    }
    const ranges = run.flatMap((s) =>
      kind === "shm" ? bytesOf(s) : this.#outsideStandIn(state, kind, s.start, s.end),
    );
    let file = state.files.get(kind);
    let firstTry: Promise<HelperAnswer> | undefined;
    if (file === undefined) {
      const opening = this.#open(state, kind, call);
      if (opening.writable || type === "read") {
        firstTry = this.#helper.request(lockRequest(opening.key, type, ranges));
        firstTry.catch(() => undefined); // awaited below, or moot: the open failed ("no such descriptor")
      }
      file = await this.#opened(state, kind, opening);
    }
    if (file.key !== null) {
      if (type === "write" && !file.writable) {
        throw new Error(`kernel node locks: ${kind} of ${state.db} was opened read-only for this owner`);
      }
      await this.#lockRanges(state.db, file.key, type, ranges, opts, firstTry);
    }
    for (const s of run) state.held[kind].set(state.owner, 0, s.start, s.end, s.type);
  }

  /**
   * The first `-shm` span of an owner: opens `-shm`, or, when it is missing, decides between nothing
   * and the stand-in (see the header).
   */
  async #placeShm(
    state: OwnerState,
    call: readonly NodeLockSpan[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
  ): Promise<void> {
    if ((await this.#file(state, "shm", call)).key !== null) return;
    const dbFile = await this.#file(state, "database", call);
    if (dbFile.key === null) return; // no database: no connection
    const guarded = state.held.database
      .locksOf(state.owner)
      .some((l) => l.start <= SHARED_LAST && l.end >= PENDING);
    if (guarded && !(await this.#walHeader(state.db, dbFile.key))) return;
    if (!dbFile.writable)
      throw new Error(`kernel node locks: ${state.db} was opened read-only for this owner`);
    let delay = POLL_FIRST_MS;
    let missing: readonly Range[] = STAND_IN;
    try {
      for (;;) {
        missing = await this.#tryRanges(dbFile.key, "write", missing);
        if (missing.length === 0) {
          state.standIn = true;
          return;
        }
        if (!opts.wait) throw busy(state.db);
        // Whoever holds SHARED may be the connection that is creating `-shm` right now.
        state.files.delete("shm");
        if ((await this.#file(state, "shm", call)).key !== null) {
          await this.#restoreStandInRange(state, dbFile.key);
          return;
        }
        delay = await pause(delay, state.db, opts.signal);
      }
    } catch (err) {
      await this.#restoreStandInRange(state, dbFile.key).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Takes every range on the descriptor, polling those still busy (see the header) and keeping each
   * once caught. On failure none of them stays held.
   */
  async #lockRanges(
    db: string,
    key: number,
    type: "read" | "write",
    ranges: readonly Range[],
    opts: { readonly wait: boolean; readonly signal: AbortSignal },
    firstTry?: Promise<HelperAnswer>,
  ): Promise<void> {
    let delay = POLL_FIRST_MS;
    let missing = ranges;
    try {
      for (let answer = firstTry; ; answer = undefined) {
        missing = await this.#tryRanges(key, type, missing, answer);
        if (missing.length === 0) return;
        if (!opts.wait) throw busy(db);
        delay = await pause(delay, db, opts.signal);
      }
    } catch (err) {
      const taken = ranges.filter((r) => !missing.includes(r));
      if (taken.length > 0) await this.#tryRanges(key, "unlock", taken).catch(() => undefined);
      throw err;
    }
  }

  /**
   * One helper request: F_OFD_SETLK on each range (in one round trip). Returns the ranges that were
   * busy; unlocks and downgrades never are. `sent`: the answer of that very request, already sent.
   */
  async #tryRanges(
    key: number,
    type: LockType,
    ranges: readonly Range[],
    sent?: Promise<HelperAnswer>,
  ): Promise<readonly Range[]> {
    if (ranges.length === 0) return [];
    const answer = await (sent ?? this.#helper.request(lockRequest(key, type, ranges)));
    if (answer.kind === "busy") return answer.fields[0].split(",").map((i) => ranges[Number(i)]);
    expectOk(answer, "F_OFD_SETLK");
    return [];
  }

  /** Opens the owner's descriptor of `kind` once (writable when the call writes it, or may need the stand-in). */
  async #file(state: OwnerState, kind: KernelKind, call: readonly NodeLockSpan[]): Promise<OpenFile> {
    return state.files.get(kind) ?? this.#opened(state, kind, this.#open(state, kind, call));
  }

  /** Sends the open of the owner's descriptor of `kind` (see `#file`); `#opened` awaits and records it. */
  #open(state: OwnerState, kind: KernelKind, call: readonly NodeLockSpan[]): Opening {
    const writable = call.some(
      (s) => (s.kind === kind && s.type === "write") || (kind === "database" && s.kind === "shm"),
    );
    const key = this.#nextKey++;
    const file = path.join(this.#mountDir, state.db + SUFFIX_OF_KIND[kind]);
    const ino = this.#inodeOf(state.db, kind);
    const answer = this.#helper.request([
      "O",
      String(key),
      writable ? "w" : "r",
      Buffer.from(file).toString("hex"),
      ...(ino === undefined ? [] : [String(ino)]),
    ]);
    return { key, writable, file, answer };
  }

  async #opened(state: OwnerState, kind: KernelKind, opening: Opening): Promise<OpenFile> {
    const { key, writable, file } = opening;
    const answer = await opening.answer;
    let opened: OpenFile;
    if (answer.kind === "err" && answer.errno === osConstants.errno.ENOENT) opened = { key: null, writable };
    else {
      expectOk(answer, `open ${file}`);
      opened = { key, writable };
    }
    // Two spans of one owner never open concurrently (the spans of a take run one after another).
    state.files.set(kind, opened);
    return opened;
  }

  /** True when the database header says WAL (file format bytes 18/19 = 2). */
  async #walHeader(db: string, key: number): Promise<boolean> {
    const answer = await this.#helper.request(["R", String(key), "18", "2"]);
    expectOk(answer, `read the header of ${db}`);
    return answer.kind === "ok" && answer.fields[0] === "0202";
  }

  /** The parts of [a, b] the stand-in does not already hold exclusively (all of it for `-shm`). */
  #outsideStandIn(state: OwnerState, kind: KernelKind, a: bigint, b: bigint): Range[] {
    if (kind !== "database" || !state.standIn) return [[a, b]];
    const out: Range[] = [];
    let from = a;
    for (const [sa, sb] of STAND_IN) {
      if (sb < from || sa > b) continue;
      if (sa > from) out.push([from, sa - 1n]);
      from = sb + 1n;
    }
    if (from <= b) out.push([from, b]);
    return out;
  }

  async #dropSpans(state: OwnerState, spans: readonly NodeLockSpan[]): Promise<void> {
    for (const s of spans) {
      const kind = s.kind as KernelKind;
      state.held[kind].set(state.owner, 0, s.start, s.end, "unlock");
      const file = state.files.get(kind);
      if (file === undefined || file.key === null) continue;
      await this.#tryRanges(file.key, "unlock", this.#outsideStandIn(state, kind, s.start, s.end));
    }
    await this.#tidy(state);
  }

  /** Lets go of what the owner no longer needs: the stand-in, descriptors without locks, the state. */
  async #tidy(state: OwnerState): Promise<void> {
    if (state.held.shm.lockCount === 0) {
      const dbKey = state.files.get("database")?.key ?? null;
      if (state.standIn && dbKey !== null) {
        state.standIn = false;
        await this.#restoreStandInRange(state, dbKey);
      }
      await this.#forget(state, "shm");
    }
    if (state.held.database.lockCount === 0 && !state.standIn) await this.#forget(state, "database");
    if (state.files.size === 0 && state.held.shm.lockCount === 0 && state.held.database.lockCount === 0) {
      if (this.#states.get(stateKey(state.db, state.owner)) === state)
        this.#states.delete(stateKey(state.db, state.owner));
    }
  }

  async #forget(state: OwnerState, kind: KernelKind): Promise<void> {
    const file = state.files.get(kind);
    if (file === undefined) return;
    state.files.delete(kind);
    if (file.key !== null) await this.#close(file.key);
  }

  /**
   * Sets the stand-in's bytes back to what the owner itself holds there (downgrades and unlocks: they
   * cannot be refused). Used when the stand-in goes, or was only partly taken.
   */
  async #restoreStandInRange(state: OwnerState, key: number): Promise<void> {
    state.standIn = false;
    for (const [a, b] of STAND_IN) {
      let from = a;
      for (const l of state.held.database.locksOf(state.owner)) {
        if (l.end < from || l.start > b) continue;
        const la = l.start > from ? l.start : from;
        const lb = l.end < b ? l.end : b;
        if (la > from) await this.#tryRanges(key, "unlock", [[from, la - 1n]]);
        await this.#tryRanges(key, l.type, [[la, lb]]);
        from = lb + 1n;
      }
      if (from <= b) await this.#tryRanges(key, "unlock", [[from, b]]);
    }
  }

  async #close(key: number): Promise<void> {
    await this.#helper.request(["C", String(key)]);
  }
}

/** Consecutive spans of one file and one type: each run is taken in one request (see the header). */
function runsOf(spans: readonly NodeLockSpan[]): NodeLockSpan[][] {
  const runs: NodeLockSpan[][] = [];
  for (const s of spans) {
    const last = runs.at(-1);
    if (last !== undefined && last[0].kind === s.kind && last[0].type === s.type) last.push(s);
    else runs.push([s]);
  }
  return runs;
}

/** The helper's F_OFD_SETLK request for `ranges` on descriptor `key`. */
function lockRequest(key: number, type: LockType, ranges: readonly Range[]): string[] {
  const code = type === "read" ? 0 : type === "write" ? 1 : 2;
  const args = ranges.flatMap(([a, b]) => [String(a), String(b === OFFSET_MAX ? 0n : b - a + 1n)]);
  return ["L", String(key), String(code), ...args];
}

function stateKey(db: string, owner: bigint): string {
  return `${db}\0${owner}`;
}

/** A `-shm` span byte by byte: each lock byte is caught on its own (see the header). */
function bytesOf(s: NodeLockSpan): Range[] {
  const out: Range[] = [];
  for (let b = s.start; b <= s.end; b++) out.push([b, b]);
  return out;
}

/** Waits `delay` ms (a turn of the event loop below 1 ms) and returns the next delay; ELOCKINTR on abort. */
async function pause(delay: number, db: string, signal: AbortSignal): Promise<number> {
  if (signal.aborted) throw intr(db, signal);
  try {
    if (delay < 1) await immediate(undefined, { signal });
    else await sleep(delay, undefined, { signal });
  } catch {
    throw intr(db, signal);
  }
  return Math.min(delay * 2, POLL_MAX_MS);
}

function expectOk(answer: HelperAnswer, what: string): void {
  if (answer.kind === "ok") return;
  const detail = answer.kind === "busy" ? "busy" : `errno ${answer.errno} ${answer.text}`;
  throw new NodeLockError("ELOCKHELPER", `lock helper: ${what} failed: ${detail}`);
}

function busy(db: string): NodeLockError {
  return new NodeLockError("ELOCKBUSY", `database ${JSON.stringify(db)} is locked`);
}

function intr(db: string, signal: AbortSignal): NodeLockError {
  return new NodeLockError("ELOCKINTR", `database ${JSON.stringify(db)} stayed locked`, {
    cause: signal.reason,
  });
}
