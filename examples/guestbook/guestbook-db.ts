// The guestbook's storage: one SQLite table of entries, through better-sqlite3. Made to run on a LiteFS
// replica too, where the database is read-only: a read-only database found at startup skips the
// migration and serves reads (an empty list until the table arrives by replication); a write there
// fails with GuestbookReadOnlyError. Behind the LiteFS proxy, writes never reach a replica's app.

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
  readonly #db: Database.Database;
  #writable: boolean;

  constructor(opts: GuestbookDbOptions) {
    this.path = opts.path;
    this.#db = new Database(opts.path, {
      readonly: opts.readOnly === true,
      fileMustExist: opts.readOnly === true,
    });
    this.#db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    this.#writable = !this.#db.readonly;
    if (this.#writable) this.#migrate(opts.journalMode);
  }

  /** False when the database turned out read-only at startup (a replica). */
  get writable(): boolean {
    return this.#writable;
  }

  /** The current journal mode, as SQLite reports it. */
  journalMode(): string {
    return String(this.#db.pragma("journal_mode", { simple: true }));
  }

  /** The newest entries first, at most `limit`; [] while the table does not exist yet (replica). */
  list(limit = 100): GuestbookEntry[] {
    try {
      const rows = this.#db
        .prepare("SELECT id, name, message, created_at FROM entries ORDER BY id DESC LIMIT ?")
        .all(limit) as EntryRow[];
      return rows.map((r) => ({ id: r.id, name: r.name, message: r.message, createdAt: r.created_at }));
    } catch (err) {
      if (isMissingTable(err)) return [];
      throw err;
    }
  }

  /** Inserts an entry; throws GuestbookReadOnlyError on a read-only database. */
  add(name: string, message: string): GuestbookEntry {
    try {
      const row = this.#db
        .prepare("INSERT INTO entries (name, message) VALUES (?, ?) RETURNING id, name, message, created_at")
        .get(name, message) as EntryRow;
      return { id: row.id, name: row.name, message: row.message, createdAt: row.created_at };
    } catch (err) {
      if (isReadOnlyError(err) || (!this.#writable && isMissingTable(err))) {
        throw new GuestbookReadOnlyError(this.path, err);
      }
      throw err;
    }
  }

  close(): void {
    this.#db.close();
  }

  #migrate(journalMode: JournalMode | undefined): void {
    try {
      if (journalMode !== undefined) this.#db.pragma(`journal_mode = ${journalMode}`);
      const exists = this.#db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'")
        .get();
      if (exists === undefined) this.#db.exec(CREATE_TABLE);
    } catch (err) {
      // A replica's database opens read-write as far as SQLite knows until the first write is refused.
      if (!isReadOnlyError(err)) throw err;
      this.#writable = false;
    }
  }
}
