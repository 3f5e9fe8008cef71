// Errors of the store. Every failure has a stable `code` that callers match on (the FUSE edge maps
// codes to errno in one table, the HTTP API to status codes), says what and where (database, file,
// TXID, offset) and, where it helps, what to do. The underlying error is kept as `cause`.

export type StoreErrorCode =
  | "EDBNOTFOUND" // no database of that name
  | "EDBEXISTS" // a database of that name already exists (create without overwrite)
  | "EDBNAME" // a name that cannot be a database (empty, '/', reserved suffix, leading '.')
  | "EDBFILE" // an operation on a database's file that the store does not allow (e.g. writing -pos)
  | "EJOURNALMODE" // a journal mode whose commits cannot be captured (MEMORY, OFF, WAL + EXCLUSIVE)
  | "ECAPTURE" // a commit could not be turned into an LTX file (fatal for that database)
  | "EDATADIR" // the data directory holds something unexpected (bad file, bad name, corrupt state)
  | "ECHECKSUM" // a database's content does not match its position (changed behind the node's back)
  | "EAPPLY" // an LTX file does not follow the database's position or does not apply
  | "EIMPORT" // a file given to import is not a usable SQLite database
  | "ECOMMITREFUSED" // a commit point reached while this node may not commit (lease lost): undone
  | "ECLOSED"; // the store or database was closed

export interface StoreErrorDetails {
  db?: string;
  file?: string;
  txid?: bigint;
  cause?: unknown;
}

export class StoreError extends Error {
  override readonly name = "StoreError";
  readonly code: StoreErrorCode;
  readonly db: string | undefined;
  readonly file: string | undefined;
  readonly txid: bigint | undefined;

  constructor(code: StoreErrorCode, detail: string, details: StoreErrorDetails = {}) {
    super(
      StoreError.#format(code, detail, details),
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.code = code;
    this.db = details.db;
    this.file = details.file;
    this.txid = details.txid;
  }

  static #format(code: StoreErrorCode, detail: string, d: StoreErrorDetails): string {
    const where: string[] = [];
    if (d.db !== undefined) where.push(`db ${JSON.stringify(d.db)}`);
    if (d.txid !== undefined) where.push(`TXID ${d.txid.toString(16).padStart(16, "0")}`);
    if (d.file !== undefined) where.push(d.file);
    const cause = d.cause instanceof Error ? `: ${d.cause.message}` : "";
    return `${where.length > 0 ? where.join(", ") + ": " : ""}${detail}${cause} (${code})`;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
