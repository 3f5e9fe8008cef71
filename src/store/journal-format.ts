// SQLite's rollback journal (`-journal`): before a transaction changes a page of the database file
// it copies the page's original content into the journal, so that a crash can be undone by copying
// the originals back ("hot journal rollback"). Layout (big-endian integers):
//
//   segment header, padded to the sector size (the first header's sector-size field, usually 512):
//     0 magic d9 d5 05 f9 20 a1 63 d7 · 8 nRec · 12 checksum nonce · 16 database size in pages before
//     the transaction · 20 sector size · 24 page size
//   nRec records: pgno u32 · the page's original bytes · checksum u32 (nonce + every 200th byte)
//   … further segments (a new header at the next sector boundary each time the cache spilled) …
//   optionally a super-journal record (multi-database commits): pgno = lock page, name, u32 length,
//   u32 checksum of the name, magic — always at the very end of the file.
//
// In synchronous modes a header is first written with magic and nRec zeroed; both are filled in just
// before the database file is first written, so a header without magic means "nothing of this
// segment reached the database". With synchronous=OFF the magic is written at once with nRec
// 0xFFFFFFFF, meaning "as many records as the file holds".
//
// Pure: takes bytes, returns data. The rollback plan is applied by the caller (applyJournalRollback
// does it on bytes in memory, for tests and small files).

import { SqliteFormatError, isValidPageSize } from "./sqlite-header.js";
import { lockPageNumber } from "./sqlite-locks.js";

export const JOURNAL_MAGIC: Uint8Array = Uint8Array.of(0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7);
/** Bytes of a journal header that carry fields; the rest up to the sector size is zero padding. */
export const JOURNAL_HEADER_FIELDS_SIZE = 28;
/** nRec meaning "compute the record count from the file size" (journals written with synchronous=OFF). */
export const JOURNAL_NREC_FROM_SIZE = 0xffffffff;
/** The sector size a Linux SQLite assumes before reading a journal (the unix VFS is powersafe-overwrite). */
export const DEFAULT_JOURNAL_SECTOR_SIZE = 512;
const MIN_SECTOR_SIZE = 32;
const MAX_SECTOR_SIZE = 0x10000;
/** Longest super-journal name SQLite's unix VFS reads (mxPathname 512). */
const MAX_SUPER_JOURNAL_NAME = 512;

export interface JournalHeader {
  /** Byte offset of this header in the journal. */
  readonly offset: number;
  /** Records in this segment as written (JOURNAL_NREC_FROM_SIZE: to the end of the file). */
  readonly recordCount: number;
  /** Seed of every record checksum in this segment. */
  readonly nonce: number;
  /** Database size in pages before the transaction: rollback truncates the database to it. */
  readonly initialPageCount: number;
  readonly sectorSize: number;
  readonly pageSize: number;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
}

function hasMagicAt(bytes: Uint8Array, offset: number): boolean {
  if (offset + JOURNAL_MAGIC.length > bytes.length) return false;
  for (let i = 0; i < JOURNAL_MAGIC.length; i++) if (bytes[offset + i] !== JOURNAL_MAGIC[i]) return false;
  return true;
}

/** Reads the header at `offset`, or undefined when there is none (short, or the magic does not match). */
export function readJournalHeader(bytes: Uint8Array, offset = 0): JournalHeader | undefined {
  if (offset + JOURNAL_HEADER_FIELDS_SIZE > bytes.length || !hasMagicAt(bytes, offset)) return undefined;
  const view = viewOf(bytes);
  return {
    offset,
    recordCount: view.getUint32(offset + 8, false),
    nonce: view.getUint32(offset + 12, false),
    initialPageCount: view.getUint32(offset + 16, false),
    sectorSize: view.getUint32(offset + 20, false),
    pageSize: view.getUint32(offset + 24, false),
  };
}

/** SQLite's journal record checksum: the nonce plus every 200th byte counting back from the page's end. */
export function journalChecksum(nonce: number, page: Uint8Array): number {
  let sum = nonce;
  for (let i = page.length - 200; i > 0; i -= 200) sum += page[i];
  return sum >>> 0;
}

