// The etcd leaser against a real one-member etcd (Debian's etcd 3.4, started by the test on free
// loopback ports): acquire, refusal with the holder's identity, renew, expiry after a holder dies,
// partition of the holder (it steps down before anyone else gets the lease), watch, release, handoff,
// fencing epochs, cluster id, and a primary key deleted behind the holder's back.
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { EtcdLeaser } from "../../src/lease/etcd-leaser.js";
import { LeaseExistsError, LeaseHandoffPendingError, LeaseLostError } from "../../src/lease/lease-error.js";
import type { PrimaryInfo } from "../../src/lease/leaser.js";
import { EtcdCluster } from "../support/etcd.js";
import { REPO_ROOT } from "../support/paths.js";
import { TrackedProcess } from "../support/tracked-process.js";
import {
  acquireWhenFree,
  freshPrefix,
  identity,
  LeaserSet,
  pollUntil,
  rejectsWithCode,
} from "./lease-test-kit.js";
import { TcpBlackholeProxy } from "./tcp-blackhole-proxy.js";

const TTL_MS = 2000;
/** So large that a test waiting for it would time out: proves a path does not wait. */
const LOCK_DELAY_NEVER_MS = 600_000;

let etcd: EtcdCluster;
before(async () => {
  etcd = await EtcdCluster.start({ members: 1, label: "lease-etcd1" });
});
after(async () => {
  await etcd?.stop();
});

function leasers(t: { after: (fn: () => Promise<void>) => void }): LeaserSet {
  const set = new LeaserSet();
  t.after(() => set.closeAll());
  return set;
}

test("acquire: the first node holds the lease, a second is refused with the holder's identity", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("acquire");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS });
  const b = set.etcd("b", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS });
  assert.equal(await a.primaryInfo(), null);
  const acquiring = a.acquire();
  await rejectsWithCode(a.acquire(), "ELEASESTATE"); // one acquire at a time per leaser
  const lease = await acquiring;
  assert.ok(lease.isHeld());
  assert.equal(lease.state, "held");
  assert.ok(lease.epoch > 0n);
  assert.ok(lease.expiresAt > lease.renewedAt && lease.expiresAt <= lease.renewedAt + TTL_MS);
  const refused = await rejectsWithCode<LeaseExistsError>(b.acquire(), "ELEASEEXISTS");
  assert.ok(refused instanceof LeaseExistsError);
  assert.deepEqual(refused.primary, { ...identity("a"), epoch: lease.epoch });
  assert.deepEqual(await b.primaryInfo(), { ...identity("a"), epoch: lease.epoch });
  await rejectsWithCode(a.acquire(), "ELEASESTATE");
});

test("renew: explicit and automatic renewals move the deadline forward", async (t) => {
  const set = leasers(t);
  const a = set.etcd("a", { endpoints: etcd.endpoints, key: freshPrefix("renew"), ttlMs: TTL_MS });
  const lease = await a.acquire();
  const firstDeadline = lease.expiresAt;
  await lease.renew();
  assert.ok(lease.expiresAt > firstDeadline);
  // Held well past one TTL by the automatic renewals alone.
  await new Promise((resolve) => setTimeout(resolve, TTL_MS * 1.6));
  assert.ok(lease.isHeld());
  assert.ok(lease.expiresAt > firstDeadline + TTL_MS);
});

test("expiry: when the holder dies, another node gets the lease after the TTL and the lock delay", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("expiry");
  const lockDelayMs = 500;
  const child = await TrackedProcess.spawn({
    label: "etcd lease holder",
    command: process.execPath,
    args: [
      path.join(REPO_ROOT, "dist/test/lease/etcd-holder-child.js"),
      JSON.stringify({ endpoints: etcd.endpoints, key, name: "dying", ttlMs: TTL_MS }),
    ],
  });
  t.after(() => child.stop());
  const line = await child.waitForLine(/^acquired \d+$/, 10_000);
  const childEpoch = BigInt(line.split(" ")[1]);
  const b = set.etcd("b", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs });
  await rejectsWithCode(b.acquire(), "ELEASEEXISTS");
  child.killGroup();
  await child.exit;
  const killedAt = performance.now();
  const lease = await acquireWhenFree(b, TTL_MS + lockDelayMs + 5_000);
  // The holder was last renewed before the kill, so the key lasted < TTL after it; the lock delay
  // counts from when b saw it gone.
  assert.ok(performance.now() - killedAt >= lockDelayMs);
  assert.ok(lease.epoch > childEpoch);
});

