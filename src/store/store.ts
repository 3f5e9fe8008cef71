// The store: every database of one node's data directory, opened (and recovered) together, with one
// list of commit subscribers. Plain synchronous calls; the mount, the HTTP API and replication drive it.
//
// Lifecycle: `Store.open` recovers every database (recovery.ts), captures WAL transactions a crash
// left uncaptured, and saves a not-clean checksums file per database (a base for the next recovery);
// `close` saves clean checksums files, so that a clean restart reads no page at all.

import crypto from "node:crypto";
import fs from "node:fs";

import type { LtxWriteFormat } from "../ltx/format.js";
import { BackingFiles } from "./backing-files.js";
import { markChecksumsFileDirty } from "./checksums-file.js";
import type { CommitEvent, CommitListener } from "./commit-event.js";
import { DataDir, type DatabaseFileKind } from "./data-dir.js";
import { Database, type DatabaseContext } from "./database.js";
import { assertDatabaseName, databaseNameProblem } from "./database-name.js";
import { writeFileDurably } from "./durable-file.js";
import { recoverDatabase, type RecoveryReport } from "./recovery.js";
import { LtxRetention } from "./retention.js";
import { StoreError } from "./store-error.js";
import { SILENT_LOGGER, type StoreLogger } from "./store-logger.js";
import { WalCapture } from "./wal-capture.js";

export interface StoreOptions {
  readonly dataDir: string;
  /** LTX format written (default "v3"). */
  readonly ltxFormat?: LtxWriteFormat;
  /** Recompute every page checksum at open instead of trusting saved ones. */
  readonly verify?: boolean;
  /** Skip fsyncs (tests only). */
  readonly noSync?: boolean;
  readonly log?: StoreLogger;
  /** Clock, ms since the epoch (LTX timestamps, retention). */
  readonly now?: () => number;
}

export class Store {
  readonly dataDir: DataDir;
  readonly nodeId: bigint;
  readonly #dbs = new Map<string, Database>();
  readonly #listeners = new Set<CommitListener>();
  readonly #ctx: DatabaseContext;
  readonly #log: StoreLogger;
  readonly #reports = new Map<string, RecoveryReport>();
  #commitGate: (db: string) => boolean = () => true;
  #behindKernel: (db: string, kinds: readonly DatabaseFileKind[]) => void = () => undefined;
  readonly #rewrittenListeners = new Set<(db: string) => void>();
  readonly #retention = new LtxRetention();
  #closed = false;

  private constructor(dataDir: DataDir, nodeId: bigint, opts: StoreOptions) {
    this.dataDir = dataDir;
    this.nodeId = nodeId;
    this.#log = opts.log ?? SILENT_LOGGER;
    this.#ctx = {
      nodeId,
      noSync: opts.noSync === true,
      ltx: { format: opts.ltxFormat ?? "v3" },
      now: opts.now ?? Date.now,
      log: this.#log,
      emit: (event) => this.#emit(event),
      mayCommit: (db) => this.#commitGate(db),
      changedBehindKernel: (db, kinds) => this.#behindKernel(db, kinds),
      ltxFilesRewritten: (db) => {
        for (const listener of this.#rewrittenListeners) listener(db);
      },
    };
  }

  /**
   * Installs the commit gate asked at every commit point a local connection reaches (database.ts,
   * "refused commits"); until then every commit is allowed. The mount installs its `mayCommit`.
   */
  setCommitGate(mayCommit: (db: string) => boolean): void {
    this.#commitGate = mayCommit;
  }

  /**
   * Installs what is told when the store rewrites a database's files behind the kernel outside a FUSE
   * request (a demoted node's WAL folded into the database file); the mount drops the kernel's caches.
   */
  setBehindKernelListener(listener: (db: string, kinds: readonly DatabaseFileKind[]) => void): void {
    this.#behindKernel = listener;
  }

