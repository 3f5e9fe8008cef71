// HALT locks in a running node: the mount's hooks (mountfs/halt-hooks.ts) and the node API's HALT
// routes (api/halt-routes.ts), dispatched by the node's role at the time of each call:
// - on the primary, a lock on `<db>-lock` is a plain local lock (holding the HALT byte blocks remote
//   halts, which take the same byte: halt-primary.ts), and `POST /halt`, `/halt/renew`, `DELETE
//   /halt`, `POST /tx` serve replicas;
// - on a replica, a write lock on the HALT byte acquires the primary's HALT lock (halt-replica.ts)
//   before the lock request is answered; unlocking the byte or closing the file releases it.
// `POST /halt/hold` (for `litefs run --with-halt-lock-on`) takes the HALT byte under an owner of the
// node's own, so it excludes, and is excluded by, local lock holders as any lock would. In kernel-locks
// mode (`fuse.kernel-locks`) the kernel answers local clients' fcntl calls itself, so a client's lock on
// `<db>-lock` is invisible to the node: there the HALT lock is taken only through the node's HTTP route
// (`litefs run --with-halt-lock-on`, `POST /halt/hold`); the HALT byte stays in the lock table.
//
// The node builds this before the mount exists (the mount takes the hooks) and attaches the mount's
// parts once it is mounted; until then the lock file is a plain lock file and replicas do not write.

import { HaltError } from "../api/halt-error.js";
import type { HaltGrant, HaltService } from "../api/halt-routes.js";
import { FuseError } from "../fuse/errors.js";
import type { LockRequest, RequestContext } from "../fuse/file-system.js";
import { LockTableError, type LockTable } from "../fuse/lock-table.js";
import type { FuseSession } from "../fuse/session.js";
import type { Pos } from "../ltx/pos.js";
import type { DatabaseLockGuard } from "../mountfs/database-lock-guard.js";
import { coversHaltByte, haltByteHolder, holdsHaltByte, type MountHaltHooks } from "../mountfs/halt-hooks.js";
import type { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import type { NodeRole } from "../mountfs/replica-access.js";
import type { Registry } from "../metrics/registry.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { HaltClient } from "./halt-client.js";
import { HaltDatabaseWriter } from "./halt-database-writer.js";
import { dropLocks, HALT_BYTE_SPAN, newHaltLockOwner, takeLocks } from "./halt-locks.js";
import { registerHaltMetrics, type HaltChange } from "./halt-metrics.js";
import { PrimaryHalts } from "./halt-primary.js";
import { ReplicaHalts } from "./halt-replica.js";

export interface NodeHaltOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  readonly role: () => NodeRole;
  /** The primary's node API URL (replicas). */
  readonly primaryUrl: () => string | null;
  readonly authToken: string | null;
  /** Expiry of a halt that is not renewed (default: `LITEFS_HALT_EXPIRY_MS` when set, else 30 s). */
  readonly expiryMs?: number;
  /** Makes the replica's stream reconnect (and so resync) after a HALT commit the primary refused. */
  readonly resync?: () => void;
  /** Where the HALT metrics go (halt-metrics.ts); none without it. */
  readonly registry?: Registry;
}

export interface NodeHaltParts {
  readonly fileSystem: LitefsFileSystem;
  readonly session: FuseSession;
  readonly locks: DatabaseLockGuard;
}

export class NodeHalt implements MountHaltHooks, HaltService {
  readonly #opts: NodeHaltOptions;
  #parts: NodeHaltParts | null = null;
  #primary: PrimaryHalts | null = null;
  #replica: ReplicaHalts | null = null;
  /** Lock owners that locked `<db>-lock` through each handle (OFD locks go with the handle). */
  readonly #ownersOfHandle = new Map<number, Set<bigint>>();
  readonly #onChange: ((change: HaltChange) => void) | undefined;

  constructor(opts: NodeHaltOptions) {
    this.#opts = opts;
    this.#onChange = opts.registry && registerHaltMetrics(opts.registry, () => this.heldCount);
  }

