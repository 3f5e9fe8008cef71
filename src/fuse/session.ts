// A mounted FUSE file system: opens /dev/fuse, mounts it, serves requests until unmounted.
//
// Threading (measured on this 2-vCPU VM, 4 KiB direct-I/O READ round trip, µs per request, median
// of runs; "same CPU" = client and server pinned together, "other CPU" = pinned apart):
//
//   design                                              same CPU   other CPU   unpinned
//   worker threads: blocking readSync, handle, write       11          50         15–29
//   main thread: /dev/fuse as a libuv stream (chosen)      11–12       50         12–50
//   readSync workers → postMessage → main thread            —           —         28–67
//   readSync workers → SharedArrayBuffer + waitAsync        —           —         25–50
//   (libfuse C passthrough_ll, from fuse-notes.md: ~19 unpinned)
//
// A file system's state (inodes, lock tables, a database) lives in ONE JavaScript thread, and its
// handlers are asynchronous. Worker readers that answer requests themselves were the fastest but
// cannot reach that state; handing each request from a reader worker to the main thread adds a
// second cross-thread wake-up to every request and measured 2–4× slower. The main-thread stream has
// one wake-up per request, equals the worker design when client and server share a CPU, and costs
// the same ~50 µs inter-CPU wake-up as any design when they do not (a VM property: C pays it too).
// So requests are read on the thread that owns the state (DeviceReader), handled there, and replies
// written with one synchronous write(v) — a reply never blocks. Slow work (fsync, network waits, lock
// waits) returns a promise, and the loop goes on reading; the reader is never busy except while a
// handler's synchronous part runs. Notifications go through a worker (see notifier.ts).
//
// Unmount: a plain FUSE mount gets no DESTROY on umount; the read fails with ENODEV, which ends the
// session. `unmount()` runs umount (umount -l if busy) and waits for that; if the connection outlives
// a lazy unmount (open files), closing the descriptor aborts it.

import * as fs from "node:fs";
import * as path from "node:path";
import { DeviceReader } from "./device-reader.js";
import { Dispatcher, type ReplyChannel } from "./dispatcher.js";
import { FuseSessionError } from "./errors.js";
import type { ConnectionInfo, FuseFileSystem } from "./file-system.js";
import { MAX_WRITE_LIMIT } from "./init-negotiation.js";
import { CrashGuard } from "./crash-guard.js";
import { clearStaleMount, mountFuse, unmountFuse } from "./mount-command.js";
import {
  type InvalidateInodeRange,
  encodeInvalidateEntry,
  encodeInvalidateInode,
  encodeNotifyDelete,
} from "./notification.js";
import { Notifier, type NotifyLane } from "./notifier.js";

export interface FuseSessionOptions {
  mountpoint: string;
  /** Source shown in /proc/mounts; default "fuse-ts". */
  fsName?: string;
  /** Mount type fuse.<subtype>; default: fsName. */
  subtype?: string;
  /** Let users other than the mounting one (root) access the mount. */
  allowOther?: boolean;
  /** Let the kernel check permissions from file modes (else the file system decides, via access). */
  defaultPermissions?: boolean;
  /** Default cache times for names and attributes (per-reply overrides in Entry/AttrReply). Default 1000. */
  entryTimeoutMs?: number;
  attrTimeoutMs?: number;
  /** Cache time for names LOOKUP found missing; 0 (default) answers ENOENT instead. */
  negativeTimeoutMs?: number;
  /** Largest WRITE, in bytes; default and maximum 1 MiB. */
  maxWrite?: number;
  maxReadahead?: number;
  /** Background requests the kernel may keep in flight (readahead, async direct I/O); default 64. */
  maxBackground?: number;
  /** Let the kernel cache writes and send them later (off by default: writes then reach the file
   *  system only at write-back time). */
  writebackCache?: boolean;
  /** Send POSIX lock requests (fcntl F_SETLK/F_GETLK, OFD locks) to the file system; default: when it
   *  implements setlk. false leaves every lock to the kernel's local table even if it does. */
  posixLocks?: boolean;
  /** Detach a stale FUSE mount at the mount point before mounting; default true. */
  clearStaleMount?: boolean;
  /** Start the crash guard (crash-guard.ts: aborts the connection if this process dies while its
   *  mount is still up, so that it cannot hang in the kernel); default true. */
  crashGuard?: boolean;
  /** Handler errors that name no errno (answered EIO), malformed requests, reply failures. Default: stderr. */
  onError?: (err: unknown, where: { opcode: string; unique: number }) => void;
}

const INIT_TIMEOUT_MS = 10_000;
const CLOSE_AFTER_LAZY_UNMOUNT_MS = 2_000;

function defaultOnError(err: unknown, where: { opcode: string; unique: number }): void {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`fuse: ${where.opcode} (unique ${where.unique}) failed: ${detail}\n`);
}

