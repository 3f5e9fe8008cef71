// The order of a handoff on the receiving side (src/node/lease-role.ts), on a real etcd: the target's
// acquire can succeed through the reservation before the old primary's HANDOFF frame was read — the
// watch shows the old holder gone while the stream still carries the last transactions. The target
// must not act as primary (stop its stream) before that frame; it must when the frame comes; a frame
// that never comes delays it only by the bound, counted from the last transaction it applied (a target
// still applying a backlog from the old primary keeps waiting).
// And on the sending side: the old primary's own watch may report the target holding the lease before
// the answer to its handoff transaction arrives — that is the handoff going through, not a lost lease.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { EtcdLeaser } from "../../src/lease/etcd-leaser.js";
import type { Lease, Leaser, PrimaryInfo } from "../../src/lease/index.js";
import { LeaseRole } from "../../src/node/lease-role.js";
import type { HandoffTarget, RoleHost } from "../../src/node/role-host.js";
import { EtcdCluster } from "../support/etcd.js";
import { freshPrefix, identity, overriding, quietLog } from "../lease/lease-test-kit.js";

let etcd: EtcdCluster;
before(async () => {
  etcd = await EtcdCluster.start({ members: 1, label: "lease-handoff-order" });
});
after(async () => {
  await etcd?.stop();
});

/** A host that records the role changes the role manager asks for. */
class RecordingHost implements RoleHost {
  readonly events: string[] = [];
  primaryAt: number | null = null;
  /** What `replicationProgress` answers (a test moves it as if transactions were applied). */
  progress = 0n;
  replicationProgress(): bigint {
    return this.progress;
  }
  async enterPrimary(lease: Lease): Promise<void> {
    this.primaryAt = performance.now();
    this.events.push(`primary ${lease.epoch} via-handoff=${lease.viaHandoff}`);
  }
  async enterReplica(reason: string): Promise<void> {
    this.events.push(`replica ${reason}`);
  }
  primaryChanged(holder: PrimaryInfo | null): void {
    this.events.push(`follow ${holder?.hostname ?? "none"}`);
  }
  awaitingHandoffFrom(from: PrimaryInfo): void {
    this.events.push(`awaiting HANDOFF from ${from.hostname}`);
  }
  replicaSynced(): boolean {
    return true;
  }
  /** Set on an old primary's host: one connected, caught-up candidate replica to hand off to. */
  offersTarget = false;
  handoffTarget(): HandoffTarget | undefined {
    if (!this.offersTarget) return undefined;
    return { candidate: true, caughtUp: () => true, handOff: async () => undefined };
  }
  localWritersActive(): boolean {
    return false;
  }
  proxyWritesInFlight(): number {
    return 0;
  }
  shutdownTarget(): undefined {
    return undefined;
  }
  async paceHandoff(): Promise<void> {}
  async requestHandoff(): Promise<void> {}
  /** The reasons of every lease loss reported. */
  readonly lost: string[] = [];
  leaseAcquired(): void {}
  leaseLost(reason: string): void {
    this.lost.push(reason);
  }
}

/** An etcd leaser for node `name` on the lease at `key` (TTL 2 s, no lock delay). */
function leaserOn(key: string, name: string): EtcdLeaser {
  return new EtcdLeaser({
    endpoints: etcd.endpoints,
    key,
    identity: identity(name),
    ttlMs: 2000,
    lockDelayMs: 0,
  });
}

/**
 * A started candidate's role manager on `leaser`, stopped after the test. quietMs: the node is inside
 * its demote delay — a handoff must not wait for it either.
 */
async function startRole(
  t: { after: (fn: () => Promise<void>) => void },
  leaser: Leaser,
  host: RoleHost,
  handoffFrameWaitMs?: number,
): Promise<LeaseRole> {
  const role = new LeaseRole({
    leaser,
    host,
    log: quietLog,
    candidate: true,
    promote: false,
    quietMs: 60_000,
    periodicMs: 250,
    handoffFrameWaitMs,
  });
  t.after(() => role.stop());
  await role.start();
  return role;
}

