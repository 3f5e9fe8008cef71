// The guestbook's storage: one SQLite table of entries, through better-sqlite3. Made to run on a LiteFS
// replica too, where the database is read-only: a read-only database found at startup skips the
// migration and serves reads (an empty list until the table arrives by replication); a write there
// fails with GuestbookReadOnlyError. Behind the LiteFS proxy, writes never reach a replica's app.
// A node's role can change (a lease on etcd): the database may not exist yet when the app starts on a
// replica (opened on first use), and a connection opened on a replica in WAL mode stays read-only
// after the node is promoted (SQLite opened the file O_RDONLY), so a write refused as read-only
// reopens it once.

import fs from "node:fs";
import path from "node:path";

import Database from "better-sqlite3";

export type JournalMode = "delete" | "truncate" | "persist" | "wal";
export const JOURNAL_MODES: readonly JournalMode[] = ["delete", "truncate", "persist", "wal"];

export interface GuestbookDbOptions {
  readonly path: string;
  /** Set at startup when the database is writable; undefined leaves the database's mode alone. */
  readonly journalMode?: JournalMode;
  /** How long a statement waits for another connection's lock (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** Open read-only (as on a replica); the database must exist. */
  readonly readOnly?: boolean;
}

export interface GuestbookEntry {
  readonly id: number;
  readonly name: string;
  readonly message: string;
  /** ISO 8601, UTC, as SQLite wrote it. */
  readonly createdAt: string;
}

export const NAME_MAX_CHARS = 100;
export const MESSAGE_MAX_CHARS = 1000;

/** A write on a database this process cannot write (a LiteFS replica). */
export class GuestbookReadOnlyError extends Error {
  override readonly name = "GuestbookReadOnlyError";
  readonly code = "EREADONLYREPLICA";

  constructor(path: string, cause: unknown) {
    super(`read-only replica: the database ${path} cannot be written on this node`, { cause });
  }
}

const CREATE_TABLE = `CREATE TABLE entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`;

interface EntryRow {
  id: number;
  name: string;
  message: string;
  created_at: string;
}

function isReadOnlyError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("SQLITE_READONLY");
}

function isMissingTable(err: unknown): boolean {
  return err instanceof Error && /no such table: entries/.test(err.message);
}

export class GuestbookDb {
  readonly path: string;
  readonly #opts: GuestbookDbOptions;
  #db: Database.Database | null = null;
  #writable = false;

  /**
   * Opens the database. When the file is not there yet but its folder is (a LiteFS replica before
   * replication brought it: it cannot be created there), the connection is opened on first use
   * instead; any other failure to open throws.
   */
  constructor(opts: GuestbookDbOptions) {
    this.path = opts.path;
    this.#opts = opts;
    try {
      this.#open();
    } catch (err) {
      if (fs.existsSync(opts.path) || !fs.existsSync(path.dirname(opts.path))) throw err;
    }
  }

  /** False while the connection is read-only (a replica) or the database is not there yet. */
  get writable(): boolean {
    return this.#db !== null && this.#writable;
  }

  /** Whether the database has been opened (false on a replica until it arrives). */
  get opened(): boolean {
    return this.#db !== null;
  }

  /** The current journal mode, as SQLite reports it ("" while the database is not there yet). */
  journalMode(): string {
    const db = this.#connection();
    return db === null ? "" : String(db.pragma("journal_mode", { simple: true }));
  }

  /** The newest entries first, at most `limit`; [] while the table does not exist yet (replica). */
  list(limit = 100): GuestbookEntry[] {
    const db = this.#connection();
    if (db === null) return [];
    try {
      const rows = db
        .prepare("SELECT id, name, message, created_at FROM entries ORDER BY id DESC LIMIT ?")
        .all(limit) as EntryRow[];
      return rows.map((r) => ({ id: r.id, name: r.name, message: r.message, createdAt: r.created_at }));
    } catch (err) {
      if (isMissingTable(err)) return [];
      throw err;
    }
  }

  /**
   * Inserts an entry; throws GuestbookReadOnlyError on a read-only database. A connection SQLite
   * opened read-only (its node was a LiteFS replica then, in WAL mode) stays read-only after the node
   * becomes primary, so a write refused as read-only reopens the connection once and tries again — unless
   * the database was opened read-only on purpose (`readOnly`).
   */
  add(name: string, message: string): GuestbookEntry {
    try {
      return this.#insert(name, message);
    } catch (err) {
      if (this.#opts.readOnly === true || !this.#refusedAsReadOnly(err)) throw this.#translate(err);
    }
    this.#close();
    try {
      this.#open();
      return this.#insert(name, message);
    } catch (err) {
      throw this.#translate(err);
    }
  }

  close(): void {
    this.#close();
  }

  #insert(name: string, message: string): GuestbookEntry {
    const db = this.#connection();
    if (db === null) throw new GuestbookReadOnlyError(this.path, new Error("the database is not there yet"));
    const row = db
      .prepare("INSERT INTO entries (name, message) VALUES (?, ?) RETURNING id, name, message, created_at")
      .get(name, message) as EntryRow;
    return { id: row.id, name: row.name, message: row.message, createdAt: row.created_at };
  }

  #refusedAsReadOnly(err: unknown): boolean {
    return (
      err instanceof GuestbookReadOnlyError ||
      isReadOnlyError(err) ||
      (!this.#writable && isMissingTable(err))
    );
  }

  #translate(err: unknown): unknown {
    if (err instanceof GuestbookReadOnlyError) return err;
    return this.#refusedAsReadOnly(err) ? new GuestbookReadOnlyError(this.path, err) : err;
  }

  /** The open connection, opening it first if the database was not there before; null if still not. */
  #connection(): Database.Database | null {
    if (this.#db === null) {
      try {
        this.#open();
      } catch {
        return null;
      }
    }
    return this.#db;
  }

  #open(): void {
    const readOnly = this.#opts.readOnly === true;
    const db = new Database(this.path, { readonly: readOnly, fileMustExist: readOnly });
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(this.#opts.busyTimeoutMs ?? 5000))}`);
      this.#writable = !db.readonly;
      if (this.#writable) this.#migrate(db, this.#opts.journalMode);
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
  }

  #close(): void {
    const db = this.#db;
    this.#db = null;
    this.#writable = false;
    db?.close();
  }

  #migrate(db: Database.Database, journalMode: JournalMode | undefined): void {
    try {
      if (journalMode !== undefined) db.pragma(`journal_mode = ${journalMode}`);
      const exists = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'")
        .get();
      if (exists === undefined) db.exec(CREATE_TABLE);
    } catch (err) {
      // A replica's database opens read-write as far as SQLite knows until the first write is refused.
      if (!isReadOnlyError(err)) throw err;
      this.#writable = false;
    }
  }
}
