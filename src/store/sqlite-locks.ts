// The byte offsets SQLite's unix VFS locks with POSIX byte-range locks (fcntl F_SETLK), named.
//
// Database file (rollback and WAL mode): the lock bytes sit at 1 GiB, past the end of most databases.
// A SHARED lock is a read lock on one byte of the SHARED range (unix: the whole range), RESERVED a
// write lock on RESERVED_BYTE, PENDING a write lock on PENDING_BYTE, EXCLUSIVE a write lock on the
// whole SHARED range. The page that holds PENDING_BYTE (the "lock page") is never used for data.
//
// Wal-index (-shm) file: eight lock bytes from 120 (WRITE, CKPT, RECOVER, READ0..4), then DMS at 128
// ("dead man switch": every connection holds it shared; the first to get it exclusive resets the shm).

/** Database file: first byte of the lock region (1 GiB). */
export const PENDING_BYTE = 0x40000000;
/** Database file: the RESERVED lock byte. */
export const RESERVED_BYTE = PENDING_BYTE + 1;
/** Database file: first byte of the SHARED range. */
export const SHARED_FIRST = PENDING_BYTE + 2;
/** Database file: length of the SHARED range. */
export const SHARED_SIZE = 510;
/** Database file: one past the last lock byte (SHARED_FIRST + SHARED_SIZE). */
export const LOCK_REGION_END = SHARED_FIRST + SHARED_SIZE;

/** -shm: offset of the first lock byte (after two WalIndexHdr copies and WalCkptInfo's first 24 bytes). */
export const SHM_LOCK_FIRST = 120;
/** -shm: the writer lock; held exclusively for the whole of a WAL write transaction. */
export const SHM_WRITE_LOCK = 120;
/** -shm: the checkpointer lock. */
export const SHM_CKPT_LOCK = 121;
/** -shm: held exclusively while a connection rebuilds the wal-index from the WAL. */
export const SHM_RECOVER_LOCK = 122;
/** -shm: READ0 (reader using the database file only, no WAL frames). */
export const SHM_READ_LOCK_FIRST = 123;
/** -shm: number of reader slots (READ0..READ4). */
export const SHM_READ_LOCK_COUNT = 5;
/** -shm: the dead-man-switch byte. */
export const SHM_DMS_LOCK = 128;
/** -shm: number of lock bytes before DMS (SQLITE_SHM_NLOCK). */
export const SHM_LOCK_COUNT = 8;

/** -shm: the byte of reader slot `i` (0..4). */
export function shmReadLock(i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= SHM_READ_LOCK_COUNT) {
    throw new RangeError(`shmReadLock: reader slot ${i} is not in 0..${SHM_READ_LOCK_COUNT - 1}`);
  }
  return SHM_READ_LOCK_FIRST + i;
}

/** The page number holding PENDING_BYTE for `pageSize`: never written with data, absent from LTX files. */
export function lockPageNumber(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}

/** A readable name of a -shm lock byte (for logs and errors): "WRITE", "READ3", "DMS", or "byte N". */
export function shmLockName(offset: number): string {
  switch (offset) {
    case SHM_WRITE_LOCK:
      return "WRITE";
    case SHM_CKPT_LOCK:
      return "CKPT";
    case SHM_RECOVER_LOCK:
      return "RECOVER";
    case SHM_DMS_LOCK:
      return "DMS";
  }
  if (offset >= SHM_READ_LOCK_FIRST && offset < SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT) {
    return `READ${offset - SHM_READ_LOCK_FIRST}`;
  }
  return `byte ${offset}`;
}

/** Which database-file locks a byte range [start, start+length) touches (length 0 = to end of file). */
export interface DatabaseLockBytes {
  readonly pending: boolean;
  readonly reserved: boolean;
  /** True when the range overlaps the SHARED range at all. */
  readonly shared: boolean;
  /** True when the range covers the whole SHARED range (what EXCLUSIVE locks). */
  readonly sharedAll: boolean;
}

/** Classifies a POSIX lock range on the database file by the SQLite lock bytes it covers. */
export function databaseLockBytes(start: number, length: number): DatabaseLockBytes {
  const end = length === 0 ? Number.POSITIVE_INFINITY : start + length;
  const covers = (byte: number): boolean => start <= byte && byte < end;
  return {
    pending: covers(PENDING_BYTE),
    reserved: covers(RESERVED_BYTE),
    shared: start < LOCK_REGION_END && end > SHARED_FIRST,
    sharedAll: start <= SHARED_FIRST && end >= LOCK_REGION_END,
  };
}
