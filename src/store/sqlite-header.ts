// The 100-byte header at the start of every SQLite database file (page 1), as SQLite's file-format
// document describes it: big-endian integers, the page size with 1 standing for 65536, the format
// versions that switch WAL on, the change counter and the in-header page count that a commit updates.
//
// Pure: takes bytes, returns data. Also home of SqliteFormatError, the one error class of the SQLite
// file-format modules (database header, WAL, rollback journal, wal-index).

/** Bytes of the database header. */
export const DATABASE_HEADER_SIZE = 100;

/** The 16-byte magic string every database starts with: "SQLite format 3" and a NUL. */
export const DATABASE_MAGIC: Uint8Array = new TextEncoder().encode("SQLite format 3\0");

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

/** File format versions at offsets 18 (write) and 19 (read): 1 = rollback journal, 2 = WAL. */
export const FORMAT_VERSION_LEGACY = 1;
export const FORMAT_VERSION_WAL = 2;

export type TextEncodingName = "utf-8" | "utf-16le" | "utf-16be" | "unset";

export type SqliteFormatErrorCode =
  | "ESQLITEHEADER" // the database header is short or breaks a rule of the format
  | "EWALHEADER" // the WAL header is short, has a bad magic, version, page size or checksum
  | "EWALFRAME" // a WAL frame cannot be built or read as asked (bad pgno, wrong page length…)
  | "EJOURNAL" // a rollback journal header or record cannot be built or read as asked
  | "ESHMHEADER"; // the wal-index (-shm) header is short or cannot be built as asked

/** An error of the SQLite file-format modules: `code` is stable, `offset` is where in the input. */
export class SqliteFormatError extends Error {
  override readonly name = "SqliteFormatError";
  readonly code: SqliteFormatErrorCode;
  readonly offset: number | undefined;

  constructor(code: SqliteFormatErrorCode, detail: string, offset?: number) {
    super(`${offset === undefined ? "" : `offset ${offset}: `}${detail} (${code})`);
    this.code = code;
    this.offset = offset;
  }
}

/** The fields of the database header. Integers are unsigned unless the format says otherwise. */
export interface DatabaseHeader {
  /** Page size in bytes (the stored value 1 is decoded as 65536). */
  readonly pageSize: number;
  /** Offset 18: 1 legacy (rollback journal), 2 WAL. */
  readonly writeVersion: number;
  /** Offset 19: 1 legacy, 2 WAL. SQLite decides WAL mode from this byte. */
  readonly readVersion: number;
  /** Offset 20: bytes reserved at the end of each page (for extensions such as checksums). */
  readonly reservedBytes: number;
  /** Offset 24: incremented by every commit in rollback mode (WAL commits may leave it alone). */
  readonly changeCounter: number;
  /** Offset 28: database size in pages, trustworthy only when `pageCountValid`. */
  readonly pageCount: number;
  /** True when offset 28 can be believed: non-zero and `versionValidFor === changeCounter`. */
  readonly pageCountValid: boolean;
  /** Offset 32: page number of the first freelist trunk page (0 = none). */
  readonly freelistTrunk: number;
  /** Offset 36: number of freelist pages. */
  readonly freelistCount: number;
  /** Offset 40: the schema cookie, bumped by every schema change. */
  readonly schemaCookie: number;
  /** Offset 44: schema format number, 1..4. */
  readonly schemaFormat: number;
  /** Offset 48: default page cache size (signed). */
  readonly defaultCacheSize: number;
  /** Offset 52: largest root b-tree page in auto/incremental vacuum modes, else 0. */
  readonly autovacuumLargestRoot: number;
  /** Offset 56: 1 UTF-8, 2 UTF-16le, 3 UTF-16be (0 before the schema was first written). */
  readonly textEncoding: number;
  /** Offset 60: PRAGMA user_version (signed). */
  readonly userVersion: number;
  /** Offset 64: non-zero for incremental vacuum mode. */
  readonly incrementalVacuum: number;
  /** Offset 68: PRAGMA application_id (signed). */
  readonly applicationId: number;
  /** Offset 92: the change counter value at which `pageCount` was last written. */
  readonly versionValidFor: number;
  /** Offset 96: SQLITE_VERSION_NUMBER of the library that last wrote the file. */
  readonly sqliteVersion: number;
}

/** True when `n` is a power of two in [512, 65536]: the page sizes SQLite accepts. */
export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

/** Decodes the u16 page size at offset 16 (1 means 65536); returns 0 for a value no page size has. */
export function decodeHeaderPageSize(stored: number): number {
  const size = stored === 1 ? MAX_PAGE_SIZE : stored;
  return isValidPageSize(size) ? size : 0;
}