export class FuseSession {
  readonly mountpoint: string;
  /** Resolves when the session has ended (unmounted, connection lost or DESTROY); never rejects. */
  readonly closed: Promise<void>;
  readonly #dispatcher: Dispatcher;
  readonly #reader: DeviceReader;
  readonly #notifier: Notifier;
  readonly #fd: number;
  readonly #onError: NonNullable<FuseSessionOptions["onError"]>;
  #resolveClosed!: () => void;
  #initDone!: (c: ConnectionInfo) => void;
  #initFailed!: (err: unknown) => void;
  readonly #initialized: Promise<ConnectionInfo>;
  #ending = false;
  #fdClosed = false;
  #unmounting: Promise<void> | undefined;
  #crashGuard: CrashGuard | null = null;

  private constructor(fs: FuseFileSystem, fd: number, mountpoint: string, o: FuseSessionOptions) {
    this.mountpoint = mountpoint;
    this.#fd = fd;
    this.#onError = o.onError ?? defaultOnError;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#initialized = new Promise((resolve, reject) => {
      this.#initDone = resolve;
      this.#initFailed = reject;
    });
    this.#initialized.catch(() => undefined); // observed by #waitForInit; no unhandled rejection before
    const channel: ReplyChannel = { send: (message, data) => this.#write(message, data) };
    const maxWrite = Math.min(o.maxWrite ?? MAX_WRITE_LIMIT, MAX_WRITE_LIMIT);
    this.#dispatcher = new Dispatcher(fs, channel, {
      entryTimeoutMs: o.entryTimeoutMs ?? 1000,
      attrTimeoutMs: o.attrTimeoutMs ?? 1000,
      negativeTimeoutMs: o.negativeTimeoutMs ?? 0,
      maxWrite,
      maxReadahead: o.maxReadahead,
      maxBackground: o.maxBackground ?? 64,
      posixLocks: o.posixLocks !== false && typeof fs.setlk === "function",
      readdirplus: typeof fs.readdirplus === "function",
      writebackCache: o.writebackCache === true,
      onError: this.#onError,
      onInit: (c) => this.#initDone(c),
      onInitFailed: (err) => this.#initFailed(err),
      onDestroy: () => void this.#end(null),
    });
    // Every read must fit max_write + the WRITE header (80 bytes), and at least 8 KiB.
    this.#reader = new DeviceReader(fd, Math.max(8192, MAX_WRITE_LIMIT + 4096), {
      onRequest: (buf, length) => this.#dispatcher.dispatch(buf, length),
      onEnd: (err) => void this.#end(err),
    });
    this.#notifier = new Notifier(fd, mountpoint);
  }

  /**
   * Mounts `fs` at `options.mountpoint` and resolves once the kernel's INIT has been answered. Needs
   * root. Rejects with FuseSessionError (EFUSEDEVICE, EFUSEMOUNT, EFUSEREADER, EFUSEPROTOCOL).
   */
  static async mount(fs: FuseFileSystem, options: FuseSessionOptions): Promise<FuseSession> {
    const mountpoint = path.resolve(options.mountpoint);
    if (options.clearStaleMount !== false) await clearStaleMount(mountpoint);
    assertDirectory(mountpoint);
    let fd: number;
    try {
      fd = openDevice();
    } catch (err) {
      throw new FuseSessionError("EFUSEDEVICE", `cannot open /dev/fuse: ${(err as Error).message}`, {
        mountpoint,
        cause: err,
      });
    }
    let session: FuseSession;
    try {
      session = new FuseSession(fs, fd, mountpoint, options);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    let mounted = false;
    try {
      const fsName = options.fsName ?? "fuse-ts";
      await mountFuse(fd, mountpoint, {
        fsName,
        subtype: options.subtype ?? fsName,
        allowOther: options.allowOther === true,
        defaultPermissions: options.defaultPermissions === true,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
      });
      mounted = true;
      // Only now: reading a /dev/fuse descriptor that is not mounted yet fails with EPERM. The kernel
      // queued INIT at mount time, and mount(8) does not touch the new file system, so nothing waits.
      session.#reader.start();
      await session.#waitForInit();
      if (options.crashGuard !== false) {
        session.#crashGuard = CrashGuard.start(mountpoint, (e) =>
          session.#onError(e, { opcode: "CRASHGUARD", unique: 0 }),
        );
      }
      return session;
    } catch (err) {
      await session.#end(null);
      // Closing the descriptor aborted the connection; do not leave an ENOTCONN mount behind.
      if (mounted)
        await unmountFuse(mountpoint).catch((e: unknown) =>
          session.#onError(e, { opcode: "UNMOUNT", unique: 0 }),
        );
      throw err;
    }
  }

  /** What INIT negotiated. */
  get connection(): ConnectionInfo {
    const c = this.#dispatcher.connection;
    if (c === undefined)
      throw new FuseSessionError("EFUSEPROTOCOL", "INIT has not happened yet", {
        mountpoint: this.mountpoint,
      });
    return c;
  }

  /** The crash guard's watcher pid (undefined when it is not running). */
  get crashGuardPid(): number | undefined {
    return this.#crashGuard?.pid;
  }

  /** Requests whose handler promise has not settled. */
  get inFlightCount(): number {
    return this.#dispatcher.inFlightCount;
  }

  /**
   * Unmounts (umount, falling back to umount -l) and resolves when the session has ended. If a lazy
   * unmount leaves the connection alive (open files), aborts it after 2 s. Idempotent.
   */
  unmount(): Promise<void> {
    this.#unmounting ??= (async () => {
      if (!this.#ending) {
        try {
          const how = await unmountFuse(this.mountpoint);
          if (how === "detached") await Promise.race([this.closed, sleep(CLOSE_AFTER_LAZY_UNMOUNT_MS)]);
        } finally {
          await this.#end(null);
        }
      }
      await this.closed;
    })();
    return this.#unmounting;
  }

  /**
   * Unmounts on the first of `signals` (a second one aborts the connection at once). Returns a function
   * that removes the handlers. The process exits by itself once the session has ended, if nothing else
   * keeps it alive.
   */
  unmountOnSignals(signals: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM"]): () => void {
    let received = 0;
    const handler = (): void => {
      received++;
      const done = received === 1 ? this.unmount() : this.#end(null);
      done.catch((err: unknown) => this.#onError(err, { opcode: "UNMOUNT", unique: 0 }));
    };
    for (const s of signals) process.on(s, handler);
    return () => {
      for (const s of signals) process.off(s, handler);
    };
  }

  /**
   * Starts the notification workers now rather than at the first notification, for a server whose
   * first notification is on a latency-critical path (a refused commit waits for one).
   */
  warmNotifications(): void {
    this.#notifier.warm();
  }

  /** Drops the kernel's cached attributes and (unless attributesOnly) data of `nodeId`. */
  invalidateInode(nodeId: number, range?: InvalidateInodeRange): Promise<void> {
    return this.#notify("inode", () => encodeInvalidateInode(nodeId, range));
  }

  /** Drops the kernel's cached name `name` in directory `parent` (the next access looks it up again). */
  invalidateEntry(parent: number, name: string, options: { expireOnly?: boolean } = {}): Promise<void> {
    return this.#notify("entry", () => encodeInvalidateEntry(parent, name, options.expireOnly === true));
  }

  /** Tells the kernel that `name` in `parent` (node `child`) was deleted. */
  notifyDelete(parent: number, child: number, name: string): Promise<void> {
    return this.#notify("entry", () => encodeNotifyDelete(parent, child, name));
  }

  #notify(lane: NotifyLane, encode: () => Buffer): Promise<void> {
    let message: Buffer;
    try {
      message = encode();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.#notifier.send(message, lane);
  }

  async #waitForInit(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new FuseSessionError("EFUSEPROTOCOL", `no INIT from the kernel within ${INIT_TIMEOUT_MS} ms`, {
              mountpoint: this.mountpoint,
            }),
          ),
        INIT_TIMEOUT_MS,
      );
    });
    const ended = this.closed.then(() => {
      throw new FuseSessionError("EFUSEPROTOCOL", "the connection ended before INIT completed", {
        mountpoint: this.mountpoint,
      });
    });
    try {
      await Promise.race([this.#initialized, timeout, ended]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the session once: interrupts handlers, calls destroy, stops notifier and reader. */
  async #end(err: FuseSessionError | null): Promise<void> {
    if (this.#ending) return this.closed;
    this.#ending = true;
    this.#crashGuard?.stop();
    if (err !== null) this.#onError(err, { opcode: "READ", unique: 0 });
    this.#dispatcher.interruptAll();
    try {
      await this.#dispatcher.destroyFileSystem();
    } catch (e) {
      this.#onError(e, { opcode: "DESTROY", unique: 0 });
    }
    await this.#notifier.close();
    this.#fdClosed = true;
    await this.#reader.close();
    this.#resolveClosed();
  }

  #write(message: Buffer, data?: Uint8Array): void {
    if (this.#fdClosed) return; // a late reply after the session ended: nobody is waiting for it
    try {
      if (data === undefined || data.length === 0) fs.writeSync(this.#fd, message);
      else fs.writevSync(this.#fd, [message, data]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted or aborted and the kernel no longer waits for it.
      // ENODEV: unmounted meanwhile; the reader is about to see it too.
      if (code === "ENOENT" || code === "ENODEV") return;
      this.#onError(err, { opcode: "REPLY", unique: Number(message.readBigUInt64LE(8)) });
    }
  }
}

function openDevice(): number {
  // libuv opens with O_CLOEXEC: processes we spawn later must not keep the connection alive.
  return fs.openSync("/dev/fuse", "r+");
}

function assertDirectory(mountpoint: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(mountpoint);
  } catch (err) {
    throw new FuseSessionError("EFUSEMOUNT", `mount point is not accessible: ${(err as Error).message}`, {
      mountpoint,
      cause: err,
    });
  }
  if (!st.isDirectory())
    throw new FuseSessionError("EFUSEMOUNT", "mount point is not a directory", { mountpoint });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