  /**
   * Tells `listener` when a database's LTX files were moved or removed other than by retention
   * (quarantine, a replicated snapshot superseding them); returns the unsubscribe function.
   */
  onLtxFilesRewritten(listener: (db: string) => void): () => void {
    this.#rewrittenListeners.add(listener);
    return () => this.#rewrittenListeners.delete(listener);
  }

  /** Opens the data directory (creating it if needed) and recovers every database in it. */
  static open(opts: StoreOptions): Store {
    const dataDir = new DataDir(opts.dataDir);
    dataDir.ensure();
    const store = new Store(dataDir, loadOrCreateNodeId(dataDir), opts);
    for (const name of dataDir.listDatabaseNames().sort()) {
      const problem = databaseNameProblem(name);
      if (problem !== null) {
        store.#log.warn("ignoring a directory that cannot be a database", { dir: name, reason: problem });
        continue;
      }
      store.#openDatabase(name, opts.verify === true);
    }
    return store;
  }

  /** Databases by name, sorted. */
  databases(): Database[] {
    return [...this.#dbs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  db(name: string): Database | undefined {
    return this.#dbs.get(name);
  }

  /** The database `name`; throws EDBNOTFOUND. */
  mustDb(name: string): Database {
    const db = this.#dbs.get(name);
    if (db === undefined) throw new StoreError("EDBNOTFOUND", "no such database", { db: name });
    return db;
  }

  /** How each database was recovered at open (checksum source, pages read…). */
  recoveryReport(name: string): RecoveryReport | undefined {
    return this.#reports.get(name);
  }

  /**
   * The database `name`, created (empty, position 0) if it does not exist; its backing database file
   * exists afterwards. Throws EDBNAME for a name that cannot be a database.
   */
  createDatabase(name: string): Database {
    this.#assertOpen();
    const existing = this.#dbs.get(name);
    if (existing !== undefined) {
      existing.create("database");
      return existing;
    }
    assertDatabaseName(name);
    const dir = this.dataDir.database(name);
    dir.ensure();
    const files = new BackingFiles(dir, { noSync: this.#ctx.noSync });
    const db = new Database(
      name,
      dir,
      files,
      { pos: { txid: 0n, checksum: 0n }, checksums: null, wal: new WalCapture(), walMode: false },
      this.#ctx,
    );
    files.create("database");
    this.#dbs.set(name, db);
    this.#log.info("database created", { db: name });
    return db;
  }

  /**
   * The database `name` for a replica to apply transactions to: created (position 0, no database file
   * yet — it appears with its first snapshot) if it does not exist. Throws EDBNAME.
   */
  replicaDatabase(name: string): Database {
    this.#assertOpen();
    const existing = this.#dbs.get(name);
    if (existing !== undefined) return existing;
    assertDatabaseName(name);
    const dir = this.dataDir.database(name);
    dir.ensure();
    const files = new BackingFiles(dir, { noSync: this.#ctx.noSync });
    const db = new Database(
      name,
      dir,
      files,
      { pos: { txid: 0n, checksum: 0n }, checksums: null, wal: new WalCapture(), walMode: false },
      this.#ctx,
    );
    this.#dbs.set(name, db);
    this.#log.info("database created by replication", { db: name });
    return db;
  }

  /** Calls `listener` after every committed transaction (its LTX is durable); returns an unsubscribe. */
  subscribe(listener: CommitListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Saves a not-clean checksums file for every database (a periodic base for crash recovery). */
  saveChecksums(): void {
    for (const db of this.#dbs.values()) db.saveChecksums(false);
  }

  /**
   * Removes LTX files older than `retentionMs` (the newest per database always stays). Returns the
   * number of files removed; `onRetired` hears of each database's removals (files and bytes).
   *
   * A pass costs a stat per file removed and one more (retention.ts `LtxRetention`), not a listing and
   * a stat of every file kept (with `data.retention` 10 min at 1,000 tx/s, 600,000 of them).
   */
  enforceRetention(
    retentionMs: number,
    onRetired?: (db: string, files: number, bytes: number) => void,
  ): number {
    const now = this.#ctx.now();
    let removed = 0;
    for (const db of this.#dbs.values()) {
      const retired = this.#retention.retire(db, now, retentionMs);
      if (retired.files === 0) continue;
      removed += retired.files;
      db.ltxFilesRetired(retired.upToTxid);
      onRetired?.(db.name, retired.files, retired.bytes);
    }
    if (removed > 0) this.#log.debug("retention removed LTX files", { count: removed });
    return removed;
  }

  /** Clean shutdown: saves clean checksums files and closes every database. Call after unmounting. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const db of this.#dbs.values()) {
      try {
        db.saveChecksums(true);
      } catch (err) {
        this.#log.error("could not save checksums at shutdown", {
          db: db.name,
          error: (err as Error).message,
        });
      }
      db.close();
    }
    this.#listeners.clear();
  }

  #openDatabase(name: string, verify: boolean): void {
    const started = performance.now();
    const dir = this.dataDir.database(name);
    const files = new BackingFiles(dir, { noSync: this.#ctx.noSync });
    let recovered;
    try {
      recovered = recoverDatabase(name, dir, files, { verify, log: this.#log, nodeId: this.nodeId });
    } catch (err) {
      files.close();
      throw err;
    }
    const db = new Database(name, dir, files, recovered.state, this.#ctx);
    this.#dbs.set(name, db);
    if (recovered.report.needsSnapshot) db.captureExisting();
    const late = db.captureWal();
    if (late > 0) this.#log.info("captured WAL transactions left by a crash", { db: name, count: late });
    // A `-shm` the last run left may describe files that have moved on since: a replica killed between
    // a run's page writes and the wal-index header it publishes after them leaves a header with the
    // old page count beside a longer database (and recovery may roll more forward); a primary's may
    // count WAL frames recovery has just voided. A connection that opens it while the node holds its
    // DMS lock (an apply) is not the first, so SQLite keeps the header and trusts it: a new reader's
    // first read then fails with "database disk image is malformed". No connection can have it open
    // now (the mount is not served yet): it goes, and the first connection rebuilds it from the WAL.
    const staleShm = files.exists("shm");
    if (staleShm) files.unlink("shm");
    markChecksumsFileDirty(dir.checksumsFile, { noSync: this.#ctx.noSync });
    if (recovered.report.checksumSource !== "clean" || late > 0 || recovered.report.needsSnapshot) {
      db.saveChecksums(false);
    }
    this.#reports.set(name, recovered.report);
    this.#log.info("database opened", {
      db: name,
      pos: db.posText.trim(),
      checksums: recovered.report.checksumSource,
      pagesRead: recovered.report.pagesRead,
      ...(staleShm ? { removedShm: true } : {}),
      ...(recovered.report.fullPassReason === undefined
        ? {}
        : { fullPassReason: recovered.report.fullPassReason }),
      ms: Math.round(performance.now() - started),
    });
  }

  #emit(event: CommitEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#log.error("commit listener failed", { db: event.db, error: (err as Error).message });
      }
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError("ECLOSED", "store is closed");
  }
}

/** The node's id: 16 hex digits in `<data>/id`, created at first start. */
function loadOrCreateNodeId(dataDir: DataDir): bigint {
  const file = `${dataDir.root}/id`;
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    if (!/^[0-9a-f]{16}$/.test(text)) {
      throw new StoreError("EDATADIR", `node id file holds ${JSON.stringify(text)}, not 16 hex digits`, {
        file,
      });
    }
    return BigInt("0x" + text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  let id = 0n;
  while (id === 0n) id = crypto.randomBytes(8).readBigUInt64BE();
  writeFileDurably(file, [Buffer.from(id.toString(16).padStart(16, "0") + "\n")]);
  return id;
}
