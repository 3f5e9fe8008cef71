// A handoff whose target named itself (POST /handoff?to=&hostname=&url=, src/node/lease-role.ts): the
// old primary follows the target as soon as it stepped down and sent HANDOFF — before it enters the
// replica role, and before the coordinator shows the target
// as the holder — and the watch's "no holder" in between does not undo that; once the target holds the
// lease the old node follows it under its real epoch. A named target that never takes the lease is
// followed for one TTL at most. On a real etcd, with two role managers and recording hosts.
//
// Also the route's parsing of the target's identity (src/api/lease-routes.ts).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { type HandoffTargetIdentity, leaseRoutes, requestHandoff } from "../../src/api/lease-routes.js";
import { EtcdLeaser } from "../../src/lease/etcd-leaser.js";
import type { Lease, Leaser, PrimaryInfo } from "../../src/lease/index.js";
import { LeaseRole } from "../../src/node/lease-role.js";
import type { HandoffTarget, RoleHost } from "../../src/node/role-host.js";
import { EtcdCluster } from "../support/etcd.js";
import { freshPrefix, identity, overriding, quietLog } from "../lease/lease-test-kit.js";

let etcd: EtcdCluster;
before(async () => {
  etcd = await EtcdCluster.start({ members: 1, label: "lease-named-target" });
});
after(async () => {
  await etcd?.stop();
});