export type JournalStop =
  | "end" // the file ends where the next segment header would start
  | "no-header" // the next header is short or lacks the magic (unsynced, zeroed, or stale)
  | "bad-header" // the first header's page or sector size is invalid (torn before it was synced)
  | "short-record" // a record runs past the end of the file (torn)
  | "checksum" // a record's checksum does not match (torn or stale)
  | "pgno"; // a record with page number 0 or the lock page (torn, or the super-journal record)

export interface JournalRecord {
  readonly offset: number;
  readonly pgno: number;
  /** The page's original content (a view into the journal bytes). */
  readonly page: Uint8Array;
  /**
   * False for a page beyond the database's initial size: SQLite skips it (without checking its
   * checksum), because truncating the database to its initial size already undoes it.
   */
  readonly restores: boolean;
}

export interface ParsedJournal {
  /** Segment headers read, in order (the first one's page and sector size apply to all). */
  readonly headers: readonly JournalHeader[];
  /** Every record SQLite's hot-journal playback examines, in journal order, up to the stop. */
  readonly records: readonly JournalRecord[];
  readonly stop: JournalStop;
  readonly stopOffset: number;
  /** The super-journal named at the end of the journal (multi-database commit), if any. */
  readonly superJournal: string | undefined;
}

/**
 * Reads a journal the way SQLite plays back a hot journal (pager_playback with isHot): segment after
 * segment, each header at the next sector boundary; nRec records per segment (0xFFFFFFFF: as many as
 * fit); stops at the first missing header, invalid first header, short record, page number 0 or lock
 * page, or record whose checksum does not match. Records beyond the initial page count are listed
 * but marked `restores: false`, and their checksums are not checked (as in SQLite).
 */
export function parseJournal(bytes: Uint8Array): ParsedJournal {
  const headers: JournalHeader[] = [];
  const records: JournalRecord[] = [];
  const superJournal = readSuperJournalName(bytes);
  const view = viewOf(bytes);
  const size = bytes.length;
  let sectorSize = DEFAULT_JOURNAL_SECTOR_SIZE;
  let pageSize = 0;
  let initialPageCount = 0;
  let lockPage = 0;
  let offset = 0;
  const done = (stop: JournalStop, at: number): ParsedJournal => ({
    headers,
    records,
    stop,
    stopOffset: at,
    superJournal,
  });

  for (;;) {
    // Headers sit on sector boundaries: round the offset up (journalHdrOffset).
    offset = Math.ceil(offset / sectorSize) * sectorSize;
    if (offset + sectorSize > size) return done(offset >= size ? "end" : "no-header", offset);
    const header = readJournalHeader(bytes, offset);
    if (header === undefined) return done("no-header", offset);
    if (headers.length === 0) {
      const s = header.sectorSize;
      if (
        !isValidPageSize(header.pageSize) ||
        s < MIN_SECTOR_SIZE ||
        s > MAX_SECTOR_SIZE ||
        (s & (s - 1)) !== 0
      ) {
        return done("bad-header", offset);
      }
      sectorSize = s;
      pageSize = header.pageSize;
      initialPageCount = header.initialPageCount;
      lockPage = lockPageNumber(pageSize);
    }
    headers.push(header);
    offset += sectorSize;
    const recordSize = pageSize + 8;
    let count = header.recordCount;
    if (count === JOURNAL_NREC_FROM_SIZE) count = Math.floor((size - offset) / recordSize);
    for (let i = 0; i < count; i++) {
      if (offset + recordSize > size) return done("short-record", offset);
      const pgno = view.getUint32(offset, false);
      if (pgno === 0 || pgno === lockPage) return done("pgno", offset);
      const page = bytes.subarray(offset + 4, offset + 4 + pageSize);
      if (pgno > initialPageCount) {
        records.push({ offset, pgno, page, restores: false });
      } else {
        if (journalChecksum(header.nonce, page) !== view.getUint32(offset + 4 + pageSize, false)) {
          // SQLite treats this as the end of the journal (it jumps to the file's end).
          return done("checksum", offset);
        }
        records.push({ offset, pgno, page, restores: true });
      }
      offset += recordSize;
    }
  }
}

/**
 * The super-journal name recorded at the end of the journal, or undefined. A name whose checksum
 * does not match counts as absent (SQLite then rolls back unconditionally).
 */