test("partition: a holder cut off from etcd steps down before anyone else can acquire", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("partition");
  const proxy = await TcpBlackholeProxy.start(Number(new URL(etcd.endpoints[0]).port));
  t.after(() => proxy.close());
  const holder = set.etcd("holder", { endpoints: [proxy.url], key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const other = set.etcd("other", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const lease = await holder.acquire();
  let lostAt: number | undefined;
  let lostError: Error | undefined;
  lease.onLost((error) => {
    lostAt = performance.now();
    lostError = error;
  });
  await lease.renew();
  proxy.blackhole();
  const otherLease = await acquireWhenFree(other, TTL_MS + 5_000);
  const acquiredAt = performance.now();
  assert.ok(lostAt !== undefined, "the holder must have declared the loss before the other node acquired");
  assert.ok(lostAt < acquiredAt);
  assert.ok(lostError instanceof LeaseLostError && lostError.reason === "deadline", String(lostError));
  assert.equal(lease.isHeld(), false);
  assert.equal(lease.state, "lost");
  assert.ok(otherLease.epoch > lease.epoch);
  assert.throws(
    () => lease.assertHeld(),
    (e: Error) => e instanceof LeaseLostError,
  );
});

test("release lets another node acquire at once, without the lock delay", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("release");
  const a = set.etcd("a", {
    endpoints: etcd.endpoints,
    key,
    ttlMs: TTL_MS,
    lockDelayMs: LOCK_DELAY_NEVER_MS,
  });
  const b = set.etcd("b", {
    endpoints: etcd.endpoints,
    key,
    ttlMs: TTL_MS,
    lockDelayMs: LOCK_DELAY_NEVER_MS,
  });
  const first = await a.acquire();
  let lostCalled = false;
  first.onLost(() => (lostCalled = true));
  await first.release();
  assert.equal(first.state, "released");
  assert.equal(first.isHeld(), false);
  await rejectsWithCode(first.renew(), "ELEASESTATE");
  const second = await b.acquire();
  assert.ok(second.epoch > first.epoch);
  assert.equal(lostCalled, false);
});

test("handoff: the target acquires at once, others are refused meanwhile, epochs keep increasing", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("handoff");
  const options = { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: LOCK_DELAY_NEVER_MS };
  const a = set.etcd("a", options);
  const b = set.etcd("b", options);
  const c = set.etcd("c", options);
  const first = await a.acquire();
  await first.handoff(b.identity.nodeId);
  assert.equal(first.state, "handed-off");
  assert.equal(first.isHeld(), false);
  assert.equal(await c.primaryInfo(), null);
  const pending = await rejectsWithCode<LeaseHandoffPendingError>(c.acquire(), "ELEASEHANDOFF");
  assert.equal(pending.toNodeId, b.identity.nodeId);
  const second = await b.acquire();
  assert.ok(second.epoch > first.epoch);
  assert.deepEqual(await c.primaryInfo(), { ...identity("b"), epoch: second.epoch });
  // And back again: the marker was consumed, so only a new handoff lets a in.
  await rejectsWithCode(a.acquire(), "ELEASEEXISTS");
  await second.handoff(a.identity.nodeId);
  const third = await a.acquire();
  assert.ok(third.epoch > second.epoch);
  await rejectsWithCode(first.handoff(c.identity.nodeId), "ELEASESTATE");
});

