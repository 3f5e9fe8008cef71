// A replica's side of HALT locks (docs/node-api.md "HALT lock"). When a local owner takes the HALT
// lock of a database (a write lock on byte 72 of `<db>-lock`, or `POST /halt/hold` for `litefs run`):
//   1. ask the primary for it (`POST /halt`; waiting, for SETLKW, until the holder lets go);
//   2. wait until this replica's stream has brought the database to exactly the primary's position;
//   3. only then answer the lock request: local clients may now write the database through the mount,
//      and the lock is renewed every third of its expiry.
// Each transaction a local client commits is captured by the store as usual (an LTX file, the position
// moves); the request that committed it is answered only once the primary has applied the same file
// (`POST /tx`) and answered with the same position — so a commit the client saw succeed is on the
// primary, from where it streams to every replica. A refusal (the primary restarted, the lock expired
// or was lost, the primary moved on) fails that request with EIO, and the halt is broken: no further
// local write is allowed, and the stream is made to reconnect: at its catch-up the replica's history,
// now ahead of the primary's, is quarantined and replaced by the primary's, as for any divergence.
// Releasing (unlock, close, the hold's connection closing): the captured WAL frames are folded into
// the database file first (a replica applies replicated transactions to the database file alone) and
// an empty `-wal` is kept in WAL mode (read-only connections need it), then the primary is told
// (`DELETE /halt`).

import fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import { HaltError } from "../api/halt-error.js";
import type { HaltGrant } from "../api/halt-routes.js";
import { FuseError } from "../fuse/errors.js";
import { formatPos, posEqual, type Pos } from "../ltx/pos.js";
import type { DatabaseLockGuard } from "../mountfs/database-lock-guard.js";
import type { CommitEvent } from "../store/commit-event.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import type { HaltClient } from "./halt-client.js";
import type { HaltDatabaseWriter } from "./halt-database-writer.js";

/** How long one `POST /halt` of a waiting acquisition waits on the primary before asking again. */
const ACQUIRE_WAIT_PER_REQUEST_MS = 10_000;
/** How long the replica may take to reach the primary's position after the grant. */
const DEFAULT_CATCH_UP_TIMEOUT_MS = 30_000;
/** How long a transaction's confirmation by the primary may take. */
const CONFIRM_TIMEOUT_MS = 30_000;

export interface ReplicaHaltsOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  readonly client: HaltClient;
  readonly writer: HaltDatabaseWriter;
  readonly locks: DatabaseLockGuard;
  /** True while this node is a replica (only a replica's own commits need the primary). */
  readonly isReplica: () => boolean;
  readonly catchUpTimeoutMs?: number;
  /** Makes the stream reconnect, so that a history the primary refused is replaced at once. */
  readonly resync?: () => void;
  /** Told of every acquisition, release and confirmed or refused transaction (metrics, events). */
  readonly onChange?: (change: ReplicaHaltChange) => void;
}

export type ReplicaHaltChange =
  | { readonly kind: "acquired" | "released"; readonly db: string }
  | { readonly kind: "confirmed"; readonly db: string; readonly pos: Pos }
  | { readonly kind: "refused"; readonly db: string; readonly error: string };

interface Holding {
  readonly db: string;
  readonly owner: bigint;
  readonly stop: AbortController;
  phase: "acquiring" | "held" | "releasing";
  grant: HaltGrant | null;
  /** When the primary last confirmed the halt (grant or renewal), for the expiry. */
  renewedAt: number;
  renewTimer: NodeJS.Timeout | null;
  /** Local commits not yet sent to the primary. */
  pending: CommitEvent[];
  /** The chain of confirmations (one at a time, in commit order). */
  confirming: Promise<void>;
  /** Set when a confirmation or renewal failed: the halt is unusable. */
  broken: Error | null;
  released: Promise<void> | null;
}

export class ReplicaHalts {
  readonly #opts: ReplicaHaltsOptions;
  readonly #holdings = new Map<string, Holding>();
  readonly #unsubscribe: () => void;

  constructor(opts: ReplicaHaltsOptions) {
    this.#opts = opts;
    this.#unsubscribe = opts.store.subscribe((event) => this.#onCommit(event));
  }

  /** True while `db`'s HALT lock is held here and usable: local clients may change it. */
  mayWrite(db: string): boolean {
    const holding = this.#holdings.get(db);
    return holding !== undefined && holding.phase === "held" && holding.broken === null;
  }

  /** The local lock owner the HALT lock of `db` is being acquired or held for, or null. */
  ownerOf(db: string): bigint | null {
    const holding = this.#holdings.get(db);
    return holding === undefined || holding.phase === "releasing" ? null : holding.owner;
  }

