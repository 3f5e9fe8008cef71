// Errors of the FUSE library, in two kinds:
// - FuseError: what a file-system handler throws to answer a request with an errno. Its `code` is
//   the errno name ("ENOENT"), `errno` the positive Linux number. Handlers may equally let Node's own
//   fs errors (SystemError, code "ENOENT") or any error carrying an errno name in `code` or `errno`
//   propagate: `errnoOf` maps them. Anything else is a bug in the handler: it is answered EIO and
//   reported through the session's `onError`, never swallowed.
// - FuseSessionError: the library itself failed (opening /dev/fuse, mount, unmount, a malformed
//   request, a notification). `code` names what failed; the message says where and what to do.

import { constants } from "node:os";

const ERRNO_BY_NAME: Readonly<Record<string, number>> = constants.errno;

/** An errno name that Linux knows ("ENOENT", "EINTR", …). */
export type ErrnoName = keyof typeof constants.errno;

/** Answers a FUSE request with an errno. Throw it from a handler (or reject its promise with it). */
export class FuseError extends Error {
  override readonly name = "FuseError";
  /** The errno name, e.g. "ENOENT". */
  readonly code: ErrnoName;
  /** The positive Linux errno number, e.g. 2. */
  readonly errno: number;

  constructor(code: ErrnoName, detail?: string, options?: { cause?: unknown }) {
    const errno = ERRNO_BY_NAME[code];
    if (errno === undefined) throw new TypeError(`FuseError: unknown errno name ${String(code)}`);
    super(detail === undefined ? code : `${code}: ${detail}`, options);
    this.code = code;
    this.errno = errno;
  }
}

/** The positive errno number of a Linux errno name, or undefined. */
export function errnoNumber(name: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(ERRNO_BY_NAME, name) ? ERRNO_BY_NAME[name] : undefined;
}

/**
 * The errno (positive) to answer with for a thrown value, or undefined when the value names none —
 * then the caller answers EIO and reports the error as a handler bug. Recognises FuseError, Node
 * SystemErrors (`code: "ENOENT"`, `errno: -2`) and library errors that carry an errno name in
 * `errno` (such as LockTableError, `errno: "EINTR"`).
 */
export function errnoOf(err: unknown): number | undefined {
  if (err instanceof FuseError) return err.errno;
  if (typeof err !== "object" || err === null) return undefined;
  const { code, errno } = err as { code?: unknown; errno?: unknown };
  if (typeof errno === "string") {
    const n = errnoNumber(errno);
    if (n !== undefined) return n;
  }
  if (typeof code === "string") {
    const n = errnoNumber(code);
    if (n !== undefined) return n;
  }
  if (typeof errno === "number" && Number.isInteger(errno) && -errno >= 1 && -errno <= MAX_REPLY_ERRNO) {
    return -errno;
  }
  return undefined;
}

/**
 * Largest errno a reply may carry: the kernel refuses a reply whose error is ≤ −512 (ERESTARTSYS and
 * beyond) with EINVAL and leaves the request unanswered, so the caller would hang. libuv's own codes
 * (UV_EOF = −4095, …) are in that range and answer EIO instead.
 */
export const MAX_REPLY_ERRNO = 511;

export type FuseSessionErrorCode =
  | "EFUSEDEVICE" // /dev/fuse could not be opened
  | "EFUSEMOUNT" // the mount command failed, or the mount point is unusable
  | "EFUSEUNMOUNT" // umount and umount -l both failed
  | "EFUSEPROTOCOL" // the kernel sent something this library cannot parse or does not support
  | "EFUSEREADER" // the device reader could not be set up on this Node.js
  | "EFUSECLOSED" // the session has ended (a notification or reply after unmount)
  | "EFUSENOTIFY"; // the kernel refused a notification

export class FuseSessionError extends Error {
  override readonly name = "FuseSessionError";
  readonly code: FuseSessionErrorCode;
  /** The mount point the session serves, when known. */
  readonly mountpoint: string | undefined;

  constructor(
    code: FuseSessionErrorCode,
    detail: string,
    options: { mountpoint?: string; cause?: unknown } = {},
  ) {
    const where = options.mountpoint === undefined ? "" : ` (mount point ${options.mountpoint})`;
    super(
      `fuse: ${detail}${where} [${code}]`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.mountpoint = options.mountpoint;
  }
}
