// The primary's side of HALT locks (docs/node-api.md "HALT lock"): a replica asks for a database's
// HALT lock (`POST /halt`), gets an id, the primary's position and an expiry, and sends each
// transaction its clients commit (`POST /tx`) until it lets go (`DELETE /halt`) or stops renewing.
//
// While a halt is held the primary holds HALT_HOLD (halt-locks.ts) under the halt's own lock owner:
// its own writers wait (SQLite's busy handler, then SQLITE_BUSY), readers go on, and a local lock on
// the HALT byte of `<db>-lock` waits too — and blocks remote halts while it is held, like any lock.
//
// A transaction from the holder must continue the primary's position exactly (the replica caught up
// to it before writing, and nothing else can commit meanwhile); it is verified in full like a
// replicated one (store/replica-apply-plan.ts), written into the LTX directory byte for byte as the
// replica sent it — so every node's chain is the same — and into the database file under the locks a
// SQLite writer would hold (WAL: after folding the WAL into the database file, halt-database-writer.ts),
// then streams on to every replica from the store's commit event. Only then is it answered.
//
// Halts live in memory: a restart, an expiry or a lost lease forgets them, and the holder's next
// request gets EHALTGONE — its commit fails and nothing of it reaches the primary.

import { randomBytes } from "node:crypto";

import { HaltError } from "../api/halt-error.js";
import type { HaltGrant } from "../api/halt-routes.js";
import { formatPos, type Pos } from "../ltx/pos.js";
import type { Database } from "../store/database.js";
import { discardStaged, LtxStager, type StagedLtx } from "../store/ltx-stager.js";
import { planReplicaApply } from "../store/replica-apply-plan.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import type { NodeLocks } from "../mountfs/node-locks.js";
import type { HaltDatabaseWriter } from "./halt-database-writer.js";
import {
  dropLocks,
  HALT_APPLY_ROLLBACK,
  HALT_APPLY_WAL,
  HALT_HOLD,
  newHaltLockOwner,
  takeLocks,
} from "./halt-locks.js";

/** LiteFS's expiry of a HALT lock that is not renewed. */
export const DEFAULT_HALT_EXPIRY_MS = 30_000;
/** How long applying a transaction waits for local readers to finish theirs. */
const APPLY_LOCK_TIMEOUT_MS = 30_000;

export interface PrimaryHaltsOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  /** The node's locks (the HALT byte in the lock table; WAL readers are held back while applying). */
  readonly locks: NodeLocks;
  readonly writer: HaltDatabaseWriter;
  readonly expiryMs?: number;
  /** Told of every acquisition, release and applied transaction (metrics, events). */
  readonly onChange?: (change: PrimaryHaltChange) => void;
}

export type PrimaryHaltChange =
  | { readonly kind: "acquired" | "released" | "expired"; readonly db: string; readonly id: string }
  | { readonly kind: "applied"; readonly db: string; readonly id: string; readonly pos: Pos };

interface Halt {
  readonly id: string;
  readonly db: string;
  readonly owner: bigint;
  readonly holder: string;
  expiresAt: number;
  timer: NodeJS.Timeout;
  /** Transactions are applied one at a time, in order of arrival. */
  applying: Promise<unknown>;
}

export class PrimaryHalts {
  readonly #opts: PrimaryHaltsOptions;
  readonly #expiryMs: number;
  readonly #halts = new Map<string, Halt>();

  constructor(opts: PrimaryHaltsOptions) {
    this.#opts = opts;
    this.#expiryMs = opts.expiryMs ?? DEFAULT_HALT_EXPIRY_MS;
  }

  /** Halts held now (for metrics). */
  get count(): number {
    return this.#halts.size;
  }