export function readSuperJournalName(bytes: Uint8Array): string | undefined {
  const size = bytes.length;
  if (size < 16 || !hasMagicAt(bytes, size - 8)) return undefined;
  const view = viewOf(bytes);
  const length = view.getUint32(size - 16, false);
  if (length === 0 || length > MAX_SUPER_JOURNAL_NAME || length > size - 16) return undefined;
  const name = bytes.subarray(size - 16 - length, size - 16);
  let sum = view.getUint32(size - 12, false);
  for (const b of name) sum = (sum - b) >>> 0;
  if (sum !== 0) return undefined;
  // SQLite uses the name up to its first NUL.
  const nul = name.indexOf(0);
  const text = new TextDecoder().decode(nul === -1 ? name : name.subarray(0, nul));
  return text === "" ? undefined : text;
}

/** What a hot-journal rollback does to the database file. */
export interface JournalRollback {
  readonly pageSize: number;
  /** The database file is first truncated (or extended) to this many pages: its size before the transaction. */
  readonly dbPageCount: number;
  /** Then these original pages are written back (pgno → page bytes, views into the journal). */
  readonly pages: ReadonlyMap<number, Uint8Array>;
  /**
   * Set when the journal belongs to a multi-database commit. SQLite rolls back only if this file
   * exists; if it does not, the commit completed and the journal is simply discarded.
   */
  readonly superJournal: string | undefined;
  readonly parsed: ParsedJournal;
}

/**
 * The rollback SQLite performs for this hot journal, or undefined when its first header is missing or
 * invalid (then SQLite discards the journal and leaves the database untouched). Pages are written in
 * journal order, so for a page recorded twice (which SQLite never writes) the last record would win, as
 * in SQLite.
 */
export function journalRollbackPages(bytes: Uint8Array): JournalRollback | undefined {
  const parsed = parseJournal(bytes);
  if (parsed.headers.length === 0) return undefined;
  const first = parsed.headers[0];
  const pages = new Map<number, Uint8Array>();
  for (const record of parsed.records) if (record.restores) pages.set(record.pgno, record.page);
  return {
    pageSize: first.pageSize,
    dbPageCount: first.initialPageCount,
    pages,
    superJournal: parsed.superJournal,
    parsed,
  };
}

/**
 * The database file's size after SQLite's truncate step of a rollback (pager_truncate): cut down to
 * `dbPageCount` pages, or extended to it by writing a zero last page when at least a page short.
 */
export function rolledBackFileSize(currentSize: number, rollback: JournalRollback): number {
  const target = rollback.dbPageCount * rollback.pageSize;
  if (currentSize > target) return target;
  if (currentSize + rollback.pageSize <= target) return target;
  return currentSize;
}

/** Applies a rollback to a database image held in memory and returns the rolled-back image. */
export function applyJournalRollback(db: Uint8Array, rollback: JournalRollback): Uint8Array {
  const size = rolledBackFileSize(db.length, rollback);
  const out = new Uint8Array(size);
  out.set(db.subarray(0, Math.min(size, db.length)));
  for (const [pgno, page] of rollback.pages) {
    const at = (pgno - 1) * rollback.pageSize;
    if (at + page.length > out.length) {
      throw new SqliteFormatError(
        "EJOURNAL",
        `rollback page ${pgno} lies past the database size ${size}`,
        at,
      );
    }
    out.set(page, at);
  }
  return out;
}

/** What the first bytes of a journal say about the transaction that owns it. */
export type JournalHeaderState =
  | "empty" // no bytes: TRUNCATE mode's commit (or a journal just created)
  | "zeroed" // the 28 header bytes are all zero: PERSIST mode's commit
  | "unsynced" // magic and nRec still zero, fields set: a synchronous transaction that has not yet written the database
  | "active" // valid magic: a transaction that may have written the database (hot if its owner died)
  | "invalid"; // anything else: not a journal SQLite would roll back

