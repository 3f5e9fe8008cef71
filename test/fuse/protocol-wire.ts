// Builds kernel requests byte by byte and captures the dispatcher's replies, for the protocol tests:
// the same structs the kernel writes (fuse_in_header + body), so the tests need no mount.

import { Dispatcher, type DispatcherOptions } from "../../src/fuse/dispatcher.js";
import type { FuseFileSystem } from "../../src/fuse/file-system.js";

export interface Reply {
  length: number;
  error: number;
  unique: number;
  body: Buffer;
}

/** A request: 40-byte header then `body`. */
export function request(
  opcode: number,
  unique: number,
  nodeId: number,
  body: Buffer = Buffer.alloc(0),
): Buffer {
  const buf = Buffer.alloc(40 + body.length);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt32LE(opcode, 4);
  buf.writeBigUInt64LE(BigInt(unique), 8);
  buf.writeBigUInt64LE(BigInt(nodeId), 16);
  buf.writeUInt32LE(1000, 24); // uid
  buf.writeUInt32LE(1001, 28); // gid
  buf.writeUInt32LE(4242, 32); // pid
  body.copy(buf, 40);
  return buf;
}

/** Little-endian struct builder: u32/u64 fields in order, then optional NUL-terminated names. */
export class Body {
  readonly #parts: Buffer[] = [];
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.#parts.push(b);
    return this;
  }
  u64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.#parts.push(b);
    return this;
  }
  name(s: string): this {
    this.#parts.push(Buffer.from(s + "\0"));
    return this;
  }
  bytes(b: Buffer): this {
    this.#parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

export interface Harness {
  dispatcher: Dispatcher;
  replies: Reply[];
  errors: { err: unknown; opcode: string }[];
  /** Dispatches a request; returns what dispatch returned (a buffer hold or undefined). */
  send(req: Buffer): Promise<unknown> | undefined;
  /** The reply to `unique` (throws if there is none or more than one). */
  replyTo(unique: number): Reply;
}

export const DEFAULT_OPTIONS: Omit<DispatcherOptions, "onError"> = {
  entryTimeoutMs: 1500,
  attrTimeoutMs: 250,
  negativeTimeoutMs: 0,
  maxWrite: 1 << 20,
  posixLocks: false,
  readdirplus: false,
  writebackCache: false,
  maxBackground: 64,
};

export function harness(fs: FuseFileSystem, options: Partial<DispatcherOptions> = {}): Harness {
  const replies: Reply[] = [];
  const errors: { err: unknown; opcode: string }[] = [];
  const dispatcher = new Dispatcher(
    fs,
    {
      send(message, data) {
        const whole = data === undefined ? Buffer.from(message) : Buffer.concat([message, data]);
        replies.push({
          length: whole.readUInt32LE(0),
          error: whole.readInt32LE(4),
          unique: Number(whole.readBigUInt64LE(8)),
          body: whole.subarray(16),
        });
      },
    },
    { ...DEFAULT_OPTIONS, onError: (err, where) => errors.push({ err, opcode: where.opcode }), ...options },
  );
  return {
    dispatcher,
    replies,
    errors,
    send: (req) => dispatcher.dispatch(req, req.length),
    replyTo(unique) {
      const found = replies.filter((r) => r.unique === unique);
      if (found.length !== 1) throw new Error(`${found.length} replies to ${unique}`);
      return found[0];
    },
  };
}

/** Attributes with distinct values in every field, to catch a shifted offset. */
export const ATTR = {
  ino: 0x1_0000_0002,
  size: 5 * 2 ** 30 + 7,
  blocks: 12345,
  atimeMs: 1_700_000_000_125.5,
  mtimeMs: -1500.25,
  ctimeMs: 1_700_000_001_000,
  mode: 0o100644,
  nlink: 3,
  uid: 1000,
  gid: 1001,
  rdev: 7,
  blksize: 4096,
};

/** Decodes struct fuse_attr at `offset` of `b`. */
export function readAttr(b: Buffer, offset: number): Record<string, number> {
  return {
    ino: Number(b.readBigUInt64LE(offset)),
    size: Number(b.readBigUInt64LE(offset + 8)),
    blocks: Number(b.readBigUInt64LE(offset + 16)),
    atime: Number(b.readBigInt64LE(offset + 24)),
    mtime: Number(b.readBigInt64LE(offset + 32)),
    ctime: Number(b.readBigInt64LE(offset + 40)),
    atimensec: b.readUInt32LE(offset + 48),
    mtimensec: b.readUInt32LE(offset + 52),
    ctimensec: b.readUInt32LE(offset + 56),
    mode: b.readUInt32LE(offset + 60),
    nlink: b.readUInt32LE(offset + 64),
    uid: b.readUInt32LE(offset + 68),
    gid: b.readUInt32LE(offset + 72),
    rdev: b.readUInt32LE(offset + 76),
    blksize: b.readUInt32LE(offset + 80),
  };
}
