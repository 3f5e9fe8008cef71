// Turns one request read from /dev/fuse into a call of the file system's handler and its result into
// the reply. It does no I/O of its own: replies go to a ReplyChannel (the device in a session, an
// array in the protocol tests), so every byte of the protocol can be tested without a mount.
//
// Contract with the reader: `dispatch(buf, length)` decodes `buf` synchronously. It returns undefined
// when it no longer needs `buf`, or a promise while a handler still holds a view of it (a WRITE whose
// handler returned a promise gets its data without a copy); the reader must not reuse `buf` until
// that promise settles. A synchronous handler's reply is written before `dispatch` returns.

import { FuseError, FuseSessionError, errnoOf } from "./errors.js";
import type { ConnectionInfo, FuseFileSystem, MaybePromise } from "./file-system.js";
import { DirectoryListing, DirectoryPlusListing } from "./directory-listing.js";
import { type InitWishes, negotiateInit } from "./init-negotiation.js";
import { Context, InterruptRegistry } from "./interrupt-registry.js";
import { FSYNC_FDATASYNC, GETATTR_FH, OPCODE_NAMES, Opcode, Size } from "./kernel-abi.js";
import {
  DEFAULT_STATFS,
  type Encoder,
  type ReplyChannel,
  type ReplyTimeouts,
  ReplyWriter,
  encodeAttr,
  encodeCreate,
  encodeEmpty,
  encodeEntry,
  encodeLk,
  encodeLookup,
  encodeLseek,
  encodeOpen,
  encodeStatfs,
  encodeWrite,
} from "./reply-writer.js";
import {
  BODY,
  MAX_FILE_OFFSET,
  type RequestHeader,
  decodeHeader,
  decodeInit,
  decodeIo,
  decodeLock,
  decodeRelease,
  decodeSetattr,
  isCacheWrite,
  protocolError,
  requireBody,
  requireFileRange,
} from "./request-decoder.js";
import { readName, readU64 } from "./wire-format.js";

export type { ReplyChannel } from "./reply-writer.js";

export interface DispatcherOptions extends InitWishes, ReplyTimeouts {
  /** A handler failed with an error that names no errno (answered EIO), or a request was malformed. */
  onError(err: unknown, where: { opcode: string; unique: number }): void;
  /** INIT was answered. */
  onInit?(connection: ConnectionInfo): void;
  /** INIT was refused (an unsupported kernel, or the file system's `init` failed). */
  onInitFailed?(err: unknown): void;
  /** DESTROY was answered: the session must end. */
  onDestroy?(): void;
}

const ERR_ENOSYS = new FuseError("ENOSYS").errno;
const ERR_EIO = new FuseError("EIO").errno;
const ERR_EINVAL = new FuseError("EINVAL").errno;
const ERR_EPROTO = new FuseError("EPROTO").errno;
const ERR_ENXIO = new FuseError("ENXIO").errno;
const NO_DATA = new Uint8Array(0);
const encodeNoData: Encoder<Uint8Array> = (w, unique, data) => w.data(unique, data, 0);
/** READLINK's answer: the target's bytes, no terminating NUL (the kernel adds it). */
const encodeLinkTarget: Encoder<string> = (w, unique, target) => {
  if (typeof target !== "string" || target === "")
    throw new TypeError("readlink must return a non-empty string");
  const bytes = Buffer.from(target);
  w.data(unique, bytes, bytes.length);
};

function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

export class Dispatcher {
  readonly #fs: FuseFileSystem;
  readonly #reply: ReplyWriter;
  readonly #opts: DispatcherOptions;
  readonly #interrupts = new InterruptRegistry();
  #connection: ConnectionInfo | undefined;
  #destroyed = false;

  constructor(fs: FuseFileSystem, channel: ReplyChannel, options: DispatcherOptions) {
    this.#fs = fs;
    this.#reply = new ReplyWriter(channel, options);
    this.#opts = options;
  }

  /** What INIT negotiated; undefined before INIT. */
  get connection(): ConnectionInfo | undefined {
    return this.#connection;
  }

  /** Requests whose handler promise has not settled yet. */
  get inFlightCount(): number {
    return this.#interrupts.inFlightCount;
  }