  /** Databases whose HALT lock this replica holds now. */
  get heldCount(): number {
    let n = 0;
    for (const h of this.#holdings.values()) if (h.phase === "held") n++;
    return n;
  }

  /**
   * Steps 1–2 of the header for local lock owner `owner` (which already holds the HALT byte in the
   * local lock table). `wait`: keep asking while another node holds it (else EHALTBUSY at once).
   * Rejects with `signal`'s reason when it aborts first; nothing is held then.
   */
  async acquire(db: string, owner: bigint, wait: boolean, signal: AbortSignal): Promise<Pos> {
    const previous = this.#holdings.get(db);
    if (previous !== undefined) {
      if (previous.phase !== "releasing") {
        throw new HaltError("EHALTBUSY", `the HALT lock of ${JSON.stringify(db)} is already held here`);
      }
      await previous.released;
    }
    const holding: Holding = {
      db,
      owner,
      stop: new AbortController(),
      phase: "acquiring",
      grant: null,
      renewedAt: 0,
      renewTimer: null,
      pending: [],
      confirming: Promise.resolve(),
      broken: null,
      released: null,
    };
    this.#holdings.set(db, holding);
    const both = AbortSignal.any([signal, holding.stop.signal]);
    try {
      holding.grant = await this.#ask(db, wait, both);
      await this.#catchUp(db, holding.grant.pos, both);
      if (both.aborted) throw both.reason;
    } catch (err) {
      if (this.#holdings.get(db) === holding) this.#holdings.delete(db);
      if (holding.grant !== null) await this.#tellReleased(holding);
      throw err;
    }
    holding.phase = "held";
    holding.renewedAt = Date.now();
    const every = Math.max(200, Math.floor(holding.grant.expiresInMs / 3));
    holding.renewTimer = setInterval(() => this.#renew(holding), every);
    holding.renewTimer.unref();
    this.#opts.log.info("HALT lock held", { db, pos: formatPos(holding.grant.pos) });
    this.#opts.onChange?.({ kind: "acquired", db });
    return holding.grant.pos;
  }

  /**
   * Lets go of `db`'s HALT lock (see the header); resolves when the primary was told. Idempotent.
   * `stopping`: the node is shutting down — the WAL is left as it is (recovery at the next start
   * deals with it) and the primary gets little time, so that a stop is never held up here.
   */
  release(db: string, stopping = false): Promise<void> {
    const holding = this.#holdings.get(db);
    if (holding === undefined) return Promise.resolve();
    if (holding.released !== null) return holding.released;
    const wasHeld = holding.phase === "held";
    holding.phase = "releasing";
    holding.stop.abort(new HaltError("EHALTGONE", "the HALT lock was released"));
    if (holding.renewTimer !== null) clearInterval(holding.renewTimer);
    holding.released = (async () => {
      await holding.confirming;
      if (wasHeld) {
        try {
          if (!stopping) await this.#foldWal(db);
        } catch (err) {
          this.#opts.log.error("folding the WAL after a HALT lock failed", { db, error: String(err) });
        }
        await this.#tellReleased(holding, stopping ? 1000 : 5000);
        this.#opts.log.info("HALT lock released", { db });
        this.#opts.onChange?.({ kind: "released", db });
      }
      if (this.#holdings.get(db) === holding) this.#holdings.delete(db);
    })();
    return holding.released;
  }

  /** Releases everything (the node stops). */
  async close(): Promise<void> {
    this.#unsubscribe();
    await Promise.all([...this.#holdings.keys()].map((db) => this.release(db, true)));
  }

  /** After a change through the mount: confirm the transactions it committed (see the header). */
  afterChange(db: string): Promise<void> | null {
    const holding = this.#holdings.get(db);
    if (holding === undefined || holding.pending.length === 0) return null;
    const events = holding.pending.splice(0);
    const run = holding.confirming.then(() => this.#confirm(holding, events));
    holding.confirming = run.catch(() => undefined);
    return run;
  }

  #onCommit(event: CommitEvent): void {
    if (event.source === "replication" || !this.#opts.isReplica()) return;
    const holding = this.#holdings.get(event.db);
    if (holding === undefined || holding.phase !== "held") {
      this.#opts.log.error("a replica committed a transaction without holding the HALT lock", {
        db: event.db,
        pos: formatPos(event.pos),
        source: event.source,
      });
      return;
    }
    holding.pending.push(event);
  }

  async #confirm(holding: Holding, events: CommitEvent[]): Promise<void> {
    const { db } = holding;
    try {
      if (holding.broken !== null) throw holding.broken;
      for (const event of events) {
        const ltx = fs.readFileSync(event.ltxPath);
        const pos = await this.#opts.client.sendTx(
          db,
          holding.grant!.id,
          event.pos.txid,
          ltx,
          AbortSignal.timeout(CONFIRM_TIMEOUT_MS),
        );
        if (!posEqual(pos, event.pos)) {
          throw new HaltError(
            "EHALTPOS",
            `the primary applied the transaction at ${formatPos(pos)}, this replica is at ${formatPos(event.pos)}`,
          );
        }
        this.#opts.onChange?.({ kind: "confirmed", db, pos });
      }
    } catch (err) {
      holding.broken ??= err as Error;
      this.#opts.log.error("HALT commit not confirmed by the primary: the client's commit fails", {
        db,
        error: (err as Error).message,
      });
      this.#opts.onChange?.({ kind: "refused", db, error: (err as Error).message });
      this.#opts.resync?.();
      throw new FuseError("EIO", `HALT commit of ${db} not confirmed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async #ask(db: string, wait: boolean, signal: AbortSignal): Promise<HaltGrant> {
    for (;;) {
      try {
        return await this.#opts.client.acquire(db, wait ? ACQUIRE_WAIT_PER_REQUEST_MS : 0, signal);
      } catch (err) {
        if (!wait || signal.aborted || !(err instanceof HaltError) || err.code !== "EHALTBUSY") throw err;
      }
    }
  }

  async #catchUp(db: string, target: Pos, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + (this.#opts.catchUpTimeoutMs ?? DEFAULT_CATCH_UP_TIMEOUT_MS);
    for (;;) {
      const pos = this.#opts.store.db(db)?.pos ?? { txid: 0n, checksum: 0n };
      if (pos.txid > target.txid || (pos.txid === target.txid && !posEqual(pos, target))) {
        throw new HaltError(
          "EHALTCATCHUP",
          `this replica is at ${formatPos(pos)}, not on the primary's history at ${formatPos(target)}`,
        );
      }
      if (posEqual(pos, target)) return;
      if (Date.now() > deadline) {
        throw new HaltError(
          "EHALTCATCHUP",
          `this replica did not reach the primary's position ${formatPos(target)} in time (at ${formatPos(pos)})`,
        );
      }
      await sleep(5, undefined, { signal });
    }
  }

