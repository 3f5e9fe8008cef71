// The Consul leaser's requests and its handling of the answers, against ConsulDocumentedServer — a
// server written from Consul's HTTP API documentation, NOT a real Consul (none can be installed here;
// see docs/lease.md). Leaser and server share a fake clock, so TTLs of 10 s (Consul's minimum) run in
// milliseconds: the clock is stepped while real HTTP requests travel between the steps.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConsulLeaser, type ConsulLeaserOptions } from "../../src/lease/consul-leaser.js";
import { LeaseExistsError, LeaseHandoffPendingError, LeaseLostError } from "../../src/lease/lease-error.js";
import type { PrimaryInfo } from "../../src/lease/leaser.js";
import { ConsulDocumentedServer } from "./consul-documented-server.js";
import { FakeClock } from "./fake-clock.js";
import { acquireWhenFree, identity, LeaserSet, pollUntil, rejectsWithCode } from "./lease-test-kit.js";

const TTL_MS = 10_000;
const LOCK_DELAY_MS = 1_000;
const KEY = "litefs/test-cluster";

interface Rig {
  clock: FakeClock;
  server: ConsulDocumentedServer;
  node: (name: string, options?: Partial<ConsulLeaserOptions>) => ConsulLeaser;
  /** Moves fake time forward in small steps, letting real HTTP traffic run between them. */
  advance: (ms: number) => Promise<void>;
  /** Steps the clock until `promise` settles. */
  drive: <T>(promise: Promise<T>) => Promise<T>;
}

async function rig(t: { after: (fn: () => Promise<void>) => void }): Promise<Rig> {
  const clock = new FakeClock();
  const server = await ConsulDocumentedServer.start(clock);
  const set = new LeaserSet();
  t.after(async () => {
    await set.closeAll();
    await server.close();
  });
  const step = async (): Promise<void> => {
    await clock.advance(50);
    await new Promise((resolve) => setTimeout(resolve, 2));
  };
  return {
    clock,
    server,
    node: (name, options = {}) =>
      set.add(
        new ConsulLeaser({
          url: server.url,
          key: KEY,
          identity: identity(name),
          ttlMs: TTL_MS,
          lockDelayMs: LOCK_DELAY_MS,
          clock,
          onBackgroundError: (error) => set.backgroundErrors.push(error),
          ...options,
        }),
      ),
    async advance(ms) {
      const end = clock.now() + ms;
      while (clock.now() < end) await step();
    },
    async drive(promise) {
      let settled = false;
      const watched = promise.finally(() => (settled = true));
      watched.catch(() => undefined);
      for (let i = 0; !settled; i++) {
        if (i > 10_000) throw new Error("drive: the promise did not settle within 500 s of fake time");
        await step();
      }
      return promise;
    },
  };
}

test("acquire: a session with the configured TTL/lock delay/behaviour locks the key; others see the holder", async (t) => {
  const { node, server } = await rig(t);
  const a = node("a");
  const b = node("b");
  assert.equal(await a.primaryInfo(), null);
  const lease = await a.acquire();
  const entry = server.entry(KEY)!;
  assert.ok(entry.session !== undefined && server.sessionExists(entry.session));
  assert.equal(entry.lockIndex, 1);
  assert.equal(lease.epoch, BigInt(entry.modifyIndex));
  assert.deepEqual(JSON.parse(entry.value!.toString()), {
    hostname: "a",
    "advertise-url": "http://a:20202",
    "node-id": "id-a",
  });
  const refused = await rejectsWithCode<LeaseExistsError>(b.acquire(), "ELEASEEXISTS");
  assert.deepEqual(refused.primary, { ...identity("a"), epoch: lease.epoch });
  assert.deepEqual(await b.primaryInfo(), { ...identity("a"), epoch: lease.epoch });
});

test("renewals keep the session alive far beyond its TTL", async (t) => {
  const { node, server, advance } = await rig(t);
  const lease = await node("a").acquire();
  await advance(3 * TTL_MS);
  assert.ok(lease.isHeld());
  assert.equal(server.invalidations.length, 0);
  assert.ok(lease.renewedAt > 2 * TTL_MS);
});