  async acquire(dbName: string, waitMs: number, holder: string): Promise<HaltGrant> {
    const db = this.#opts.store.mustDb(dbName);
    const owner = newHaltLockOwner();
    await takeLocks(this.#opts.locks, dbName, owner, HALT_HOLD, {
      wait: waitMs > 0,
      signal: AbortSignal.timeout(Math.max(1, waitMs)),
      what: "HALT lock",
    });
    const id = randomBytes(12).toString("hex");
    const halt: Halt = {
      id,
      db: dbName,
      owner,
      holder,
      expiresAt: 0,
      timer: setTimeout(() => undefined, 0),
      applying: Promise.resolve(),
    };
    this.#halts.set(id, halt);
    this.#arm(halt);
    this.#opts.log.info("HALT lock acquired", { db: dbName, id, holder, pos: formatPos(db.pos) });
    this.#opts.onChange?.({ kind: "acquired", db: dbName, id });
    return this.#grant(halt, db);
  }

  renew(dbName: string, id: string): HaltGrant {
    const halt = this.#mustHalt(dbName, id);
    this.#arm(halt);
    return this.#grant(halt, this.#opts.store.mustDb(dbName));
  }

  /**
   * Releases the halt; false when it was not held (already released or expired). Resolves once its
   * locks are gone (kernel-locks mode drops them asynchronously): the answer to the holder comes
   * after, so a write that follows it cannot find them.
   */
  async release(dbName: string, id: string): Promise<boolean> {
    const halt = this.#halts.get(id);
    if (halt === undefined || halt.db !== dbName) return false;
    await this.#drop(halt, "released");
    return true;
  }

  /** Releases every halt (the node stops or stops being the primary). */
  releaseAll(): void {
    for (const halt of [...this.#halts.values()]) void this.#drop(halt, "released");
  }

  /**
   * Applies the holder's LTX file for TXID `txid` (read from `body`) as this node's next transaction;
   * resolves with the new position once it is durable and published to local connections.
   */
  applyTx(dbName: string, id: string, txid: bigint, body: AsyncIterable<Uint8Array>): Promise<Pos> {
    const halt = this.#mustHalt(dbName, id);
    const run = halt.applying.then(() => this.#apply(halt, txid, body));
    halt.applying = run.catch(() => undefined);
    return run;
  }

  async #apply(halt: Halt, txid: bigint, body: AsyncIterable<Uint8Array>): Promise<Pos> {
    if (this.#halts.get(halt.id) !== halt) throw gone(halt.db);
    const db = this.#opts.store.mustDb(halt.db);
    if (txid !== db.pos.txid + 1n) {
      throw new HaltError(
        "EHALTPOS",
        `transaction ${txid.toString(16)} does not follow the primary's position ${formatPos(db.pos)}`,
      );
    }
    const staged = await stage(db, txid, body);
    let plan;
    try {
      plan = planReplicaApply(db.name, db.replicaState, staged);
      if (plan.snapshot && db.pos.txid !== 0n) {
        throw new HaltError(
          "EHALTPOS",
          "a HALT transaction cannot be a snapshot of a database with a history",
        );
      }
    } catch (err) {
      discardStaged(staged);
      if (err instanceof HaltError) throw err;
      throw new HaltError("EHALTPOS", (err as Error).message, { cause: err });
    }
    if (this.#halts.get(halt.id) !== halt) {
      discardStaged(staged);
      throw gone(halt.db);
    }
    const persisted = db.persistStaged(plan);
    const walLocking = db.exists("wal");
    const spans = walLocking ? HALT_APPLY_WAL : HALT_APPLY_ROLLBACK;
    await takeLocks(this.#opts.locks, db.name, halt.owner, spans, {
      wait: true,
      signal: AbortSignal.timeout(APPLY_LOCK_TIMEOUT_MS),
      what: "applying a HALT transaction",
    });
    let applied;
    try {
      const sizeBefore = db.files.size("database");
      if (walLocking) this.#opts.writer.foldWal(db);
      applied = db.applyStaged(plan, persisted);
      await this.#opts.writer.publish(db, sizeBefore);
    } finally {
      await dropLocks(this.#opts.locks, db.name, halt.owner, spans);
    }
    db.syncApplied(applied);
    if (this.#halts.get(halt.id) === halt) this.#arm(halt);
    this.#opts.onChange?.({ kind: "applied", db: db.name, id: halt.id, pos: applied.pos });
    return applied.pos;
  }

  #mustHalt(dbName: string, id: string): Halt {
    const halt = this.#halts.get(id);
    if (halt === undefined || halt.db !== dbName) throw gone(dbName);
    return halt;
  }

  #grant(halt: Halt, db: Database): HaltGrant {
    return { id: halt.id, db: halt.db, pos: db.pos, expiresInMs: Math.max(0, halt.expiresAt - Date.now()) };
  }

  #arm(halt: Halt): void {
    clearTimeout(halt.timer);
    halt.expiresAt = Date.now() + this.#expiryMs;
    halt.timer = setTimeout(() => {
      this.#opts.log.warn("HALT lock expired: the holder stopped renewing it", {
        db: halt.db,
        id: halt.id,
        holder: halt.holder,
      });
      void this.#drop(halt, "expired");
    }, this.#expiryMs);
    halt.timer.unref();
  }

  /** Forgets the halt at once; resolves when its hold's locks are gone (never rejects). */
  #drop(halt: Halt, why: "released" | "expired"): Promise<void> {
    if (this.#halts.get(halt.id) !== halt) return Promise.resolve();
    this.#halts.delete(halt.id);
    clearTimeout(halt.timer);
    // A transaction being applied keeps the locks it added until it is done; the hold goes now (the
    // node locks queue this drop behind an apply's take of the same owner still in progress).
    const dropped = dropLocks(this.#opts.locks, halt.db, halt.owner, HALT_HOLD);
    if (why === "released") this.#opts.log.info("HALT lock released", { db: halt.db, id: halt.id });
    this.#opts.onChange?.({ kind: why, db: halt.db, id: halt.id });
    return dropped;
  }
}

/**
 * The body as a verified staged LTX file. A bad body is read to its end before the error is thrown,
 * so that the request can still be answered (leaving the loop early would destroy its socket).
 */
async function stage(db: Database, txid: bigint, body: AsyncIterable<Uint8Array>): Promise<StagedLtx> {
  const stager = new LtxStager(db.dir, db.name, { minTxid: txid, maxTxid: txid });
  let failure: Error | null = null;
  try {
    for await (const chunk of body) {
      if (failure !== null) continue;
      try {
        stager.push(chunk);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
    }
    if (failure !== null) throw failure;
    return stager.finish();
  } catch (err) {
    stager.abort();
    throw new HaltError("EHALTREQUEST", `bad HALT transaction: ${(err as Error).message}`, { cause: err });
  }
}

function gone(db: string): HaltError {
  return new HaltError(
    "EHALTGONE",
    `no such HALT lock on ${JSON.stringify(db)}: it expired, was released, or the primary restarted`,
  );
}