  /**
   * Renews the halt. The primary forgetting it (EHALTGONE) breaks it at once; a failure to reach the
   * primary only once the expiry has passed since the last confirmation (a blip is not a loss).
   */
  #renew(holding: Holding): void {
    if (holding.phase !== "held" || holding.broken !== null) return;
    const asked = Date.now();
    this.#opts.client
      .renew(holding.db, holding.grant!.id, AbortSignal.timeout(holding.grant!.expiresInMs))
      .then(() => {
        holding.renewedAt = asked;
      })
      .catch((err: unknown) => {
        if (holding.phase !== "held") return;
        // Forgotten, or asked of a node that is no longer the primary: the halt is over.
        const gone = err instanceof HaltError && (err.code === "EHALTGONE" || err.code === "ENOTPRIMARY");
        if (!gone && Date.now() < holding.renewedAt + holding.grant!.expiresInMs) {
          this.#opts.log.warn("HALT lock renewal failed; retrying", {
            db: holding.db,
            error: (err as Error).message,
          });
          return;
        }
        holding.broken ??= err as Error;
        this.#opts.log.error("HALT lock renewal failed: local writes are refused from now on", {
          db: holding.db,
          error: (err as Error).message,
        });
      });
  }

  async #tellReleased(holding: Holding, timeoutMs = 5000): Promise<void> {
    if (holding.grant === null) return;
    await this.#opts.client
      .release(holding.db, holding.grant.id, AbortSignal.timeout(timeoutMs))
      .catch((err: unknown) =>
        this.#opts.log.warn("could not release the HALT lock on the primary (it expires)", {
          db: holding.db,
          error: (err as Error).message,
        }),
      );
  }

  /** Under a writer's locks: the WAL's frames into the database file, readers told (halt-database-writer.ts). */
  async #foldWal(db: string): Promise<void> {
    const database = this.#opts.store.db(db);
    if (database === undefined) return;
    await this.#opts.writer.ensureReplicaWal(database);
    if (!database.exists("wal") || database.size("wal") === 0) return;
    const release = await this.#opts.locks.replicaApply(db, true, AbortSignal.timeout(30_000));
    try {
      const sizeBefore = database.files.size("database");
      if (this.#opts.writer.foldWal(database)) await this.#opts.writer.publish(database, sizeBefore);
    } finally {
      await release();
    }
  }
}