test("vacancyCheck: asked only when the lease is free and not handed over; false refuses, writing nothing", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("vacancy-check");
  const options = { endpoints: etcd.endpoints, key, ttlMs: TTL_MS };
  const a = set.etcd("a", options);
  const b = set.etcd("b", options);
  let asked = 0;
  const refuse = async (): Promise<boolean> => {
    asked++;
    return false;
  };
  await rejectsWithCode(a.acquire({ vacancyCheck: refuse }), "ELEASERANKED");
  assert.equal(asked, 1);
  assert.equal(await b.primaryInfo(), null, "a refused acquire wrote the primary key");
  const held = await b.acquire();
  await rejectsWithCode(a.acquire({ vacancyCheck: refuse }), "ELEASEEXISTS");
  assert.equal(asked, 1, "asked while another node held the lease");
  // A lease handed to this node is taken whatever the ranking says.
  await held.handoff(a.identity.nodeId);
  const handed = await a.acquire({ vacancyCheck: refuse });
  assert.equal(asked, 1, "asked for a lease handed to this node");
  assert.ok(handed.isHeld());
  await handed.release();
  const taken = await b.acquire({ vacancyCheck: async () => true });
  assert.ok(taken.isHeld());
});

/** The ids of every etcd lease alive now. */
async function etcdLeaseIds(): Promise<Set<string>> {
  const res = await fetch(`${etcd.endpoints[0]}/v3/lease/leases`, { method: "POST", body: "{}" });
  const body = (await res.json()) as { leases?: { ID: string }[] };
  return new Set((body.leases ?? []).map((l) => l.ID));
}

test("likelyFree: the grant goes with the first read; a refused acquire gives it back", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("likely-free");
  // A TTL far above the test's waits: a grant that was not revoked would still be there at the end.
  const options = { endpoints: etcd.endpoints, key, ttlMs: 30_000, lockDelayMs: LOCK_DELAY_NEVER_MS };
  const a = set.etcd("a", options);
  const b = set.etcd("b", options);
  const c = set.etcd("c", options);
  const first = await a.acquire({ likelyFree: true });
  const before = await etcdLeaseIds();
  for (let i = 0; i < 3; i++) await rejectsWithCode(b.acquire({ likelyFree: true }), "ELEASEEXISTS");
  await first.handoff(b.identity.nodeId);
  await rejectsWithCode(c.acquire({ likelyFree: true }), "ELEASEHANDOFF");
  await pollUntil(
    "the refused attempts' grants revoked",
    async () => ([...(await etcdLeaseIds())].every((id) => before.has(id)) ? true : undefined),
    5_000,
  );
  // The handed-over lease taken with the early grant: held, renewable, a later epoch.
  const second = await b.acquire({ likelyFree: true });
  assert.equal(second.viaHandoff, true);
  assert.ok(second.epoch > first.epoch);
  await second.renew();
  assert.deepEqual(await c.primaryInfo(), { ...identity("b"), epoch: second.epoch });
  await second.release();
});

test("likelyFree across a lock delay: the early grant is given back and a fresh one holds the lease", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("likely-free-delay");
  const options = { endpoints: etcd.endpoints, key, ttlMs: 30_000, lockDelayMs: 800 };
  const a = set.etcd("a", options);
  const b = set.etcd("b", options);
  await a.acquire();
  // The holder's etcd lease revoked behind its back: P/primary goes, P/last still says "holding", as
  // after a crash, so the next acquirer serves the lock delay.
  const range = await fetch(`${etcd.endpoints[0]}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: Buffer.from(`${key}/primary`).toString("base64") }),
  });
  const held = ((await range.json()) as { kvs: { lease: string }[] }).kvs[0].lease;
  await fetch(`${etcd.endpoints[0]}/v3/lease/revoke`, { method: "POST", body: JSON.stringify({ ID: held }) });
  const before = await etcdLeaseIds();
  const started = performance.now();
  const lease = await b.acquire({ likelyFree: true });
  assert.ok(performance.now() - started >= 800, "the lock delay was not served");
  await lease.renew();
  const leaseIdNow = (
    (await (
      await fetch(`${etcd.endpoints[0]}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: Buffer.from(`${key}/primary`).toString("base64") }),
      })
    ).json()) as { kvs: { lease: string }[] }
  ).kvs[0].lease;
  // Only the lease that holds P/primary is new: the grant sent before the wait was revoked.
  await pollUntil(
    "the early grant revoked",
    async () => {
      const added = [...(await etcdLeaseIds())].filter((id) => !before.has(id));
      return added.length === 1 && added[0] === leaseIdNow ? true : undefined;
    },
    5_000,
  );
  await lease.release();
});

