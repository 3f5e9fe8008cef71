// A clock that moves only when the test says so. `advance` fires due timers in time order and lets the
// promise continuations they start run before moving on; `jump` moves time without firing anything, as
// a blocked event loop would.
import type { Clock, TimerHandle } from "../../src/lease/clock.js";

interface PendingTimer {
  at: number;
  sequence: number;
  callback: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  #now: number;
  #sequence = 0;
  #timers: PendingTimer[] = [];

  constructor(start = 1_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer: PendingTimer = {
      at: this.#now + Math.max(0, delayMs),
      sequence: this.#sequence++,
      callback,
      cancelled: false,
    };
    this.#timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Number of timers still due to fire. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing each due timer at its own time, settling promises in between. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    while (true) {
      const next = this.#nextDue(end);
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.at);
      next.cancelled = true;
      next.callback();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /** Moves time forward without firing any timer (an event loop that was blocked). */
  jump(ms: number): void {
    this.#now += ms;
  }

  #nextDue(end: number): PendingTimer | undefined {
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    let best: PendingTimer | undefined;
    for (const timer of this.#timers) {
      if (timer.at > end) continue;
      if (
        best === undefined ||
        timer.at < best.at ||
        (timer.at === best.at && timer.sequence < best.sequence)
      ) {
        best = timer;
      }
    }
    return best;
  }
}

/** Lets pending promise continuations (and I/O callbacks already due) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