/** Classifies a journal by its first bytes (pass at least 28, or the whole file when shorter). */
export function journalHeaderState(head: Uint8Array): JournalHeaderState {
  if (head.length === 0) return "empty";
  const n = Math.min(head.length, JOURNAL_HEADER_FIELDS_SIZE);
  let zeroPrefix = 0;
  while (zeroPrefix < n && head[zeroPrefix] === 0) zeroPrefix++;
  if (zeroPrefix === n) return "zeroed";
  if (zeroPrefix >= 12) return "unsynced";
  return hasMagicAt(head, 0) ? "active" : "invalid";
}

/** True for the write SQLite makes to commit in PERSIST mode: 28 zero bytes at offset 0. */
export function isJournalHeaderZeroWrite(offset: number, data: Uint8Array): boolean {
  if (offset !== 0 || data.length < JOURNAL_HEADER_FIELDS_SIZE) return false;
  for (let i = 0; i < JOURNAL_HEADER_FIELDS_SIZE; i++) if (data[i] !== 0) return false;
  return true;
}

/**
 * True when SQLite would treat the journal as hot if no connection holds RESERVED on the database:
 * the journal is non-empty, its first byte is non-zero, and the database file is not empty (SQLite
 * deletes a journal beside an empty database without playing it back). The lock check is the
 * caller's; the rollback itself may still find nothing valid to restore (journalRollbackPages).
 */
export function journalLooksHot(journalHead: Uint8Array, dbFileSize: number): boolean {
  return journalHead.length > 0 && journalHead[0] !== 0 && dbFileSize > 0;
}

export interface JournalHeaderFields {
  readonly recordCount: number;
  readonly nonce: number;
  readonly initialPageCount: number;
  readonly sectorSize: number;
  readonly pageSize: number;
}

/** Builds a segment header padded to its sector size. For tests and fault injection. */
export function encodeJournalHeader(fields: JournalHeaderFields): Uint8Array {
  const s = fields.sectorSize;
  if (
    !isValidPageSize(fields.pageSize) ||
    s < MIN_SECTOR_SIZE ||
    s > MAX_SECTOR_SIZE ||
    (s & (s - 1)) !== 0
  ) {
    throw new SqliteFormatError(
      "EJOURNAL",
      `encodeJournalHeader: bad page size ${fields.pageSize} or sector size ${s}`,
    );
  }
  const out = new Uint8Array(s);
  const view = viewOf(out);
  out.set(JOURNAL_MAGIC, 0);
  view.setUint32(8, fields.recordCount >>> 0, false);
  view.setUint32(12, fields.nonce >>> 0, false);
  view.setUint32(16, fields.initialPageCount >>> 0, false);
  view.setUint32(20, s, false);
  view.setUint32(24, fields.pageSize, false);
  return out;
}

/** Builds one record (pgno, page, checksum). */
export function encodeJournalRecord(pgno: number, page: Uint8Array, nonce: number): Uint8Array {
  if (!Number.isInteger(pgno) || pgno < 1 || pgno > 0xffffffff) {
    throw new SqliteFormatError("EJOURNAL", `encodeJournalRecord: bad page number ${pgno}`);
  }
  const out = new Uint8Array(page.length + 8);
  const view = viewOf(out);
  view.setUint32(0, pgno, false);
  out.set(page, 4);
  view.setUint32(4 + page.length, journalChecksum(nonce, page), false);
  return out;
}

/** Builds the super-journal record SQLite appends to a journal of a multi-database commit. */
export function encodeSuperJournalRecord(name: string, pageSize: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  if (nameBytes.length === 0 || nameBytes.length > MAX_SUPER_JOURNAL_NAME || nameBytes.includes(0)) {
    throw new SqliteFormatError(
      "EJOURNAL",
      `encodeSuperJournalRecord: unusable name of ${nameBytes.length} bytes`,
    );
  }
  const out = new Uint8Array(4 + nameBytes.length + 16);
  const view = viewOf(out);
  view.setUint32(0, lockPageNumber(pageSize), false);
  out.set(nameBytes, 4);
  let sum = 0;
  for (const b of nameBytes) sum = (sum + b) >>> 0;
  view.setUint32(4 + nameBytes.length, nameBytes.length, false);
  view.setUint32(8 + nameBytes.length, sum, false);
  out.set(JOURNAL_MAGIC, 12 + nameBytes.length);
  return out;
}