for (const fault of ["hang", "fail"] as const) {
  test(`renewals that ${fault}: the holder steps down before Consul could invalidate the session`, async (t) => {
    const { node, server, advance, drive, clock } = await rig(t);
    const holder = node("holder");
    const other = node("other");
    const lease = await holder.acquire();
    const session = server.entry(KEY)!.session!;
    let lost: { at: number; sessionExpiresAt: number | undefined; error: Error } | undefined;
    lease.onLost((error) => {
      lost = { at: clock.now(), sessionExpiresAt: server.sessionExpiresAt(session), error };
    });
    server.renewFault = fault;
    await advance(TTL_MS);
    assert.ok(lost !== undefined, "the lease was declared lost");
    assert.ok(lost.sessionExpiresAt !== undefined, "the session still existed when the holder stepped down");
    assert.ok(
      lost.at < lost.sessionExpiresAt,
      `lost at ${lost.at}, session expiry at ${lost.sessionExpiresAt}`,
    );
    assert.ok(lost.error instanceof LeaseLostError && lost.error.reason === "deadline", String(lost.error));
    // After stepping down the holder destroys its session: the key goes (behaviour delete), and the lock
    // delay runs from that invalidation, which the other node's acquire waits out.
    await pollUntil(
      "session destroyed",
      async () => (server.sessionExists(session) ? undefined : true),
      2000,
    );
    assert.equal(server.entry(KEY), undefined);
    const invalidatedAt = server.invalidations.find((i) => i.id === session)!.at;
    server.renewFault = "none";
    const next = await drive(other.acquire());
    assert.ok(clock.now() >= invalidatedAt + LOCK_DELAY_MS);
    assert.ok(next.epoch > lease.epoch);
  });
}

test("a crashed holder's session is invalidated at its TTL; the next holder waits the lock delay", async (t) => {
  const { node, server, drive, clock } = await rig(t);
  const frozen = new FakeClock(clock.now()); // the crashed holder's time never moves: it never renews
  const holder = node("holder", { clock: frozen });
  const other = node("other");
  const lease = await holder.acquire();
  const session = server.entry(KEY)!.session!;
  const expiresAt = server.sessionExpiresAt(session)!;
  await rejectsWithCode(other.acquire(), "ELEASEEXISTS");
  const next = await drive(acquireWhenFree(other, 30_000));
  assert.deepEqual(server.invalidations, [{ id: session, at: expiresAt, reason: "ttl" }]);
  assert.ok(clock.now() >= expiresAt + LOCK_DELAY_MS);
  assert.ok(next.epoch > lease.epoch);
});

test("release lets another node acquire at once (no lock delay), and epochs increase", async (t) => {
  const { node, server } = await rig(t);
  const a = node("a", { lockDelayMs: 60_000 });
  const b = node("b", { lockDelayMs: 60_000 });
  const first = await a.acquire();
  const session = server.entry(KEY)!.session!;
  await first.release();
  assert.equal(first.state, "released");
  assert.equal(server.sessionExists(session), false, "the session was destroyed");
  assert.equal(await b.primaryInfo(), null);
  const second = await b.acquire(); // the fake clock does not move: any lock-delay wait would hang here
  assert.ok(second.epoch > first.epoch);
});

test("handoff: the target takes the lease at once, others are refused meanwhile", async (t) => {
  const { node, server } = await rig(t);
  const a = node("a", { lockDelayMs: 60_000 });
  const b = node("b", { lockDelayMs: 60_000 });
  const c = node("c", { lockDelayMs: 60_000 });
  const first = await a.acquire();
  await first.handoff("id-b");
  assert.equal(first.state, "handed-off");
  assert.ok(server.entry(`${KEY}/handoff`) !== undefined);
  const pending = await rejectsWithCode<LeaseHandoffPendingError>(c.acquire(), "ELEASEHANDOFF");
  assert.equal(pending.toNodeId, "id-b");
  const second = await b.acquire();
  assert.ok(second.epoch > first.epoch);
  await pollUntil(
    "marker removed",
    async () => (server.entry(`${KEY}/handoff`) === undefined ? true : undefined),
    2000,
  );
  await rejectsWithCode(c.acquire(), "ELEASEEXISTS");
  await second.handoff("id-c");
  const third = await c.acquire();
  assert.ok(third.epoch > second.epoch);
});

