// How far a replica is behind its primary, in milliseconds, for `.lag`, `/status` and metrics.
//
// The replica knows the primary's clock from two kinds of frames: each LTX file's header timestamp
// (when the primary committed it) and each HEARTBEAT's time (sent when the primary had nothing else
// to send, with its positions). The lag is
//   - 0 while connected and the last heartbeat found every database at the primary's position, with
//     no file arriving since (the replica is current, the primary idle);
//   - otherwise the time since the newest moment the replica is known to have been current: the commit
//     time of the last file it applied, or the time of the last heartbeat that found it current;
//   - before any of that, the time since the replica started.
// Clock skew between the machines shows up in it, as in LiteFS.

export class ReplicaLag {
  readonly #now: () => number;
  #currentAtMs: number;
  #caughtUp = false;

  constructor(now: () => number) {
    this.#now = now;
    this.#currentAtMs = now();
  }

  /** A file started to arrive: the replica is behind until it is applied and a heartbeat agrees. */
  receiving(): void {
    this.#caughtUp = false;
  }

  /** A file committed on the primary at `timestampMs` is applied. */
  applied(timestampMs: number): void {
    if (timestampMs > this.#currentAtMs) this.#currentAtMs = timestampMs;
  }

  /** A heartbeat sent at `timeMs`; `current` when every position it lists equals the replica's. */
  heartbeat(timeMs: number, current: boolean): void {
    this.#caughtUp = current;
    if (current && timeMs > this.#currentAtMs) this.#currentAtMs = timeMs;
  }

  lagMs(connected: boolean): number {
    if (connected && this.#caughtUp) return 0;
    return Math.max(0, this.#now() - this.#currentAtMs);
  }
}
