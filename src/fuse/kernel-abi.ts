// The FUSE kernel protocol as far as this library speaks it: opcodes, flag bits and struct sizes from
// <linux/fuse.h> (protocol 7.45 offered by the kernel here; the layouts below are those of 7.38 plus
// the later init_out fields). Every offset used by the decoder and encoder is derived from these
// sizes, and each size is the `sizeof` of the C struct, so a mismatch shows up as a wrong length
// check rather than as silently shifted fields.

/** Protocol major version; a kernel offering another major is refused. */
export const FUSE_KERNEL_VERSION = 7;
/** Highest minor version this library knows; the session uses min(kernel, this). */
export const FUSE_KERNEL_MINOR_VERSION = 45;
/** Node id of the mount's root directory. */
export const FUSE_ROOT_ID = 1;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;

/** Opcode number → name, for logs and error messages. */
export const OPCODE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Opcode).map(([name, n]) => [n, name]),
);

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags, bits 0–31). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  FLOCK_LOCKS: 1 << 10,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  EXPLICIT_INVAL_DATA: 1 << 25,
  INIT_EXT: 1 << 30,
} as const;

/** INIT flags of the second word (fuse_init_*.flags2: bit N here is bit 32+N of the 64-bit set). */
export const InitFlag2 = {
  HAS_EXPIRE_ONLY: 1 << (35 - 32),
  DIRECT_IO_ALLOW_MMAP: 1 << (36 - 32),
} as const;

/** fuse_open_out.open_flags. */
export const OpenFlag = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
} as const;

/** fuse_setattr_in.valid. */
export const SetattrValid = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

export const GETATTR_FH = 1 << 0;
export const RELEASE_FLUSH = 1 << 0;
export const RELEASE_FLOCK_UNLOCK = 1 << 1;
export const LK_FLOCK = 1 << 0;
export const WRITE_CACHE = 1 << 0;
export const WRITE_LOCKOWNER = 1 << 1;
export const WRITE_KILL_SUIDGID = 1 << 2;
export const READ_LOCKOWNER = 1 << 1;
export const FSYNC_FDATASYNC = 1 << 0;

/** fuse_notify_code: the `error` field of an unsolicited message (unique = 0). */
export const NotifyCode = {
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
  DELETE: 6,
} as const;
/** fuse_notify_inval_entry_out.flags: only expire the dentry, do not drop it. */
export const EXPIRE_ONLY = 1 << 0;

/** Set in an INTERRUPT request's own `unique` (the interrupted request's id is in its body). */
export const INT_REQ_BIT = 1;

/** Largest file offset (2^63 − 1): the end of a lock that runs to end of file. */
export const OFFSET_MAX = 0x7fff_ffff_ffff_ffffn;

/** struct sizes (sizeof in C). */
export const Size = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  ATTR: 88,
  ENTRY_OUT: 128,
  ATTR_OUT: 104,
  OPEN_OUT: 16,
  WRITE_OUT: 8,
  STATFS_OUT: 80,
  LK_OUT: 24,
  LSEEK_OUT: 8,
  INIT_IN_MIN: 16, // major, minor, max_readahead, flags (pre-7.36 kernels stop here)
  INIT_IN: 64,
  INIT_OUT: 64,
  DIRENT_HEADER: 24,
  FORGET_ONE: 16,
  NOTIFY_INVAL_INODE: 24,
  NOTIFY_INVAL_ENTRY: 16,
  // Request bodies
  FORGET_IN: 8,
  BATCH_FORGET_IN: 8,
  GETATTR_IN: 16,
  SETATTR_IN: 88,
  MKNOD_IN: 16,
  MKDIR_IN: 8,
  RENAME_IN: 8,
  RENAME2_IN: 16,
  OPEN_IN: 8,
  CREATE_IN: 16,
  RELEASE_IN: 24,
  FLUSH_IN: 24,
  READ_IN: 40,
  WRITE_IN: 40,
  FSYNC_IN: 16,
  LK_IN: 48,
  ACCESS_IN: 8,
  INTERRUPT_IN: 8,
  FALLOCATE_IN: 32,
  LSEEK_IN: 24,
} as const;

/** Linux file type bits and directory entry types (d_type). */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;

/** d_type of a directory entry from a file mode: (mode & S_IFMT) >> 12, as the kernel's IFTODT. */
export function direntTypeOfMode(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

/** Linux lock types as carried in fuse_file_lock.type. */
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