  attach(parts: NodeHaltParts): void {
    const { store, log } = this.#opts;
    const writer = new HaltDatabaseWriter({
      fileSystem: parts.fileSystem,
      session: parts.session,
      refreshAttributes: (db) => parts.locks.refreshAttributes(db),
    });
    this.#parts = parts;
    this.#primary = new PrimaryHalts({
      store,
      log,
      locks: parts.locks.nodeLocks,
      writer,
      expiryMs: this.#opts.expiryMs ?? expiryFromEnv(),
      onChange: this.#onChange,
    });
    this.#replica = new ReplicaHalts({
      store,
      log,
      client: new HaltClient({ primaryUrl: this.#opts.primaryUrl, authToken: this.#opts.authToken }),
      writer,
      locks: parts.locks,
      isReplica: () => this.#opts.role() === "replica",
      resync: this.#opts.resync,
      onChange: this.#onChange,
    });
  }

  /** Halts held now: granted to replicas (primary) plus held from the primary (replica). */
  get heldCount(): number {
    return (this.#primary?.count ?? 0) + (this.#replica?.heldCount ?? 0);
  }

  /** The node stopped being the primary: the halts it granted go (their holders' next call fails). */
  primaryEnded(): void {
    this.#primary?.releaseAll();
  }

  /** Releases every halt; call before unmounting. */
  async close(): Promise<void> {
    this.#primary?.releaseAll();
    await this.#replica?.close();
  }

  // --- the mount's hooks --------------------------------------------------------------------------

  mayWriteOnReplica(db: string): boolean {
    return this.#replica?.mayWrite(db) ?? false;
  }

  setlk(ctx: RequestContext, db: string, lock: LockRequest, table: LockTable): void | Promise<void> {
    if (lock.type !== "unlock") {
      let owners = this.#ownersOfHandle.get(lock.fh);
      if (owners === undefined) this.#ownersOfHandle.set(lock.fh, (owners = new Set()));
      owners.add(lock.owner);
    }
    const replica = this.#opts.role() === "replica" ? this.#replica : null;
    const holder = haltByteHolder(table);
    if (replica !== null && lock.type === "write" && coversHaltByte(lock) && holder !== lock.owner) {
      return this.#acquireThroughMount(ctx, replica, db, lock, table);
    }
    const done = plainSetlk(ctx, lock, table);
    if (replica === null || holder !== lock.owner) return done;
    // The holder unlocked or downgraded the HALT byte: the unlock returns once the halt is released.
    const releaseIfGone = (): Promise<void> | undefined =>
      holdsHaltByte(table, lock.owner) ? undefined : replica.release(db);
    return done === undefined ? releaseIfGone() : done.then(releaseIfGone);
  }

  ownerReleased(db: string, table: LockTable): void {
    // Another owner may have been granted the byte by this very release: what counts is whether the
    // owner the halt was acquired for still holds it.
    const owner = this.#replica?.ownerOf(db) ?? null;
    if (owner === null || holdsHaltByte(table, owner)) return;
    void this.#replica!.release(db);
  }

  handleReleased(db: string, fh: number, table: LockTable): void {
    const owners = this.#ownersOfHandle.get(fh);
    if (owners === undefined) return;
    this.#ownersOfHandle.delete(fh);
    // A POSIX owner that locked through this handle lost its locks at its close (FLUSH) already.
    for (const owner of owners) table.releaseOwner(owner);
    this.ownerReleased(db, table);
  }

  afterChange(db: string): Promise<void> | null {
    return this.#replica?.afterChange(db) ?? null;
  }

  async #acquireThroughMount(
    ctx: RequestContext,
    replica: ReplicaHalts,
    db: string,
    lock: LockRequest,
    table: LockTable,
  ): Promise<void> {
    await plainSetlk(ctx, lock, table);
    try {
      await replica.acquire(db, lock.owner, lock.wait, ctx.signal);
    } catch (err) {
      table.set(lock.owner, lock.pid, lock.start, lock.end, "unlock");
      if (err instanceof HaltError && err.code === "EHALTBUSY") throw new FuseError("EAGAIN", err.message);
      if (ctx.signal.aborted) throw new FuseError("EINTR", "interrupted while acquiring the HALT lock");
      this.#opts.log.warn("HALT lock not acquired", { db, error: (err as Error).message });
      throw new FuseError("EIO", `HALT lock of ${db}: ${(err as Error).message}`, { cause: err });
    }
  }

  // --- the node API's routes ------------------------------------------------------------------------

  acquire(db: string, waitMs: number, holder: string): Promise<HaltGrant> {
    return this.#primaryHalts().acquire(db, waitMs, holder);
  }

  renew(db: string, id: string): HaltGrant {
    return this.#primaryHalts().renew(db, id);
  }

  release(db: string, id: string): Promise<boolean> {
    return this.#primaryHalts().release(db, id);
  }

  applyTx(db: string, id: string, txid: bigint, body: AsyncIterable<Uint8Array>): Promise<Pos> {
    return this.#primaryHalts().applyTx(db, id, txid, body);
  }

  async hold(db: string, signal: AbortSignal): Promise<{ pos: Pos; release: () => void }> {
    const locks = this.#mustParts().locks.nodeLocks;
    const owner = newHaltLockOwner();
    await takeLocks(locks, db, owner, [HALT_BYTE_SPAN], { wait: true, signal, what: "HALT hold" });
    const replica = this.#opts.role() === "replica" ? this.#replica : null;
    let pos: Pos;
    try {
      pos =
        replica === null ? this.#opts.store.mustDb(db).pos : await replica.acquire(db, owner, true, signal);
    } catch (err) {
      void dropLocks(locks, db, owner, [HALT_BYTE_SPAN]);
      throw err;
    }
    let released = false;
    return {
      pos,
      release: () => {
        if (released) return;
        released = true;
        void dropLocks(locks, db, owner, [HALT_BYTE_SPAN]);
        if (replica !== null) void replica.release(db);
      },
    };
  }

  #primaryHalts(): PrimaryHalts {
    if (this.#opts.role() !== "primary") {
      throw new HaltError("ENOTPRIMARY", "this node is a replica: ask the primary for the HALT lock");
    }
    if (this.#primary === null) throw new HaltError("EHALTBUSY", "the node is starting");
    return this.#primary;
  }

  #mustParts(): NodeHaltParts {
    if (this.#parts === null) throw new HaltError("EHALTBUSY", "the node is starting");
    return this.#parts;
  }
}

/** `LITEFS_HALT_EXPIRY_MS` (tests shorten the 30 s expiry with it), or undefined. */
function expiryFromEnv(): number | undefined {
  const text = process.env.LITEFS_HALT_EXPIRY_MS;
  if (text === undefined || !/^\d{1,9}$/.test(text) || Number(text) < 100) return undefined;
  return Number(text);
}

/** A lock request on a plain lock file: SETLKW waits (EINTR when interrupted), SETLK fails with EAGAIN. */
function plainSetlk(ctx: RequestContext, lock: LockRequest, table: LockTable): Promise<void> | undefined {
  if (lock.wait) {
    return table.waitFor(lock.owner, lock.pid, lock.start, lock.end, lock.type, ctx.signal).catch((err) => {
      if (err instanceof LockTableError && err.code === "ELOCKINTR") throw new FuseError("EINTR");
      throw err;
    });
  }
  if (!table.set(lock.owner, lock.pid, lock.start, lock.end, lock.type)) throw new FuseError("EAGAIN");
  return undefined;
}
