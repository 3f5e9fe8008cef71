// One direction of a FaultProxy connection: bytes read from `source` are written to `sink` after a
// delay, in order, unless the pipe is frozen (then they are held, and reading stops so that the sender
// feels back-pressure as it would from a frozen peer). A half-close (FIN) travels through the same
// queue, so it is delayed and held like the bytes before it.
//
// Contract: the pipe owns no socket. It never destroys either side; the connection decides what a
// socket error means. It stops reading from `source` while more than `queuedBytesMax` bytes wait.
import assert from "node:assert/strict";
import type * as net from "node:net";

/** Byte counts of one direction, since the proxy started (all connections). */
export interface DirectionCounters {
  /** Bytes read from the sender. */
  receivedBytes: number;
  /** Bytes handed to the receiver's socket. */
  forwardedBytes: number;
}

interface QueuedChunk {
  /** undefined stands for the sender's FIN. */
  chunk: Buffer | undefined;
  /** performance.now() at which the chunk may be delivered. */
  dueAt: number;
}

export interface DelayedPipeOptions {
  source: net.Socket;
  sink: net.Socket;
  counters: DirectionCounters;
  /** Stop reading from `source` above this many queued bytes; resume below half of it. */
  queuedBytesMax: number;
  /** The delay each chunk gets, read when the chunk arrives. */
  delayMs: () => number;
  /** Held from the start (a connection accepted while the proxy is paused). */
  frozen: boolean;
}

export class DelayedPipe {
  readonly #source: net.Socket;
  readonly #sink: net.Socket;
  readonly #counters: DirectionCounters;
  readonly #queuedBytesMax: number;
  readonly #delayMs: () => number;
  readonly #queue: QueuedChunk[] = [];
  #queuedBytes = 0;
  #lastDueAt = 0;
  #frozen: boolean;
  #waitingForDrain = false;
  #timer: NodeJS.Timeout | undefined;
  #finDelivered = false;
  #stopped = false;

  constructor(options: DelayedPipeOptions) {
    assert.ok(options.queuedBytesMax > 0, "queuedBytesMax must be positive");
    this.#source = options.source;
    this.#sink = options.sink;
    this.#counters = options.counters;
    this.#queuedBytesMax = options.queuedBytesMax;
    this.#delayMs = options.delayMs;
    this.#frozen = options.frozen;
    if (this.#frozen) this.#source.pause();
    this.#source.on("data", (chunk: Buffer) => this.#enqueue(chunk));
    this.#source.on("end", () => this.#enqueue(undefined));
  }

  /** True once the sender's FIN has been passed on (this direction is finished). */
  get finished(): boolean {
    return this.#finDelivered;
  }

  /** Bytes read but not yet delivered. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Stops delivering and reading; what is queued stays queued. */
  freeze(): void {
    this.#frozen = true;
    this.#source.pause();
    this.#clearTimer();
  }

  /** Resumes delivering (each held chunk when its due time has come) and reading. */
  thaw(): void {
    this.#frozen = false;
    this.#resumeSourceIfRoom();
    this.#pump();
  }

  /** Drops everything queued and never delivers again (the connection is being torn down). */
  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
    this.#queue.length = 0;
    this.#queuedBytes = 0;
  }

  #enqueue(chunk: Buffer | undefined): void {
    if (this.#stopped) return;
    if (chunk !== undefined) {
      this.#counters.receivedBytes += chunk.length;
      this.#queuedBytes += chunk.length;
    }
    // Order is kept even when the delay shrinks: a chunk is never due before the one ahead of it.
    const dueAt = Math.max(performance.now() + this.#delayMs(), this.#lastDueAt);
    this.#lastDueAt = dueAt;
    this.#queue.push({ chunk, dueAt });
    if (this.#queuedBytes > this.#queuedBytesMax) this.#source.pause();
    this.#pump();
  }

  #pump(): void {
    if (this.#frozen || this.#stopped || this.#waitingForDrain) return;
    this.#clearTimer();
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      const waitMs = head.dueAt - performance.now();
      if (waitMs > 0) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, Math.ceil(waitMs));
        return;
      }
      this.#queue.shift();
      if (head.chunk === undefined) {
        this.#finDelivered = true;
        if (!this.#sink.destroyed) this.#sink.end();
        return;
      }
      this.#queuedBytes -= head.chunk.length;
      this.#counters.forwardedBytes += head.chunk.length;
      this.#resumeSourceIfRoom();
      if (this.#sink.destroyed) continue;
      if (!this.#sink.write(head.chunk)) {
        this.#waitingForDrain = true;
        this.#sink.once("drain", () => {
          this.#waitingForDrain = false;
          this.#pump();
        });
        return;
      }
    }
  }

  #resumeSourceIfRoom(): void {
    if (!this.#frozen && !this.#stopped && this.#queuedBytes <= this.#queuedBytesMax / 2) {
      this.#source.resume();
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
