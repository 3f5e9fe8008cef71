// The clients of a chaos run, in the test process. Writers send writes with unique ids through the
// nodes' proxies (a failed write is retried with the same id through the next node until acknowledged
// or the run ends — the app makes a repeated id a no-op). Readers (separate, so that a read stuck on a
// faulty node never holds writes back) read through any node and check invariants:
//   - every answered read sees rows = counter (a transaction is all or nothing);
//   - a read carrying the latest acknowledged write's TXID (cookie `__txid`) sees that write
//     (read-your-writes through the proxy), unless that write is later found lost.
// Only answers with status 200 count; errors and timeouts are unavailability, not violations.
import type { AckRecord } from "./checker.js";
import { Prng } from "../support/prng.js";

export interface WorkloadTarget {
  name: string;
  proxyUrl: string;
}

export interface ReadAnomaly {
  kind: "torn" | "missing-own-write";
  atMs: number;
  via: string;
  detail: string;
  /** For a missing own write: its id (excused if the checker lists it as lost). */
  id?: number;
}

/** A read that got no 200 answer (an error, a timeout, another status). */
export interface ReadFailure {
  atMs: number;
  via: string;
  /** The HTTP status, 0 when there was no answer (refused, reset, timed out). */
  status: number;
  /** The answer's `code`/`error`, or the request's error. */
  detail: string;
}

export interface WorkloadResult {
  acked: AckRecord[];
  reads: number;
  readErrors: number;
  readFailures: ReadFailure[];
  writeErrors: number;
  anomalies: ReadAnomaly[];
}

const REQUEST_TIMEOUT_MS = 4_000;

export class ChaosWorkload {
  readonly #targets: () => readonly WorkloadTarget[];
  readonly #writers: number;
  readonly #readers: number;
  readonly #seed: number;
  readonly acked: AckRecord[] = [];
  readonly anomalies: ReadAnomaly[] = [];
  #nextId = 1;
  #lastWrite: { id: number; txid: string } | undefined;
  #stopping = false;
  #reads = 0;
  readonly #readFailures: ReadFailure[] = [];
  #writeErrors = 0;
  #loops: Promise<void>[] = [];

  constructor(options: {
    targets: () => readonly WorkloadTarget[];
    writers: number;
    readers: number;
    seed: number;
  }) {
    this.#targets = options.targets;
    this.#writers = options.writers;
    this.#readers = options.readers;
    this.#seed = options.seed;
  }

  start(): void {
    for (let c = 0; c < this.#writers; c++) this.#loops.push(this.#writer(new Prng(this.#seed + 1 + c)));
    for (let c = 0; c < this.#readers; c++) this.#loops.push(this.#reader(new Prng(this.#seed + 1001 + c)));
  }

  /** Ack times in order (for unavailability). */
  ackTimes(): number[] {
    return this.acked.map((a) => a.ackedAtMs).sort((a, b) => a - b);
  }

  async stop(): Promise<WorkloadResult> {
    this.#stopping = true;
    await Promise.all(this.#loops);
    return {
      acked: [...this.acked].sort((a, b) => a.id - b.id),
      reads: this.#reads,
      readErrors: this.#readFailures.length,
      readFailures: [...this.#readFailures],
      writeErrors: this.#writeErrors,
      anomalies: this.anomalies,
    };
  }

  /** A writer: unique ids, each retried through the next node until acknowledged or the run ends. */
  async #writer(prng: Prng): Promise<void> {
    while (!this.#stopping) {
      const targets = this.#targets();
      const id = this.#nextId++;
      let target = prng.int(0, targets.length - 1);
      for (let attempt = 0; !this.#stopping; attempt++) {
        const via = targets[target % targets.length];
        const answer = await request(`${via.proxyUrl}/write?id=${id}`, "POST");
        if (answer.status === 200) {
          this.acked.push({ id, ackedAtMs: Date.now(), via: via.name });
          if (answer.txid !== undefined) this.#lastWrite = { id, txid: answer.txid };
          break;
        }
        this.#writeErrors++;
        target++;
        await sleep(Math.min(20 * 2 ** Math.min(attempt, 4), 300));
      }
    }
  }

  /** A reader: the latest acknowledged write (with its TXID) must be visible through any node. */
  async #reader(prng: Prng): Promise<void> {
    while (!this.#stopping) {
      const last = this.#lastWrite;
      if (last === undefined) {
        await sleep(50);
        continue;
      }
      await this.#read(prng.pick(this.#targets()), last.id, last.txid);
    }
  }

  async #read(via: WorkloadTarget, ownId: number, txid: string | undefined): Promise<void> {
    const answer = await request(`${via.proxyUrl}/read?id=${ownId}`, "GET", txid);
    if (answer.status !== 200 || answer.body === undefined) {
      this.#readFailures.push({
        atMs: Date.now(),
        via: via.name,
        status: answer.status,
        detail: answer.detail,
      });
      await sleep(20);
      return;
    }
    this.#reads++;
    const state = answer.body as { rows: number; counter: number; has: boolean };
    if (state.rows !== state.counter) {
      this.anomalies.push({
        kind: "torn",
        atMs: Date.now(),
        via: via.name,
        detail: `rows ${state.rows} != counter ${state.counter}`,
      });
    }
    if (!state.has) {
      this.anomalies.push({
        kind: "missing-own-write",
        atMs: Date.now(),
        via: via.name,
        detail: `own write ${ownId} not visible with __txid=${txid}`,
        id: ownId,
      });
    }
  }
}

async function request(
  url: string,
  method: "GET" | "POST",
  txid?: string,
): Promise<{ status: number; txid?: string; body?: unknown; detail: string }> {
  try {
    const res = await fetch(url, {
      method,
      headers: txid === undefined ? {} : { cookie: `__txid=${txid}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const { code, error } = (body ?? {}) as { code?: string; error?: string };
    const detail = res.status === 200 ? "" : `${code ?? ""} ${error ?? text.slice(0, 200)}`;
    return { status: res.status, txid: res.headers.get("litefs-txid") ?? undefined, body, detail };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { status: 0, detail: `${(err as Error).name}: ${cause?.code ?? (err as Error).message}` };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