  /** Aborts the signal of every request in flight (the session ends). */
  interruptAll(): void {
    this.#interrupts.interruptAll();
  }

  dispatch(buf: Buffer, length: number): Promise<unknown> | undefined {
    let h: RequestHeader;
    try {
      h = decodeHeader(buf, length);
    } catch (err) {
      // Without a trustworthy header there is no request id to answer.
      this.#opts.onError(err, { opcode: "?", unique: 0 });
      return undefined;
    }
    if (h.opcode === Opcode.INTERRUPT) {
      if (h.length >= BODY + Size.INTERRUPT_IN) this.#interrupts.interrupt(readU64(buf, BODY));
      return undefined; // never answered
    }
    const ctx = new Context(h.unique, h.uid, h.gid, h.pid);
    this.#interrupts.admit(ctx);
    try {
      return this.#route(buf, h, ctx);
    } catch (err) {
      this.#fail(h.opcode, h.unique, err);
      return undefined;
    }
  }

  #route(buf: Buffer, h: RequestHeader, ctx: Context): Promise<unknown> | undefined {
    const fs = this.#fs;
    const end = h.length;
    const id = h.nodeId;
    switch (h.opcode) {
      case Opcode.LOOKUP: {
        if (!fs.lookup) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.lookup(ctx, id, this.#name(buf, BODY, end)), encodeLookup);
      }
      case Opcode.FORGET:
        requireBody(h, Size.FORGET_IN, "FORGET");
        this.#forget(id, readU64(buf, BODY));
        return undefined;
      case Opcode.BATCH_FORGET: {
        requireBody(h, Size.BATCH_FORGET_IN, "BATCH_FORGET");
        const count = buf.readUInt32LE(BODY);
        requireBody(h, Size.BATCH_FORGET_IN + count * Size.FORGET_ONE, "BATCH_FORGET");
        for (let i = 0, at = BODY + Size.BATCH_FORGET_IN; i < count; i++, at += Size.FORGET_ONE) {
          this.#forget(readU64(buf, at), readU64(buf, at + 8));
        }
        return undefined;
      }
      case Opcode.GETATTR: {
        if (!fs.getattr) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.GETATTR_IN, "GETATTR");
        const fh = buf.readUInt32LE(BODY) & GETATTR_FH ? readU64(buf, BODY + 8) : undefined;
        return this.#finish(h, ctx, fs.getattr(ctx, id, fh), encodeAttr);
      }
      case Opcode.SETATTR:
        if (!fs.setattr) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.setattr(ctx, id, decodeSetattr(buf, h)), encodeAttr);
      case Opcode.READLINK:
        if (!fs.readlink) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.readlink(ctx, id), encodeLinkTarget);
      case Opcode.ACCESS:
        if (!fs.access) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.ACCESS_IN, "ACCESS");
        return this.#finish(h, ctx, fs.access(ctx, id, buf.readUInt32LE(BODY)), encodeEmpty);
      case Opcode.MKNOD: {
        if (!fs.mknod) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.MKNOD_IN, "MKNOD");
        const name = this.#name(buf, BODY + Size.MKNOD_IN, end);
        const [mode, rdev, umask] = [
          buf.readUInt32LE(BODY),
          buf.readUInt32LE(BODY + 4),
          buf.readUInt32LE(BODY + 8),
        ];
        return this.#finish(h, ctx, fs.mknod(ctx, id, name, mode, rdev, umask), encodeEntry);
      }
      case Opcode.MKDIR: {
        if (!fs.mkdir) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.MKDIR_IN, "MKDIR");
        const name = this.#name(buf, BODY + Size.MKDIR_IN, end);
        const result = fs.mkdir(ctx, id, name, buf.readUInt32LE(BODY), buf.readUInt32LE(BODY + 4));
        return this.#finish(h, ctx, result, encodeEntry);
      }
      case Opcode.UNLINK:
        if (!fs.unlink) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.unlink(ctx, id, this.#name(buf, BODY, end)), encodeEmpty);
      case Opcode.RMDIR:
        if (!fs.rmdir) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.rmdir(ctx, id, this.#name(buf, BODY, end)), encodeEmpty);
      case Opcode.RENAME:
      case Opcode.RENAME2: {
        if (!fs.rename) return this.#errno(h.unique, ERR_ENOSYS);
        const two = h.opcode === Opcode.RENAME2;
        const size = two ? Size.RENAME2_IN : Size.RENAME_IN;
        requireBody(h, size, "RENAME");
        const from = readName(buf, BODY + size, end);
        const to = from === null ? null : readName(buf, from.next, end);
        if (from === null || to === null)
          throw protocolError(`RENAME (unique ${h.unique}) without two names`);
        const flags = two ? buf.readUInt32LE(BODY + 8) : 0;
        const result = fs.rename(ctx, id, from.name, readU64(buf, BODY), to.name, flags);
        return this.#finish(h, ctx, result, encodeEmpty);
      }
      case Opcode.OPEN:
      case Opcode.OPENDIR: {
        requireBody(h, Size.OPEN_IN, "OPEN");
        const flags = buf.readUInt32LE(BODY);
        if (h.opcode === Opcode.OPEN) {
          if (!fs.open) return this.#errno(h.unique, ERR_ENOSYS);
          return this.#finish(h, ctx, fs.open(ctx, id, flags), encodeOpen);
        }
        if (!fs.opendir) return this.#finish(h, ctx, { fh: 0 }, encodeOpen);
        return this.#finish(h, ctx, fs.opendir(ctx, id, flags), encodeOpen);
      }
      case Opcode.CREATE: {
        if (!fs.create) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.CREATE_IN, "CREATE");
        const name = this.#name(buf, BODY + Size.CREATE_IN, end);
        const [flags, mode, umask] = [
          buf.readUInt32LE(BODY),
          buf.readUInt32LE(BODY + 4),
          buf.readUInt32LE(BODY + 8),
        ];
        return this.#finish(h, ctx, fs.create(ctx, id, name, mode, flags, umask), encodeCreate);
      }
      case Opcode.READ: {
        if (!fs.read) return this.#errno(h.unique, ERR_ENOSYS);
        const io = decodeIo(buf, h, false);
        // Past the largest offset a number holds exactly no file has data: end of file.
        if (io.offset > MAX_FILE_OFFSET) return this.#finish(h, ctx, NO_DATA, encodeNoData);
        const result = fs.read(ctx, id, io.fh, io.offset, io.size, {
          flags: io.flags,
          lockOwner: io.lockOwner,
        });
        return this.#finish(h, ctx, result, (w, unique, data) => w.data(unique, data, io.size));
      }
      case Opcode.WRITE: {
        if (!fs.write) return this.#errno(h.unique, ERR_ENOSYS);
        const io = decodeIo(buf, h, true);
        const data = buf.subarray(BODY + Size.WRITE_IN, BODY + Size.WRITE_IN + io.size);
        const info = { flags: io.flags, lockOwner: io.lockOwner, fromCache: isCacheWrite(io) };
        return this.#finish(h, ctx, fs.write(ctx, id, io.fh, io.offset, data, info), encodeWrite);
      }
      case Opcode.STATFS:
        if (!fs.statfs) return this.#finish(h, ctx, DEFAULT_STATFS, encodeStatfs);
        return this.#finish(h, ctx, fs.statfs(ctx, id), encodeStatfs);
      case Opcode.FLUSH:
        if (!fs.flush) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.FLUSH_IN, "FLUSH");
        return this.#finish(
          h,
          ctx,
          fs.flush(ctx, id, readU64(buf, BODY), buf.readBigUInt64LE(BODY + 16)),
          encodeEmpty,
        );
      case Opcode.RELEASE: {
        const r = decodeRelease(buf, h);
        if (!fs.release) return this.#errno(h.unique, 0);
        const info = { flags: r.flags, lockOwner: r.lockOwner, flush: r.flush };
        return this.#finish(h, ctx, fs.release(ctx, id, r.fh, info), encodeEmpty);
      }
      case Opcode.RELEASEDIR: {
        const r = decodeRelease(buf, h);
        if (!fs.releasedir) return this.#errno(h.unique, 0);
        return this.#finish(h, ctx, fs.releasedir(ctx, id, r.fh, r.flags), encodeEmpty);
      }
      case Opcode.FSYNC:
      case Opcode.FSYNCDIR: {
        const dir = h.opcode === Opcode.FSYNCDIR;
        if (dir ? fs.fsyncdir === undefined : fs.fsync === undefined)
          return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.FSYNC_IN, "FSYNC");
        const fh = readU64(buf, BODY);
        const datasync = (buf.readUInt32LE(BODY + 8) & FSYNC_FDATASYNC) !== 0;
        const result = dir ? fs.fsyncdir!(ctx, id, fh, datasync) : fs.fsync!(ctx, id, fh, datasync);
        return this.#finish(h, ctx, result, encodeEmpty);
      }
      case Opcode.READDIR:
      case Opcode.READDIRPLUS:
        return this.#readdir(buf, h, ctx);
      case Opcode.GETLK: {
        if (!fs.getlk) return this.#errno(h.unique, ERR_ENOSYS);
        return this.#finish(h, ctx, fs.getlk(ctx, id, decodeLock(buf, h, false)), encodeLk);
      }
      case Opcode.SETLK:
      case Opcode.SETLKW: {
        if (!fs.setlk) return this.#errno(h.unique, ERR_ENOSYS);
        // One object per request, decoded straight into what the handler takes (a lock round trip
        // is the commonest request of SQLite in WAL mode).
        const result = fs.setlk(ctx, id, decodeLock(buf, h, h.opcode === Opcode.SETLKW));
        return this.#finish(h, ctx, result, encodeEmpty);
      }
      case Opcode.FALLOCATE: {
        if (!fs.fallocate) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.FALLOCATE_IN, "FALLOCATE");
        const [fh, offset, length] = [readU64(buf, BODY), readU64(buf, BODY + 8), readU64(buf, BODY + 16)];
        requireFileRange(offset, length, "FALLOCATE");
        const result = fs.fallocate(ctx, id, fh, offset, length, buf.readUInt32LE(BODY + 24));
        return this.#finish(h, ctx, result, encodeEmpty);
      }
      case Opcode.LSEEK: {
        if (!fs.lseek) return this.#errno(h.unique, ERR_ENOSYS);
        requireBody(h, Size.LSEEK_IN, "LSEEK");
        const offset = readU64(buf, BODY + 8);
        // SEEK_DATA/SEEK_HOLE at or past the end of every file this library can serve.
        if (offset > MAX_FILE_OFFSET) return this.#errno(h.unique, ERR_ENXIO);
        const result = fs.lseek(ctx, id, readU64(buf, BODY), offset, buf.readUInt32LE(BODY + 16));
        return this.#finish(h, ctx, result, encodeLseek);
      }
      case Opcode.INIT:
        return this.#init(buf, h, ctx);
      case Opcode.DESTROY:
        return this.#destroy(h, ctx);
      default:
        return this.#errno(h.unique, ERR_ENOSYS);
    }
  }

  #name(buf: Buffer, offset: number, end: number): string {
    const n = readName(buf, offset, end);
    if (n === null) throw protocolError(`request without a NUL-terminated name at byte ${offset}`);
    return n.name;
  }

  #forget(nodeId: number, nlookup: number): void {
    try {
      this.#fs.forget?.(nodeId, nlookup);
    } catch (err) {
      this.#opts.onError(err, { opcode: "FORGET", unique: 0 });
    }
  }

  #readdir(buf: Buffer, h: RequestHeader, ctx: Context): Promise<unknown> | undefined {
    const plus = h.opcode === Opcode.READDIRPLUS;
    const io = decodeIo(buf, h, false);
    // Cookies are numbers the file system chose, so one past 2^53 was never handed out: the caller
    // seeked the directory somewhere arbitrary. Nothing there (an empty reply is end of directory).
    if (io.offset > MAX_FILE_OFFSET) return this.#finish(h, ctx, NO_DATA, encodeNoData);
    const { entryTimeoutMs, attrTimeoutMs } = this.#opts;
    if (plus) {
      if (!this.#fs.readdirplus) return this.#errno(h.unique, ERR_ENOSYS);
      const out = new DirectoryPlusListing(io.size, entryTimeoutMs, attrTimeoutMs);
      const result = this.#fs.readdirplus(ctx, h.nodeId, io.fh, io.offset, out);
      return this.#finish(h, ctx, result, (w, unique) => w.message(unique, out.message()));
    }
    if (!this.#fs.readdir) return this.#errno(h.unique, ERR_ENOSYS);
    const out = new DirectoryListing(io.size);
    const result = this.#fs.readdir(ctx, h.nodeId, io.fh, io.offset, out);
    return this.#finish(h, ctx, result, (w, unique) => w.message(unique, out.message()));
  }

  #init(buf: Buffer, h: RequestHeader, ctx: Context): Promise<unknown> | undefined {
    const req = decodeInit(buf, h);
    let agreement;
    try {
      agreement = negotiateInit(req, this.#opts);
    } catch (err) {
      this.#opts.onError(err, { opcode: "INIT", unique: h.unique });
      this.#opts.onInitFailed?.(err);
      return this.#errno(h.unique, ERR_EPROTO);
    }
    const { connection, encode } = agreement;
    const encodeInit: Encoder<void> = (w, unique) => {
      this.#connection = connection;
      w.encoded(unique, encode);
      this.#opts.onInit?.(connection);
    };
    let result: MaybePromise<void>;
    try {
      result = this.#fs.init ? this.#fs.init(connection) : undefined;
    } catch (err) {
      result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (isPromise(result)) {
      result = result.catch((err: unknown) => {
        this.#opts.onInitFailed?.(err);
        throw err;
      });
    }
    return this.#finish(h, ctx, result, encodeInit);
  }

  #destroy(h: RequestHeader, ctx: Context): Promise<unknown> | undefined {
    const encodeDestroy: Encoder<void> = (w, unique) => {
      w.empty(unique);
      this.#opts.onDestroy?.();
    };
    return this.#finish(h, ctx, this.destroyFileSystem(), encodeDestroy);
  }

  /** Calls the file system's `destroy` once, if INIT happened (DESTROY, or the session ending without one). */
  destroyFileSystem(): MaybePromise<void> {
    if (this.#destroyed || this.#connection === undefined) return undefined;
    this.#destroyed = true;
    return this.#fs.destroy?.();
  }

  /** Replies now, or when the handler's promise settles (tracking it for INTERRUPT meanwhile). */
  #finish<T>(
    h: RequestHeader,
    ctx: Context,
    result: MaybePromise<T>,
    encode: Encoder<T>,
  ): Promise<unknown> | undefined {
    if (!isPromise(result)) {
      this.#encode(h.opcode, h.unique, result, encode);
      return undefined;
    }
    this.#interrupts.begin(ctx);
    return result.then(
      (value) => {
        this.#interrupts.end(ctx);
        this.#encode(h.opcode, h.unique, value, encode);
      },
      (err: unknown) => {
        this.#interrupts.end(ctx);
        this.#fail(h.opcode, h.unique, err);
      },
    );
  }

  #encode<T>(opcode: number, unique: number, value: T, encode: Encoder<T>): void {
    try {
      encode(this.#reply, unique, value);
    } catch (err) {
      // A handler returned something that cannot be encoded (a missing attr, a bad name): a bug in it.
      this.#opts.onError(err, { opcode: OPCODE_NAMES.get(opcode) ?? String(opcode), unique });
      this.#errno(unique, ERR_EIO);
    }
  }

  #fail(opcode: number, unique: number, err: unknown): void {
    // A malformed request answers EINVAL; any other library error a handler let through, EIO.
    const malformed = err instanceof FuseSessionError && err.code === "EFUSEPROTOCOL";
    const errno = malformed ? ERR_EINVAL : err instanceof FuseSessionError ? undefined : errnoOf(err);
    if (errno === undefined || malformed) {
      this.#opts.onError(err, { opcode: OPCODE_NAMES.get(opcode) ?? String(opcode), unique });
    }
    this.#errno(unique, errno ?? ERR_EIO);
  }

  /** An error reply (or, with 0, an empty success). */
  #errno(unique: number, errno: number): undefined {
    this.#reply.error(unique, errno);
    return undefined;
  }
}