/** Records what the role manager asks of the node; `target` answers for the handoff's target stream. */
class RecordingHost implements RoleHost {
  readonly events: string[] = [];
  readonly followed: (PrimaryInfo | null)[] = [];
  target: HandoffTarget | undefined;
  async enterPrimary(lease: Lease): Promise<void> {
    this.events.push(`primary ${lease.epoch}`);
  }
  async enterReplica(reason: string): Promise<void> {
    this.events.push(`replica ${reason}`);
  }
  primaryChanged(holder: PrimaryInfo | null): void {
    this.followed.push(holder);
    this.events.push(`follow ${holder === null ? "none" : `${holder.hostname}@${holder.epoch}`}`);
  }
  awaitingHandoffFrom(from: PrimaryInfo): void {
    this.events.push(`awaiting HANDOFF from ${from.hostname}`);
  }
  replicaSynced(): boolean {
    return true;
  }
  handoffTarget(): HandoffTarget | undefined {
    return this.target;
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
  leaseAcquired(): void {}
  leaseLost(): void {}
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A role manager on etcd under `key` as node `name`, stopped after the test. `wrap` may stand in front
 * of its leaser.
 */
async function startRole(
  t: { after: (fn: () => Promise<void>) => void },
  key: string,
  name: string,
  host: RecordingHost,
  wrap: (leaser: EtcdLeaser) => Leaser = (leaser) => leaser,
): Promise<LeaseRole> {
  const role = new LeaseRole({
    leaser: wrap(new EtcdLeaser({ endpoints: etcd.endpoints, key, identity: identity(name), ttlMs: 2000 })),
    host,
    log: quietLog,
    candidate: true,
    promote: false,
    quietMs: 60_000, // the old primary must not race for the lease it handed off
    periodicMs: 250,
  });
  t.after(() => role.stop());
  await role.start();
  return role;
}

const TARGET: HandoffTargetIdentity = { hostname: "target", advertiseURL: identity("target").advertiseURL };

test(
  "the old primary follows a named target at once, and under its real epoch once it holds the lease",
  { timeout: 30_000 },
  async (t) => {
    const key = freshPrefix("named-target");
    const oldHost = new RecordingHost();
    const oldRole = await startRole(t, key, "old", oldHost);
    assert.equal(oldRole.role, "primary");
    const handedEpoch = oldRole.epoch;
    const targetHost = new RecordingHost();
    const targetRole = await startRole(t, key, "target", targetHost);
    assert.equal(targetRole.role, "replica");
    // The target's stream: caught up; its HANDOFF frame is what the target reads.
    oldHost.target = {
      candidate: true,
      caughtUp: () => true,
      handOff: async () => targetRole.handoffReceived(),
    };
    const before = oldHost.events.length;
    await oldRole.handOff(identity("target").nodeId, TARGET);
    const right = oldHost.events.slice(before);
    // Followed before the replica role starts: `.primary` names the target throughout (never blank,
    // which says "this node is primary"), and the replica's first stream goes to the target.
    assert.deepEqual(right, [`follow target@${handedEpoch}`, "replica handed-off"], right.join(", "));
    assert.equal(oldHost.followed.at(-1)?.advertiseURL, TARGET.advertiseURL);

    await waitUntil("the target to become primary", () => targetRole.role === "primary", 10_000);
    const newEpoch = targetRole.epoch;
    assert.ok(newEpoch > handedEpoch);
    await waitUntil(
      "the old node to follow the target under its epoch",
      () => oldHost.events.at(-1) === `follow target@${newEpoch}`,
      10_000,
    );
    // In between, the watch showed no holder (the handoff deleted it): never passed on as "none".
    assert.ok(!oldHost.events.slice(before).includes("follow none"), oldHost.events.join(", "));
    assert.equal(oldRole.holder?.epoch, newEpoch);
  },
);

test(
  "a named target that never takes the lease is followed for one TTL at most",
  { timeout: 30_000 },
  async (t) => {
    const key = freshPrefix("named-target-gone");
    const oldHost = new RecordingHost();
    const oldRole = await startRole(t, key, "old", oldHost);
    assert.equal(oldRole.role, "primary");
    oldHost.target = { candidate: true, caughtUp: () => true, handOff: async () => undefined };
    const before = oldHost.events.length;
    const handedAt = performance.now();
    await oldRole.handOff(identity("target").nodeId, TARGET);
    assert.match(oldHost.events.slice(before).join(", "), /^follow target@\d+, replica handed-off$/);
    await waitUntil("the old node to follow nobody", () => oldHost.events.at(-1) === "follow none", 10_000);
    const ms = performance.now() - handedAt;
    t.diagnostic(`followed the absent target for ${Math.round(ms)} ms (TTL 2000)`);
    assert.ok(
      ms >= 1900,
      `gave the target up after ${Math.round(ms)} ms, before its reservation could lapse`,
    );
    assert.equal(oldRole.holder, null);
  },
);

test(
  "a lagging watch that still reports the old primary after its handoff does not end the following",
  { timeout: 30_000 },
  async (t) => {
    // The old node's watch delivers nothing until the handoff is done: its reports from before it —
    // this node holding the lease — then arrive late, followed by the handoff's deletion.
    let handedOff!: () => void;
    const done = new Promise<void>((resolve) => (handedOff = resolve));
    t.after(() => handedOff());
    const lagging = (leaser: EtcdLeaser): Leaser =>
      overriding<Leaser>(leaser, {
        watch: async function* (signal: AbortSignal) {
          for await (const info of leaser.watch(signal)) {
            await done;
            yield info;
          }
        },
      });
    const key = freshPrefix("named-target-lagging");
    const oldHost = new RecordingHost();
    const oldRole = await startRole(t, key, "old", oldHost, lagging);
    assert.equal(oldRole.role, "primary");
    oldHost.target = { candidate: true, caughtUp: () => true, handOff: async () => undefined };
    const before = oldHost.events.length;
    await oldRole.handOff(identity("target").nodeId, TARGET);
    handedOff();
    // The late reports come in now; the target stays followed (for up to a TTL, as it never comes).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.match(
      oldHost.events.slice(before).join(", "),
      /^follow target@\d+, replica handed-off$/,
      "the late reports of the old holder and of no holder made the node follow nobody",
    );
  },
);

test("POST /handoff passes the target's own hostname and URL on, and refuses malformed ones", async (t) => {
  const calls: { to: string; named: HandoffTargetIdentity | undefined }[] = [];
  const routes = leaseRoutes({
    handOff: async (to, named) => {
      calls.push({ to, named });
      return 7n;
    },
    promote: async () => 1n,
  });
  const server = http.createServer((req, res) => {
    const route = routes.get(`${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`);
    if (route === undefined) res.writeHead(404).end();
    else void route(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const to = "00000000000000ab";

  await requestHandoff(base, to, null, { self: TARGET });
  await requestHandoff(base, to, null);
  assert.deepEqual(calls, [
    { to, named: TARGET },
    { to, named: undefined },
  ]);
  for (const query of [
    "&hostname=target", // URL missing
    "&url=http://target:20202", // hostname missing
    "&hostname=a%20b&url=http://target:20202", // blank in the hostname
    "&hostname=target&url=ftp://target", // not http(s)
    "&hostname=target&url=not-a-url",
  ]) {
    const res = await fetch(`${base}/handoff?to=${to}${query}`, { method: "POST" });
    const body = (await res.json()) as { code?: string };
    assert.equal(res.status, 400, query);
    assert.equal(body.code, "EBADREQUEST", query);
  }
  assert.equal(calls.length, 2, "a malformed identity never reaches the node");
});