test("handoffExpected: the target takes the reserved lease in one transaction after its watch saw the handoff", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("handoff-noread");
  const proxy = await TcpBlackholeProxy.start(Number(new URL(etcd.endpoints[0]).port));
  t.after(() => proxy.close());
  const a = set.etcd("a", {
    endpoints: etcd.endpoints,
    key,
    ttlMs: TTL_MS,
    lockDelayMs: LOCK_DELAY_NEVER_MS,
  });
  const b = set.etcd("b", { endpoints: [proxy.url], key, ttlMs: TTL_MS, lockDelayMs: LOCK_DELAY_NEVER_MS });
  assert.equal(await b.setClusterIdIfAbsent("LFSC0007"), "LFSC0007");
  const first = await a.acquire();
  const stop = new AbortController();
  t.after(() => stop.abort());
  const seen: (string | null)[] = [];
  const watching = (async () => {
    for await (const holder of b.watch(stop.signal)) seen.push(holder?.hostname ?? null);
  })();
  await pollUntil("b's watch to see a", async () => seen.length > 0 || undefined, 5000, 5);
  await first.handoff(b.identity.nodeId);
  await pollUntil("b's watch to see the handoff", async () => seen.at(-1) === null || undefined, 5000, 5);

  const before = proxy.requests.length;
  const lease = await b.acquire({ likelyFree: true, handoffExpected: true });
  const calls = proxy.requests.slice(before);
  assert.ok(lease.isHeld() && lease.viaHandoff && lease.epoch > first.epoch);
  assert.deepEqual(
    calls.filter((c) => c.startsWith("POST /v3/kv/")),
    ["POST /v3/kv/txn"],
    `calls: ${calls.join(", ")}`,
  );
  assert.deepEqual(await a.primaryInfo(), { ...identity("b"), epoch: lease.epoch });
  // The transaction brought the cluster id along: no read for it either.
  assert.equal(await b.clusterId(), "LFSC0007");
  assert.equal(proxy.requests.slice(before).filter((c) => c === "POST /v3/kv/range").length, 0);

  // Expected but not reserved for it (the lease was released, not handed over): the one transaction
  // fails and the usual read-then-transaction takes the lease; nothing is left behind.
  await pollUntil("b's watch to see itself", async () => seen.at(-1) === "b" || undefined, 5000, 5);
  await lease.release();
  await pollUntil("b's watch to see the release", async () => seen.at(-1) === null || undefined, 5000, 5);
  const again = await b.acquire({ likelyFree: true, handoffExpected: true });
  assert.ok(again.isHeld() && !again.viaHandoff && again.epoch > lease.epoch);
  stop.abort();
  await watching;
});

test("an unclaimed handoff reservation lapses within a TTL", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("handoff-lapse");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const c = set.etcd("c", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const first = await a.acquire();
  await first.handoff("id-nobody");
  await rejectsWithCode(c.acquire(), "ELEASEHANDOFF");
  const lease = await acquireWhenFree(c, TTL_MS + 5_000);
  assert.ok(lease.epoch > first.epoch);
});

test("epochs strictly increase across many holders", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("epochs");
  const nodes = ["a", "b", "c"].map((n) => set.etcd(n, { endpoints: etcd.endpoints, key, ttlMs: TTL_MS }));
  let previous = 0n;
  for (let i = 0; i < 9; i++) {
    const lease = await nodes[i % 3].acquire();
    assert.ok(lease.epoch > previous, `epoch ${lease.epoch} after ${previous}`);
    previous = lease.epoch;
    if (i % 2 === 0) await lease.release();
    else await lease.handoff(nodes[(i + 1) % 3].identity.nodeId);
  }
});

