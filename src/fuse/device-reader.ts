// Reads requests from /dev/fuse on the main thread's event loop, one request per read.
//
// /dev/fuse is wrapped as a libuv stream (Node's internal `pipe_wrap` binding: the public
// net.Socket and tty.ReadStream refuse a character device), reading into a caller-owned buffer
// (`useUserBuffer`, the mechanism behind net.Socket's `onread` option) of max_write + 4 KiB, so no
// allocation and no copy happens per request. libuv sets the descriptor non-blocking and polls it
// with epoll: an idle session costs nothing, a busy one does epoll_wait + read per request.
//
// Buffer ownership: the buffer handed to `onRequest` is reused by the next read unless `onRequest`
// returns a promise (a handler still holds a view of it); then the next read goes to a fresh buffer
// (returned from the onread callback, which libuv uses from then on) and the held one rejoins a small
// free pool when the promise settles.
//
// End: a read error ends the reader. ENODEV is the kernel saying the file system was unmounted (the
// normal end of a session); ECONNABORTED that the connection was aborted.

import { constants } from "node:os";
import { FuseSessionError } from "./errors.js";

interface StreamHandle {
  open(fd: number): number;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Buffer): void;
  close(callback?: () => void): void;
  onread: ((arrayBuffer: unknown) => Buffer | undefined) | null;
}

interface PipeBinding {
  Pipe: new (type: number) => StreamHandle;
  constants: { SOCKET: number };
}

interface StreamWrapBinding {
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
}

const UV_EOF = -4095;
const FREE_POOL_MAX = 4;

function internalBinding<T>(name: string): T {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== "function") {
    throw new FuseSessionError("EFUSEREADER", "process.binding is not available in this Node.js");
  }
  try {
    return binding.call(process, name) as T;
  } catch (err) {
    throw new FuseSessionError("EFUSEREADER", `Node.js internal binding ${name} is not available`, {
      cause: err,
    });
  }
}

export interface DeviceReaderEvents {
  /** One request of `length` bytes at the start of `buf`. A returned promise holds `buf` until it settles. */
  onRequest(buf: Buffer, length: number): Promise<unknown> | undefined;
  /** Reading ended: null for unmount (ENODEV/ECONNABORTED), else the error. Called once. */
  onEnd(err: FuseSessionError | null): void;
}

export class DeviceReader {
  readonly #handle: StreamHandle;
  readonly #state: Int32Array;
  readonly #kNread: number;
  readonly #bufferSize: number;
  readonly #events: DeviceReaderEvents;
  readonly #free: Buffer[] = [];
  #current: Buffer;
  #ended = false;
  #closed = false;

  /** Takes ownership of `fd`: it is closed by `close()`. */
  constructor(fd: number, bufferSize: number, events: DeviceReaderEvents) {
    const pipe = internalBinding<PipeBinding>("pipe_wrap");
    const stream = internalBinding<StreamWrapBinding>("stream_wrap");
    this.#state = stream.streamBaseState;
    this.#kNread = stream.kReadBytesOrError;
    this.#bufferSize = bufferSize;
    this.#events = events;
    this.#handle = new pipe.Pipe(pipe.constants.SOCKET);
    const err = this.#handle.open(fd);
    if (err !== 0)
      throw new FuseSessionError("EFUSEREADER", `cannot watch /dev/fuse descriptor ${fd}: ${uvError(err)}`);
    this.#current = Buffer.allocUnsafe(bufferSize);
    this.#handle.useUserBuffer(this.#current);
    this.#handle.onread = () => this.#onRead();
  }

  start(): void {
    const err = this.#handle.readStart();
    if (err !== 0) throw new FuseSessionError("EFUSEREADER", `cannot read /dev/fuse: ${uvError(err)}`);
  }

  /** Stops reading and closes the descriptor (which aborts the connection if still mounted). Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#ended = true;
    return new Promise((resolve) => this.#handle.close(resolve));
  }

  /** Returns the buffer for the next read (the same one unless this request holds it). */
  #onRead(): Buffer | undefined {
    const nread = this.#state[this.#kNread];
    if (nread > 0) {
      const buf = this.#current;
      const hold = this.#events.onRequest(buf, nread);
      if (hold === undefined) return undefined;
      const next = this.#free.pop() ?? Buffer.allocUnsafe(this.#bufferSize);
      this.#current = next;
      const giveBack = (): void => {
        if (this.#free.length < FREE_POOL_MAX) this.#free.push(buf);
      };
      hold.then(giveBack, giveBack);
      return next;
    }
    if (nread === 0) return undefined; // EAGAIN: nothing to read after all
    if (this.#ended) return undefined;
    this.#ended = true;
    if (nread === -constants.errno.ENODEV || nread === -constants.errno.ECONNABORTED || nread === UV_EOF) {
      this.#events.onEnd(null);
    } else {
      this.#events.onEnd(new FuseSessionError("EFUSEREADER", `reading /dev/fuse failed: ${uvError(nread)}`));
    }
    return undefined;
  }
}

function uvError(code: number): string {
  const name = Object.entries(constants.errno).find(([, n]) => n === -code)?.[0];
  return name === undefined ? `error ${code}` : `${name} (${code})`;
}