/**
 * Why `bytes` is not a usable database header, or undefined when it is. Checks what SQLite itself
 * refuses a file for: length, magic, page size, payload fractions (64/32/32), read version ≤ 2 and a
 * usable page size (page size − reserved bytes) of at least 480.
 */
export function databaseHeaderProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length < DATABASE_HEADER_SIZE) {
    return `header needs ${DATABASE_HEADER_SIZE} bytes, got ${bytes.length}`;
  }
  for (let i = 0; i < DATABASE_MAGIC.length; i++) {
    if (bytes[i] !== DATABASE_MAGIC[i]) return `bad magic (byte ${i} is 0x${bytes[i].toString(16)})`;
  }
  const stored = (bytes[16] << 8) | bytes[17];
  const pageSize = decodeHeaderPageSize(stored);
  if (pageSize === 0) return `bad page size ${stored} at offset 16`;
  if (bytes[19] < FORMAT_VERSION_LEGACY || bytes[19] > FORMAT_VERSION_WAL) {
    return `read version ${bytes[19]} at offset 19 is neither 1 (legacy) nor 2 (WAL)`;
  }
  if (bytes[18] < FORMAT_VERSION_LEGACY) return `write version ${bytes[18]} at offset 18 is 0`;
  if (bytes[21] !== 64 || bytes[22] !== 32 || bytes[23] !== 32) {
    return `payload fractions ${bytes[21]}/${bytes[22]}/${bytes[23]} at offset 21 are not 64/32/32`;
  }
  if (pageSize - bytes[20] < 480) return `usable page size ${pageSize - bytes[20]} is below 480`;
  return undefined;
}

/** True when `bytes` starts with a valid database header (see databaseHeaderProblem). */
export function isValidDatabaseHeader(bytes: Uint8Array): boolean {
  return databaseHeaderProblem(bytes) === undefined;
}

/** Parses the header; throws SqliteFormatError ESQLITEHEADER when databaseHeaderProblem finds one. */
export function parseDatabaseHeader(bytes: Uint8Array): DatabaseHeader {
  const problem = databaseHeaderProblem(bytes);
  if (problem !== undefined) throw new SqliteFormatError("ESQLITEHEADER", `database header: ${problem}`, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, DATABASE_HEADER_SIZE);
  const u32 = (offset: number): number => view.getUint32(offset, false);
  const i32 = (offset: number): number => view.getInt32(offset, false);
  const changeCounter = u32(24);
  const pageCount = u32(28);
  const versionValidFor = u32(92);
  return {
    pageSize: decodeHeaderPageSize(view.getUint16(16, false)),
    writeVersion: bytes[18],
    readVersion: bytes[19],
    reservedBytes: bytes[20],
    changeCounter,
    pageCount,
    pageCountValid: pageCount !== 0 && versionValidFor === changeCounter,
    freelistTrunk: u32(32),
    freelistCount: u32(36),
    schemaCookie: u32(40),
    schemaFormat: u32(44),
    defaultCacheSize: i32(48),
    autovacuumLargestRoot: u32(52),
    textEncoding: u32(56),
    userVersion: i32(60),
    incrementalVacuum: u32(64),
    applicationId: i32(68),
    versionValidFor,
    sqliteVersion: u32(96),
  };
}

/**
 * True when the database is in WAL mode. SQLite decides this from the read version (offset 19) alone:
 * 2 opens the WAL; `PRAGMA journal_mode=WAL` sets both 18 and 19 to 2, leaving it sets both to 1.
 */
export function isWalMode(header: DatabaseHeader | Uint8Array): boolean {
  if (header instanceof Uint8Array) {
    if (header.length < DATABASE_HEADER_SIZE) {
      throw new SqliteFormatError(
        "ESQLITEHEADER",
        `isWalMode: header needs ${DATABASE_HEADER_SIZE} bytes`,
        0,
      );
    }
    return header[19] === FORMAT_VERSION_WAL;
  }
  return header.readVersion === FORMAT_VERSION_WAL;
}

/** The name of a text encoding value (offset 56). */
export function textEncodingName(value: number): TextEncodingName {
  switch (value) {
    case 1:
      return "utf-8";
    case 2:
      return "utf-16le";
    case 3:
      return "utf-16be";
    default:
      return "unset";
  }
}

/**
 * The number of pages SQLite believes the database has: the in-header count when it is valid, else
 * the file size rounded up to whole pages (what SQLite falls back to for files written by old versions).
 */
export function effectivePageCount(header: DatabaseHeader, fileSize: number): number {
  if (header.pageCountValid) return header.pageCount;
  return Math.ceil(fileSize / header.pageSize);
}