test("watch: sees the current primary and every change of primary", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("watch");
  const options = { endpoints: etcd.endpoints, key, ttlMs: TTL_MS };
  const watcher = set.etcd("w", options);
  const a = set.etcd("a", options);
  const b = set.etcd("b", options);
  const controller = new AbortController();
  t.after(() => controller.abort());
  const seen: Array<PrimaryInfo | null> = [];
  const watching = (async () => {
    for await (const primary of watcher.watch(controller.signal)) seen.push(primary);
  })();
  await pollUntil("initial watch answer", async () => (seen.length >= 1 ? true : undefined), 5000);
  const first = await a.acquire();
  await pollUntil("a seen", async () => (seen.length >= 2 ? true : undefined), 5000);
  await first.handoff(b.identity.nodeId);
  const second = await b.acquire();
  await pollUntil("b seen", async () => (seen.at(-1)?.hostname === "b" ? true : undefined), 5000);
  await second.release();
  await pollUntil("release seen", async () => (seen.length >= 5 ? true : undefined), 5000);
  controller.abort();
  await watching;
  assert.deepEqual(seen, [
    null,
    { ...identity("a"), epoch: first.epoch },
    null,
    { ...identity("b"), epoch: second.epoch },
    null,
  ]);
});

test("a holder whose key is deleted behind its back loses the lease at its next renewal", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("taken");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS });
  const lease = await a.acquire();
  const lost = new Promise<Error>((resolve) => lease.onLost(resolve));
  const response = await fetch(`${etcd.endpoints[0]}/v3/kv/deleterange`, {
    method: "POST",
    body: JSON.stringify({ key: Buffer.from(`${key}/primary`).toString("base64") }),
  });
  assert.equal(response.status, 200);
  await rejectsWithCode(lease.renew(), "ELEASELOST");
  const error = await lost;
  assert.ok(error instanceof LeaseLostError && error.reason === "taken", String(error));
  assert.equal(lease.isHeld(), false);
});

test("cluster id: set once, then every node reads the first one", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("clusterid");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key });
  const b = set.etcd("b", { endpoints: etcd.endpoints, key });
  assert.equal(await a.clusterId(), null);
  assert.equal(await a.setClusterIdIfAbsent("LFSC0001"), "LFSC0001");
  assert.equal(await b.setClusterIdIfAbsent("LFSC0002"), "LFSC0001");
  assert.equal(await b.clusterId(), "LFSC0001");
  await rejectsWithCode(b.setClusterIdIfAbsent(""), "ELEASECONFIG");
});

test("cluster id right after an acquire: the acquire's own read answers it, once", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("clusterid-acquire");
  const proxy = await TcpBlackholeProxy.start(Number(new URL(etcd.endpoints[0]).port));
  t.after(() => proxy.close());
  const writer = set.etcd("writer", { endpoints: etcd.endpoints, key });
  assert.equal(await writer.setClusterIdIfAbsent("LFSC0042"), "LFSC0042");
  const a = set.etcd("a", { endpoints: [proxy.url], key, ttlMs: TTL_MS, lockDelayMs: 0 });
  await a.acquire();
  // etcd unreachable from now on: only the value the acquire read can answer.
  proxy.blackhole();
  assert.equal(await a.clusterId(), "LFSC0042");
  // Used once: the next question goes to etcd (which does not answer here).
  await assert.rejects(
    Promise.race([
      a.clusterId(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no answer")), 500)),
    ]),
    /no answer|ELEASE/,
  );
});

