// Lock offsets: the constants against the layout they are derived from.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  LOCK_REGION_END,
  PENDING_BYTE,
  RESERVED_BYTE,
  SHARED_FIRST,
  SHARED_SIZE,
  SHM_CKPT_LOCK,
  SHM_DMS_LOCK,
  SHM_LOCK_COUNT,
  SHM_LOCK_FIRST,
  SHM_READ_LOCK_COUNT,
  SHM_RECOVER_LOCK,
  SHM_WRITE_LOCK,
  databaseLockBytes,
  lockPageNumber,
  shmLockName,
  shmReadLock,
} from "../../src/store/sqlite-locks.js";
import { SHM_HEADER_SIZE, WAL_CKPT_INFO_OFFSET, WAL_INDEX_HEADER_SIZE } from "../../src/store/shm-format.js";

describe("SQLite lock offsets", () => {
  test("database file: PENDING, RESERVED, SHARED at 1 GiB", () => {
    assert.deepEqual(
      [PENDING_BYTE, RESERVED_BYTE, SHARED_FIRST, SHARED_SIZE, LOCK_REGION_END],
      [0x40000000, 0x40000001, 0x40000002, 510, 0x40000200],
    );
    assert.deepEqual(databaseLockBytes(PENDING_BYTE, 1), {
      pending: true,
      reserved: false,
      shared: false,
      sharedAll: false,
    });
    assert.deepEqual(databaseLockBytes(RESERVED_BYTE, 1), {
      pending: false,
      reserved: true,
      shared: false,
      sharedAll: false,
    });
    assert.deepEqual(databaseLockBytes(SHARED_FIRST, SHARED_SIZE), {
      pending: false,
      reserved: false,
      shared: true,
      sharedAll: true,
    });
    assert.deepEqual(databaseLockBytes(SHARED_FIRST + 100, 1), {
      pending: false,
      reserved: false,
      shared: true,
      sharedAll: false,
    });
    assert.deepEqual(databaseLockBytes(0, 0), {
      pending: true,
      reserved: true,
      shared: true,
      sharedAll: true,
    });
    assert.deepEqual(databaseLockBytes(0, PENDING_BYTE), {
      pending: false,
      reserved: false,
      shared: false,
      sharedAll: false,
    });
  });

  test("-shm: the lock bytes follow the two header copies and WalCkptInfo's counters", () => {
    assert.equal(SHM_LOCK_FIRST, 2 * WAL_INDEX_HEADER_SIZE + 24);
    assert.equal(WAL_CKPT_INFO_OFFSET + 24, SHM_LOCK_FIRST);
    assert.deepEqual(
      [SHM_WRITE_LOCK, SHM_CKPT_LOCK, SHM_RECOVER_LOCK, shmReadLock(0), shmReadLock(4), SHM_DMS_LOCK],
      [120, 121, 122, 123, 127, 128],
    );
    assert.equal(SHM_LOCK_FIRST + SHM_LOCK_COUNT, SHM_DMS_LOCK);
    assert.equal(SHM_READ_LOCK_COUNT, 5);
    assert.ok(SHM_DMS_LOCK < SHM_HEADER_SIZE);
    assert.deepEqual([120, 121, 122, 123, 125, 127, 128, 129].map(shmLockName), [
      "WRITE",
      "CKPT",
      "RECOVER",
      "READ0",
      "READ2",
      "READ4",
      "DMS",
      "byte 129",
    ]);
    assert.throws(() => shmReadLock(5), RangeError);
  });

  test("the lock page: the page holding PENDING_BYTE", () => {
    assert.equal(lockPageNumber(4096), 262145);
    assert.equal(lockPageNumber(512), 2097153);
    assert.equal(lockPageNumber(65536), 16385);
    for (let size = 512; size <= 65536; size *= 2) {
      const pgno = lockPageNumber(size);
      assert.ok((pgno - 1) * size <= PENDING_BYTE && PENDING_BYTE < pgno * size, `page size ${size}`);
    }
  });
});
