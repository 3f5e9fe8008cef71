#!/usr/bin/env python3
# Hostile client for test/fuse/hostile.test.ts: from outside the server's process, makes the system calls
# a careless or malicious local process could make against a FUSE mount — offsets at the edge of what
# the kernel lets through, huge ranges, overlong and non-UTF-8 names, odd directory cookies — and prints
# one JSON object mapping each probe to its outcome: {"ok": value} or {"errno": "ENAME"}.
#
# Usage: hostile-client.py MOUNTPOINT

import ctypes
import errno
import json
import os
import sys

mnt = os.fsencode(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
SYS_GETDENTS64 = 217  # x86_64
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
results = {}


def probe(name, fn):
    try:
        results[name] = {"ok": fn()}
    except OSError as e:
        results[name] = {"errno": errno.errorcode.get(e.errno, str(e.errno))}


def p(*parts):
    return os.path.join(mnt, *parts)


def create(path):
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    return True


def fallocate(fd, mode, offset, length):
    if libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return True


def getdents_from(dirfd, cookie):
    """Entries a getdents64 returns after seeking the directory to `cookie` (0 = end of directory)."""
    os.lseek(dirfd, cookie, os.SEEK_SET)
    buf = ctypes.create_string_buffer(65536)
    n = libc.syscall(SYS_GETDENTS64, dirfd, buf, len(buf))
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    names, at = [], 0
    while at < n:
        reclen = int.from_bytes(buf.raw[at + 16 : at + 18], "little")
        names.append(buf.raw[at + 19 : at + reclen].split(b"\0", 1)[0].decode("utf8", "replace"))
        at += reclen
    return names


# Names: 255 bytes is the longest a directory entry holds; longer ones must fail ENAMETOOLONG (from the
# backing file system up to 1024 bytes, from the kernel beyond); non-UTF-8 bytes must not alias.
probe("name_255", lambda: create(p(b"n" * 255)))
probe("name_256", lambda: create(p(b"n" * 256)))
probe("name_1100", lambda: create(p(b"n" * 1100)))
probe("name_not_utf8_create", lambda: create(p(b"bad-\xff")))
probe("name_not_utf8_other_stat", lambda: os.stat(p(b"bad-\xfe")).st_size)
probe("name_not_utf8_mkdir", lambda: os.mkdir(p(b"dir-\xc3")) or True)

# Offsets at and past 2^53 (JS numbers stop being exact) and up to the kernel's 2^63 - 1 limit.
fd = os.open(p(b"data"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"0123456789")
probe("pwrite_at_2^62", lambda: os.pwrite(fd, b"x", 2**62))
probe("pwrite_at_2^53", lambda: os.pwrite(fd, b"x", 2**53))
probe("pwrite_ending_past_2^53", lambda: os.pwrite(fd, b"xy", 2**53 - 1))
probe("pread_at_2^62", lambda: len(os.pread(fd, 16, 2**62)))
probe("pread_at_2^63-4096", lambda: len(os.pread(fd, 16, 2**63 - 4096)))
probe("pread_at_4", lambda: os.pread(fd, 4, 4).decode())
probe("ftruncate_2^62", lambda: os.ftruncate(fd, 2**62) or True)
probe("truncate_2^60", lambda: os.truncate(p(b"data"), 2**60) or True)
probe("lseek_data_2^62", lambda: os.lseek(fd, 2**62, os.SEEK_DATA))
probe("fallocate_at_2^62", lambda: fallocate(fd, 0, 2**62, 4096))
probe("size_after", lambda: os.fstat(fd).st_size)
probe("content_after", lambda: os.pread(fd, 16, 0).decode())
os.close(fd)

# Huge ranges that must not turn into huge amounts of work or disk: zeroing 1 GiB past EOF (a real file
# system records unwritten extents), punching a hole to EOF of a sparse 1 TiB file.
fd = os.open(p(b"sparse"), os.O_RDWR | os.O_CREAT, 0o644)
probe("zero_range_1GiB", lambda: fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 1 << 30))
probe("zero_range_size", lambda: os.fstat(fd).st_size)
probe("zero_range_blocks_kib", lambda: os.fstat(fd).st_blocks // 2)
os.ftruncate(fd, 1 << 40)
os.pwrite(fd, b"head", 0)
probe("punch_to_eof_1TiB", lambda: fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, (1 << 40) - 2))
probe("punch_size", lambda: os.fstat(fd).st_size)
probe("punch_head", lambda: os.pread(fd, 4, 0).hex())
probe("punch_blocks_kib", lambda: os.fstat(fd).st_blocks // 2)
probe("punch_middle_512MiB", lambda: fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 512 << 20))
os.close(fd)

# Directory cookies the server never handed out.
dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
probe("getdents_cookie_0", lambda: sorted(getdents_from(dfd, 0)))
probe("getdents_cookie_2^62", lambda: getdents_from(dfd, 2**62))
probe("getdents_cookie_2^53+1", lambda: getdents_from(dfd, 2**53 + 1))
probe("getdents_cookie_999999", lambda: getdents_from(dfd, 999999))
os.close(dfd)

print(json.dumps(results))
