// The only source of time in the lease layer. Deadlines are computed on a monotonic clock (never the
// wall clock, which NTP may step backwards), and passed in so that tests can drive time by hand.
import { performance } from "node:perf_hooks";

export interface TimerHandle {
  /** Stops the timer; calling it after the timer fired, or twice, does nothing. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic clock; only differences between two readings mean anything. */
  now(): number;
  /** Calls `callback` once, no earlier than `delayMs` from now. A delay ≤ 0 fires on the next turn. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
}

/** The process's monotonic clock (`performance.now()`) and Node's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(delayMs, callback) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(timer) };
  },
};

/**
 * Resolves after `delayMs` on `clock`, or rejects with the signal's reason as soon as `signal` aborts.
 */
export function sleepOn(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason as Error);
    };
    const timer = clock.setTimer(delayMs, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** An AbortSignal that aborts `delayMs` from now on `clock` (unlike AbortSignal.timeout, fakeable). */
export function timeoutSignalOn(
  clock: Clock,
  delayMs: number,
  reason: () => Error,
): {
  signal: AbortSignal;
  cancel: () => void;
} {
  const controller = new AbortController();
  const timer = clock.setTimer(delayMs, () => controller.abort(reason()));
  return { signal: controller.signal, cancel: () => timer.cancel() };
}
