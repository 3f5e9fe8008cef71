// Shared pieces of the lease tests: node identities, etcd leasers on a fresh key prefix, polling.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { EtcdLeaser, type EtcdLeaserOptions } from "../../src/lease/etcd-leaser.js";
import { isLeaseError } from "../../src/lease/lease-error.js";
import type { Lease, Leaser, NodeIdentity } from "../../src/lease/leaser.js";
import type { StoreLogger } from "../../src/store/store-logger.js";

export function identity(name: string): NodeIdentity {
  return { nodeId: `id-${name}`, hostname: name, advertiseURL: `http://${name}:20202` };
}

/** A key prefix no other test uses. */
export function freshPrefix(label: string): string {
  return `/litefs-test/${label}-${randomUUID().slice(0, 8)}`;
}

/** Leasers made by a test, closed after it (close releases held leases). */
export class LeaserSet {
  readonly #leasers: Leaser[] = [];
  readonly backgroundErrors: Error[] = [];

  etcd(name: string, options: Omit<EtcdLeaserOptions, "identity">): EtcdLeaser {
    const leaser = new EtcdLeaser({
      identity: identity(name),
      onBackgroundError: (error) => this.backgroundErrors.push(error),
      ...options,
    });
    this.#leasers.push(leaser);
    return leaser;
  }

  add<T extends Leaser>(leaser: T): T {
    this.#leasers.push(leaser);
    return leaser;
  }

  async closeAll(): Promise<void> {
    const results = await Promise.allSettled(this.#leasers.map((l) => l.close()));
    // A close that could not reach a (deliberately killed) coordinator is expected in failure tests.
    for (const result of results) {
      if (result.status === "rejected" && !isLeaseError(result.reason, "ELEASEUNAVAILABLE"))
        throw result.reason;
    }
  }
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last error: ${String(lastError)})`);
}

/** Tries to acquire until it succeeds; any error other than "held/reserved/delay" fails the test. */
export async function acquireWhenFree(leaser: Leaser, timeoutMs: number): Promise<Lease> {
  return pollUntil(
    `${leaser.identity.hostname} acquires`,
    async () => {
      try {
        return await leaser.acquire();
      } catch (error) {
        if (isLeaseError(error, "ELEASEEXISTS") || isLeaseError(error, "ELEASEHANDOFF")) return undefined;
        throw error;
      }
    },
    timeoutMs,
    25,
  );
}

/** Asserts that `promise` rejects with a LeaseError of `code` and returns the error. */
export async function rejectsWithCode<E extends Error>(promise: Promise<unknown>, code: string): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert.equal((error as { code?: string }).code, code, `expected ${code}, got: ${String(error)}`);
    return error as E;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** A logger that drops everything (role-manager tests that check behaviour, not log lines). */
export const quietLog: StoreLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** `target` with the members in `own` replaced; the rest run on `target` itself (private fields work). */
export function overriding<T extends object>(target: T, own: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (Object.hasOwn(own, key)) return own[key as keyof T];
      const value: unknown = Reflect.get(object, key, object);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}