test("prepareAcquire: the next likely-free acquire uses the grant asked before, while it is fresh", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("pregrant");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const b = set.etcd("b", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });
  const held = await b.acquire();

  const preparedAt = performance.now();
  a.prepareAcquire();
  // An acquire that does not expect a free lease (a periodic attempt) leaves the grant alone.
  await rejectsWithCode(a.acquire(), "ELEASEEXISTS");
  await held.release();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const acquiredAt = performance.now();
  const lease = await a.acquire({ likelyFree: true });
  // The deadline runs from the prepared grant's send time, before this acquire began.
  assert.ok(lease.renewedAt >= preparedAt && lease.renewedAt < acquiredAt, `${lease.renewedAt}`);
  assert.ok(lease.isHeld());
  await lease.release();

  // A grant older than a third of the TTL is not used: the acquire grants afresh.
  a.prepareAcquire();
  await new Promise((resolve) => setTimeout(resolve, TTL_MS / 3 + 100));
  const lateAt = performance.now();
  const late = await a.acquire({ likelyFree: true });
  assert.ok(late.renewedAt >= lateAt, "a stale prepared grant was used");
  assert.ok(late.isHeld());
});

test("prepareAcquire again while a handoff is on its way: a grant older than a quarter of the TTL is replaced", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("pregrant-refresh");
  const a = set.etcd("a", { endpoints: etcd.endpoints, key, ttlMs: TTL_MS, lockDelayMs: 0 });

  // Asked again at once: the first grant stays (its send time starts the deadline).
  const firstAt = performance.now();
  a.prepareAcquire();
  const againAt = performance.now();
  a.prepareAcquire();
  const kept = await a.acquire({ likelyFree: true });
  assert.ok(kept.renewedAt >= firstAt && kept.renewedAt < againAt, `${kept.renewedAt}`);
  await kept.release();

  // Asked again once it is older than a quarter of the TTL: replaced, and the acquire — after the
  // first one would have gone stale (a third) — uses the replacement instead of granting afresh.
  a.prepareAcquire();
  await new Promise((resolve) => setTimeout(resolve, TTL_MS / 4 + 50));
  const replacedAt = performance.now();
  a.prepareAcquire();
  await new Promise((resolve) => setTimeout(resolve, TTL_MS / 3 - TTL_MS / 4));
  const acquiredAt = performance.now();
  const lease = await a.acquire({ likelyFree: true });
  assert.ok(
    lease.renewedAt >= replacedAt && lease.renewedAt < acquiredAt,
    `deadline from ${lease.renewedAt}: replaced at ${replacedAt}, acquired at ${acquiredAt}`,
  );
  assert.ok(lease.isHeld());
});

test("close releases a held lease and refuses further calls", async (t) => {
  const set = leasers(t);
  const key = freshPrefix("close");
  const a = new EtcdLeaser({ endpoints: etcd.endpoints, key, identity: identity("a"), ttlMs: TTL_MS });
  const b = set.etcd("b", {
    endpoints: etcd.endpoints,
    key,
    ttlMs: TTL_MS,
    lockDelayMs: LOCK_DELAY_NEVER_MS,
  });
  const lease = await a.acquire();
  await a.close();
  assert.equal(lease.state, "released");
  await rejectsWithCode(a.acquire(), "ELEASECLOSED");
  await b.acquire();
});

test("options are checked: TTL in whole seconds, endpoints are URLs, a prefix is given", () => {
  const base = { endpoints: ["http://127.0.0.1:1"], key: "/k", identity: identity("a") };
  assert.throws(() => new EtcdLeaser({ ...base, ttlMs: 1500 }), { code: "ELEASECONFIG" });
  assert.throws(() => new EtcdLeaser({ ...base, endpoints: [] }), { code: "ELEASECONFIG" });
  assert.throws(() => new EtcdLeaser({ ...base, endpoints: ["127.0.0.1:2379"] }), { code: "ELEASECONFIG" });
  assert.throws(() => new EtcdLeaser({ ...base, key: "/" }), { code: "ELEASECONFIG" });
});

test("an unreachable etcd is reported as ELEASEUNAVAILABLE", async (t) => {
  const set = leasers(t);
  const a = set.etcd("a", { endpoints: ["http://127.0.0.1:9"], key: freshPrefix("down"), ttlMs: TTL_MS });
  const error = await rejectsWithCode(a.acquire(), "ELEASEUNAVAILABLE");
  assert.match(error.message, /127\.0\.0\.1:9/);
});