async function setUp(
  t: { after: (fn: () => Promise<void>) => void },
  label: string,
  frameWaitMs: number,
): Promise<{ oldLease: Lease; role: LeaseRole; host: RecordingHost }> {
  const key = freshPrefix(label);
  const old = leaserOn(key, "old");
  t.after(() => old.close());
  const oldLease = await old.acquire();
  const host = new RecordingHost();
  const role = await startRole(t, leaserOn(key, "target"), host, frameWaitMs);
  assert.equal(role.role, "replica");
  role.expectHandoff(); // as `litefs promote` on the target does
  return { oldLease, role, host };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test(
  "a lease handed over is acted on only once the HANDOFF frame was read",
  { timeout: 30_000 },
  async (t) => {
    const { oldLease, role, host } = await setUp(t, "handoff-order", 20_000);
    await oldLease.handoff(identity("target").nodeId);
    // The target's watch sees the holder gone and its acquire takes the reservation; without the frame
    // it must still be a replica a good while later.
    await waitUntil("the target to hold the reservation", () => host.events.includes("follow none"), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(
      host.primaryAt,
      null,
      `acted as primary before the HANDOFF frame: ${host.events.join(", ")}`,
    );
    assert.equal(role.role, "replica");
    // Meanwhile it replicates from the old primary (which sends the frame, or what the target missed
    // and then the frame if the stream broke), whatever the watch says.
    const awaiting = host.events.indexOf("awaiting HANDOFF from old");
    assert.ok(awaiting >= 0, `not told to replicate from the old primary: ${host.events.join(", ")}`);
    assert.deepEqual(
      host.events.slice(awaiting + 1).filter((e) => e.startsWith("follow")),
      [],
      `followed another node while waiting for the frame: ${host.events.join(", ")}`,
    );

    const frameAt = performance.now();
    role.handoffReceived();
    await waitUntil("the target to become primary", () => role.role === "primary", 5_000);
    assert.ok(host.primaryAt !== null && host.primaryAt >= frameAt);
    assert.match(host.events.at(-1) ?? "", /^primary \d+ via-handoff=true$/);
  },
);

test(
  "a HANDOFF frame that never comes delays the target only by the bound",
  { timeout: 30_000 },
  async (t) => {
    const { oldLease, role, host } = await setUp(t, "handoff-noframe", 800);
    const handedAt = performance.now();
    await oldLease.handoff(identity("target").nodeId);
    await waitUntil("the target to become primary", () => role.role === "primary", 10_000);
    t.diagnostic(`primary ${Math.round(host.primaryAt! - handedAt)} ms after the handoff, without a frame`);
    assert.ok(host.primaryAt! - handedAt >= 800, "did not wait for the frame at all");
  },
);

test(
  "a target still applying the old primary's transactions keeps waiting for the frame past the bound",
  { timeout: 30_000 },
  async (t) => {
    const { oldLease, role, host } = await setUp(t, "handoff-backlog", 800);
    const handedAt = performance.now();
    await oldLease.handoff(identity("target").nodeId);
    // Transactions keep arriving for 2.5 s (three times the bound): no acting as primary meanwhile.
    const applying = setInterval(() => host.progress++, 200);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    clearInterval(applying);
    const lastAppliedAt = performance.now();
    assert.equal(
      host.primaryAt,
      null,
      `acted as primary while transactions still arrived: ${host.events.join(", ")}`,
    );
    assert.equal(role.role, "replica");
    // Then nothing more comes: it acts once the bound has passed since the last one.
    await waitUntil("the target to become primary", () => role.role === "primary", 10_000);
    const after = host.primaryAt! - lastAppliedAt;
    t.diagnostic(
      `primary ${Math.round(host.primaryAt! - handedAt)} ms after the handoff, ${Math.round(after)} ms after the last apply`,
    );
    assert.ok(after >= 500, `acted ${Math.round(after)} ms after the last apply`);
  },
);

/**
 * A real etcd leaser whose leases answer `handoff()` only once `gate` resolves (after etcd has
 * recorded it): the coordinator's answer arriving late, as it does under load.
 */
function lateHandoffAnswers(leaser: EtcdLeaser, gate: Promise<void>): Leaser {
  const late = (lease: Lease): Lease =>
    overriding(lease, {
      handoff: async (to: string) => {
        await lease.handoff(to);
        await gate;
      },
    });
  return overriding<Leaser>(leaser, { acquire: async (options) => late(await leaser.acquire(options)) });
}

test(
  "the old primary's watch seeing the target hold the lease before its handoff answer is no loss",
  { timeout: 30_000 },
  async (t) => {
    const key = freshPrefix("handoff-watch-first");
    let answer!: () => void;
    const gate = new Promise<void>((resolve) => (answer = resolve));
    t.after(() => answer());
    const oldLeaser = leaserOn(key, "old");
    t.after(() => oldLeaser.close());
    const host = new RecordingHost();
    host.offersTarget = true;
    const role = await startRole(t, lateHandoffAnswers(oldLeaser, gate), host);
    assert.equal(role.role, "primary");

    // The target takes the reserved lease as soon as etcd has the handoff (refused until then).
    const targetLeaser = leaserOn(key, "target");
    t.after(() => targetLeaser.close());
    const stop = AbortSignal.timeout(10_000);
    const taken = (async (): Promise<Lease> => {
      for (;;) {
        try {
          return await targetLeaser.acquire();
        } catch (err) {
          if (stop.aborted) throw err;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    })();
    const handingOff = role.handOff(identity("target").nodeId);
    await taken;
    // The old node's watch reports the new holder while the old node still waits for its answer.
    await waitUntil(
      "the old node's watch to report the target",
      () => host.events.includes("follow target"),
      10_000,
    );
    answer();
    await handingOff;
    await new Promise((resolve) => setTimeout(resolve, 300)); // a queued second turn would show by now
    assert.equal(role.role, "replica");
    assert.deepEqual(host.lost, [], "a planned handoff was reported as a lost lease");
    assert.deepEqual(
      host.events.filter((e) => e.startsWith("replica ")),
      ["replica handed-off"],
      `turns to replica: ${host.events.join(", ")}`,
    );
  },
);
