// Requests in flight and the INTERRUPTs that name them.
//
// The kernel sends INTERRUPT(unique) when the process waiting on request `unique` gets a signal, and
// only after that request was read from the device. This session reads with one reader in kernel
// order, so an INTERRUPT normally names a request that is either in flight (its handler returned a
// promise: abort its signal) or already answered (nothing to do: the kernel drops the interrupt when
// the answer arrives). An INTERRUPT naming a request not seen yet — possible with several readers, and
// kept for robustness — is remembered, and the request starts out aborted when it arrives. The memory
// is bounded: request ids are never reused within a connection, so a stale entry costs nothing but
// space, and the oldest are dropped past MAX_EARLY_INTERRUPTS.

import { FuseError } from "./errors.js";
import type { RequestContext } from "./file-system.js";

export const MAX_EARLY_INTERRUPTS = 256;

export class Context implements RequestContext {
  readonly unique: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  #controller: AbortController | undefined;

  constructor(unique: number, uid: number, gid: number, pid: number) {
    this.unique = unique;
    this.uid = uid;
    this.gid = gid;
    this.pid = pid;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  get interrupted(): boolean {
    return this.#controller?.signal.aborted === true;
  }

  /** Aborts `signal` with a FuseError EINTR as its reason. Idempotent. */
  interrupt(): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(new FuseError("EINTR", `request ${this.unique} interrupted`));
    }
  }
}

export class InterruptRegistry {
  readonly #inFlight = new Map<number, Context>();
  /** Interrupts that arrived before their request; insertion order = age. */
  readonly #early = new Set<number>();

  /** Requests whose handlers returned a promise that has not settled. */
  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /** Called for every new request: applies an interrupt that arrived before it. */
  admit(ctx: Context): void {
    if (this.#early.size > 0 && this.#early.delete(ctx.unique)) ctx.interrupt();
  }

  /** The request's handler returned a promise: interrupts may now reach it. */
  begin(ctx: Context): void {
    this.#inFlight.set(ctx.unique, ctx);
  }

  /** The request was answered. */
  end(ctx: Context): void {
    this.#inFlight.delete(ctx.unique);
  }

  /** An INTERRUPT for request `unique`. Returns true if it reached a request in flight. */
  interrupt(unique: number): boolean {
    const ctx = this.#inFlight.get(unique);
    if (ctx !== undefined) {
      ctx.interrupt();
      return true;
    }
    this.#early.add(unique);
    if (this.#early.size > MAX_EARLY_INTERRUPTS) {
      const oldest = this.#early.values().next().value as number;
      this.#early.delete(oldest);
    }
    return false;
  }

  /** Interrupts every request in flight (the session is ending). */
  interruptAll(): void {
    for (const ctx of this.#inFlight.values()) ctx.interrupt();
  }
}