test("an unclaimed handoff lapses with the old holder's session", async (t) => {
  const { node, server, drive } = await rig(t);
  const a = node("a");
  const c = node("c");
  const first = await a.acquire();
  await first.handoff("id-nobody");
  await rejectsWithCode(c.acquire(), "ELEASEHANDOFF");
  const lease = await drive(
    pollUntil(
      "c acquires after the reservation lapsed",
      async () => {
        try {
          return await c.acquire();
        } catch (error) {
          if ((error as { code?: string }).code === "ELEASEHANDOFF") return undefined;
          throw error;
        }
      },
      60_000,
      5,
    ),
  );
  assert.ok(server.invalidations.some((i) => i.reason === "ttl"));
  assert.ok(lease.epoch > first.epoch);
});

test("a session destroyed or a lock released behind the holder's back loses the lease", async (t) => {
  const { node, server, drive } = await rig(t);
  const a = node("a");
  const lease = await a.acquire();
  await fetch(`${server.url}/v1/session/destroy/${server.entry(KEY)!.session}`, { method: "PUT" });
  const error = await rejectsWithCode<LeaseLostError>(lease.renew(), "ELEASELOST");
  assert.equal(error.reason, "expired");

  const b = node("b");
  const second = await drive(b.acquire()); // the destroyed session left a lock delay on the key
  const session = server.entry(KEY)!.session!;
  await fetch(`${server.url}/v1/kv/${KEY}?release=${session}`, { method: "PUT", body: "{}" });
  const taken = await rejectsWithCode<LeaseLostError>(second.renew(), "ELEASELOST");
  assert.equal(taken.reason, "taken");
  assert.equal(second.isHeld(), false);
});

test("watch: blocking reads report the holder and every change", async (t) => {
  const { node } = await rig(t);
  const watcher = node("w");
  const a = node("a");
  const b = node("b");
  const controller = new AbortController();
  t.after(() => controller.abort());
  const seen: Array<PrimaryInfo | null> = [];
  const watching = (async () => {
    for await (const primary of watcher.watch(controller.signal)) seen.push(primary);
  })();
  await pollUntil("initial answer", async () => (seen.length >= 1 ? true : undefined), 2000);
  const first = await a.acquire();
  await pollUntil("a seen", async () => (seen.length >= 2 ? true : undefined), 2000);
  await first.handoff("id-b");
  await pollUntil("handoff seen", async () => (seen.length >= 3 ? true : undefined), 2000);
  const second = await b.acquire();
  await pollUntil("b seen", async () => (seen.length >= 4 ? true : undefined), 2000);
  controller.abort();
  await watching;
  assert.deepEqual(seen, [
    null,
    { ...identity("a"), epoch: first.epoch },
    null,
    { ...identity("b"), epoch: second.epoch },
  ]);
});

test("cluster id: set once at <key>/clusterid, then every node reads the first one", async (t) => {
  const { node, server } = await rig(t);
  const a = node("a");
  const b = node("b");
  assert.equal(await a.clusterId(), null);
  assert.equal(await a.setClusterIdIfAbsent("LFSC0001"), "LFSC0001");
  assert.equal(await b.setClusterIdIfAbsent("LFSC0002"), "LFSC0001");
  assert.equal(await b.clusterId(), "LFSC0001");
  assert.equal(server.entry(`${KEY}/clusterid`)!.value!.toString(), "LFSC0001");
});

test("options follow Consul's limits", () => {
  const base = { url: "http://127.0.0.1:8500", key: KEY, identity: identity("a") };
  assert.throws(() => new ConsulLeaser({ ...base, ttlMs: 5_000 }), { code: "ELEASECONFIG" });
  assert.throws(() => new ConsulLeaser({ ...base, ttlMs: 10_500 }), { code: "ELEASECONFIG" });
  assert.throws(() => new ConsulLeaser({ ...base, lockDelayMs: 61_000 }), { code: "ELEASECONFIG" });
  assert.throws(() => new ConsulLeaser({ ...base, url: "consul:8500" }), { code: "ELEASECONFIG" });
  assert.throws(() => new ConsulLeaser({ ...base, key: "/" }), { code: "ELEASECONFIG" });
  assert.ok(new ConsulLeaser(base));
});

test("a Consul that cannot be reached is reported as ELEASEUNAVAILABLE", async () => {
  const leaser = new ConsulLeaser({ url: "http://127.0.0.1:9", key: KEY, identity: identity("a") });
  await rejectsWithCode(leaser.acquire(), "ELEASEUNAVAILABLE");
  await leaser.close();
});
