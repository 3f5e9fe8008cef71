// Writes replies to the kernel: one method per reply shape, each encoding into a scratch buffer and
// handing the whole message to the ReplyChannel at once. The channel's `send` is synchronous, so one
// scratch buffer serves every fixed-size reply; READ data and directory listings go out without a copy
// (the data as a second iovec, listings built with room for the header).

import type { AttrReply, CreateReply, Entry, FileLock, OpenReply, StatfsReply } from "./file-system.js";
import { Size } from "./kernel-abi.js";
import {
  encodeAttrOut,
  encodeEntryOut,
  encodeLkOut,
  encodeNegativeEntryOut,
  encodeOpenOut,
  encodeOutHeader,
  encodeStatfsOut,
} from "./reply-encoder.js";
import { writeU64 } from "./wire-format.js";

/** Where replies go. `send` writes one whole message (header + body [+ data]) synchronously. */
export interface ReplyChannel {
  send(message: Buffer, data?: Uint8Array): void;
}

export interface ReplyTimeouts {
  entryTimeoutMs: number;
  attrTimeoutMs: number;
  /** How long a missing name is cached; 0 answers ENOENT instead of a negative entry. */
  negativeTimeoutMs: number;
}

const H = Size.OUT_HEADER;
const ENOENT = 2;

export class ReplyWriter {
  readonly #channel: ReplyChannel;
  readonly #t: ReplyTimeouts;
  readonly #scratch = Buffer.alloc(H + Size.ENTRY_OUT + Size.OPEN_OUT + Size.INIT_OUT);

  constructor(channel: ReplyChannel, timeouts: ReplyTimeouts) {
    this.#channel = channel;
    this.#t = timeouts;
  }

  /** An error reply with positive `errno`; 0 is an empty success. */
  error(unique: number, errno: number): void {
    encodeOutHeader(this.#scratch, H, -errno, unique);
    this.#channel.send(this.#scratch.subarray(0, H));
  }

  empty(unique: number): void {
    this.error(unique, 0);
  }

  /** A reply whose body `encode` writes into the scratch buffer at `offset`, returning its length. */
  encoded(unique: number, encode: (buf: Buffer, offset: number) => number): void {
    this.#send(unique, encode(this.#scratch, H));
  }

  entry(unique: number, e: Entry): void {
    this.#send(unique, encodeEntryOut(this.#scratch, H, e, this.#t.entryTimeoutMs, this.#t.attrTimeoutMs));
  }

  /** LOOKUP: an entry, or for null a negative entry (or ENOENT when negative caching is off). */
  lookup(unique: number, e: Entry | null): void {
    if (e !== null) return this.entry(unique, e);
    if (this.#t.negativeTimeoutMs <= 0) return this.error(unique, ENOENT);
    this.#send(unique, encodeNegativeEntryOut(this.#scratch, H, this.#t.negativeTimeoutMs));
  }

  attr(unique: number, a: AttrReply): void {
    this.#send(unique, encodeAttrOut(this.#scratch, H, a.attr, a.attrTimeoutMs ?? this.#t.attrTimeoutMs));
  }

  open(unique: number, o: OpenReply): void {
    this.#send(unique, encodeOpenOut(this.#scratch, H, o));
  }

  create(unique: number, c: CreateReply): void {
    const n = encodeEntryOut(this.#scratch, H, c, this.#t.entryTimeoutMs, this.#t.attrTimeoutMs);
    this.#send(unique, n + encodeOpenOut(this.#scratch, H + n, c));
  }

  written(unique: number, count: number): void {
    if (!(Number.isInteger(count) && count >= 0 && count <= 0xffff_ffff)) {
      throw new TypeError(`write handler returned ${String(count)}, not a byte count`);
    }
    this.#scratch.writeUInt32LE(count, H);
    this.#scratch.writeUInt32LE(0, H + 4);
    this.#send(unique, Size.WRITE_OUT);
  }

  statfs(unique: number, s: StatfsReply): void {
    this.#send(unique, encodeStatfsOut(this.#scratch, H, s));
  }

  lock(unique: number, l: FileLock | null): void {
    this.#send(unique, encodeLkOut(this.#scratch, H, l));
  }

  offset(unique: number, offset: number): void {
    if (!(Number.isInteger(offset) && offset >= 0))
      throw new TypeError(`lseek handler returned ${String(offset)}`);
    writeU64(this.#scratch, H, offset);
    this.#send(unique, Size.LSEEK_OUT);
  }

  /** READ: at most `max` bytes of `data`, sent as a second iovec (no copy). */
  data(unique: number, data: Uint8Array, max: number): void {
    if (!(data instanceof Uint8Array)) throw new TypeError("read handler must return a Uint8Array");
    const body = data.length > max ? data.subarray(0, max) : data;
    encodeOutHeader(this.#scratch, H + body.length, 0, unique);
    this.#channel.send(this.#scratch.subarray(0, H), body);
  }

  /** A message built with 16 leading bytes reserved for the out header (directory listings). */
  message(unique: number, message: Buffer): void {
    encodeOutHeader(message, message.length, 0, unique);
    this.#channel.send(message);
  }

  #send(unique: number, bodyLength: number): void {
    const len = H + bodyLength;
    encodeOutHeader(this.#scratch, len, 0, unique);
    this.#channel.send(this.#scratch.subarray(0, len));
  }
}

/** Writes the reply for a handler's result; the dispatcher picks one per opcode. */
export type Encoder<T> = (w: ReplyWriter, unique: number, value: T) => void;

export const encodeLookup: Encoder<Entry | null> = (w, u, v) => w.lookup(u, v);
export const encodeEntry: Encoder<Entry> = (w, u, v) => w.entry(u, v);
export const encodeAttr: Encoder<AttrReply> = (w, u, v) => w.attr(u, v);
export const encodeCreate: Encoder<CreateReply> = (w, u, v) => w.create(u, v);
export const encodeOpen: Encoder<OpenReply> = (w, u, v) => w.open(u, v);
export const encodeWrite: Encoder<number> = (w, u, v) => w.written(u, v);
export const encodeStatfs: Encoder<StatfsReply> = (w, u, v) => w.statfs(u, v);
export const encodeLk: Encoder<FileLock | null> = (w, u, v) => w.lock(u, v);
export const encodeLseek: Encoder<number> = (w, u, v) => w.offset(u, v);
export const encodeEmpty: Encoder<unknown> = (w, u) => w.empty(u);

/** STATFS of a file system without a statfs handler: no blocks, 255-byte names. */
export const DEFAULT_STATFS: StatfsReply = {
  blocks: 0,
  bfree: 0,
  bavail: 0,
  files: 0,
  ffree: 0,
  bsize: 4096,
  namelen: 255,
  frsize: 4096,
};
