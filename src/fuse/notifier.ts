// Sends notifications to the kernel from dedicated worker threads (see notify-worker.ts for why a
// write on the main thread could deadlock). Each `send` resolves when the kernel accepted the message.
// ENOENT (the kernel has nothing cached for that inode or name) counts as success: there was nothing
// to invalidate.
//
// Two lanes, each its own worker, started on first use (or at once by `warm`, so that the first
// notification does not pay for a thread start: 100–250 ms under load, measured in a handoff); messages of one lane are written in the order
// sent. Name notifications (entry invalidation, delete) need the parent directory's lock, which a
// request in progress on that directory (an UNLINK, a LOOKUP) holds until it is answered; inode
// invalidations do not. With one queue, a request whose answer waits for an inode invalidation (a
// refused commit drops the database's cached pages before it answers) behind a name invalidation of
// its own directory could never be answered. On their own lane, inode invalidations never wait for a
// directory lock.

import { constants } from "node:os";
import { Worker } from "node:worker_threads";
import { FuseSessionError } from "./errors.js";

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/** Which worker writes a message: name notifications may block on a directory's lock, inode ones not. */
export type NotifyLane = "inode" | "entry";

export class Notifier {
  readonly #inode: NotifyQueue;
  readonly #entry: NotifyQueue;

  constructor(fd: number, mountpoint: string) {
    this.#inode = new NotifyQueue(fd, mountpoint);
    this.#entry = new NotifyQueue(fd, mountpoint);
  }

  send(message: Buffer, lane: NotifyLane): Promise<void> {
    return (lane === "inode" ? this.#inode : this.#entry).send(message);
  }

  /** Starts both workers now instead of at their first message. */
  warm(): void {
    this.#inode.warm();
    this.#entry.warm();
  }

  /** Stops both workers; outstanding notifications reject with EFUSECLOSED. */
  async close(): Promise<void> {
    await Promise.all([this.#inode.close(), this.#entry.close()]);
  }
}

/** One worker thread and the notifications it has not written yet. */
class NotifyQueue {
  readonly #fd: number;
  readonly #mountpoint: string;
  readonly #pending = new Map<number, Pending>();
  #worker: Worker | undefined;
  #nextId = 1;
  #closed = false;

  constructor(fd: number, mountpoint: string) {
    this.#fd = fd;
    this.#mountpoint = mountpoint;
  }

  send(message: Buffer): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new FuseSessionError("EFUSECLOSED", "notification after the session ended", {
          mountpoint: this.#mountpoint,
        }),
      );
    }
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      if (this.#pending.size === 1) worker.ref(); // keep the process alive while a write is outstanding
      worker.postMessage({ id, message });
    });
  }

  /** Starts the worker if it is not running (no-op once closed). */
  warm(): void {
    if (!this.#closed) this.#start();
  }

  /** Stops the worker; outstanding notifications reject with EFUSECLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    for (const p of this.#pending.values()) {
      p.reject(
        new FuseSessionError("EFUSECLOSED", "session ended before the notification was written", {
          mountpoint: this.#mountpoint,
        }),
      );
    }
    this.#pending.clear();
    if (worker !== undefined) await worker.terminate();
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(new URL("./notify-worker.js", import.meta.url), {
      workerData: { fd: this.#fd },
    });
    worker.unref();
    worker.on("message", ({ id, errno }: { id: number; errno: number }) => {
      const p = this.#pending.get(id);
      if (p === undefined) return;
      this.#pending.delete(id);
      if (this.#pending.size === 0) worker.unref();
      if (errno === 0 || errno === constants.errno.ENOENT) p.resolve();
      else {
        const name = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
        p.reject(
          new FuseSessionError("EFUSENOTIFY", `the kernel refused a notification: ${name}`, {
            mountpoint: this.#mountpoint,
          }),
        );
      }
    });
    worker.on("error", (err) => {
      for (const p of this.#pending.values()) {
        p.reject(
          new FuseSessionError("EFUSENOTIFY", "notification worker failed", {
            mountpoint: this.#mountpoint,
            cause: err,
          }),
        );
      }
      this.#pending.clear();
      this.#worker = undefined;
    });
    this.#worker = worker;
    return worker;
  }
}
