// The static lease: the configured candidate is primary for good; every other node is told who it is.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseExistsError } from "../../src/lease/lease-error.js";
import type { PrimaryInfo } from "../../src/lease/leaser.js";
import { STATIC_LEASE_EPOCH, StaticLeaser } from "../../src/lease/static-leaser.js";
import { FakeClock } from "./fake-clock.js";
import { identity, rejectsWithCode } from "./lease-test-kit.js";

test("the candidate holds a lease that never expires and cannot be handed off", async () => {
  const clock = new FakeClock();
  const leaser = new StaticLeaser({ identity: identity("primary"), candidate: true, clock });
  const lease = await leaser.acquire();
  assert.equal(lease.epoch, STATIC_LEASE_EPOCH);
  assert.equal(lease.expiresAt, Number.POSITIVE_INFINITY);
  assert.equal(lease.renewedAt, clock.now());
  clock.jump(365 * 24 * 3600 * 1000);
  assert.ok(lease.isHeld());
  await lease.renew();
  await rejectsWithCode(leaser.acquire(), "ELEASESTATE");
  await rejectsWithCode(lease.handoff("id-other"), "ELEASENOTSUPPORTED");
  assert.equal(lease.state, "held");
  await lease.release();
  assert.equal(lease.state, "released");
  assert.throws(() => lease.assertHeld(), { code: "ELEASESTATE" });
  const again = await leaser.acquire();
  assert.ok(again.isHeld());
  await leaser.close();
  assert.equal(again.state, "released");
  await rejectsWithCode(leaser.acquire(), "ELEASECLOSED");
});

test("a replica is refused with the configured primary, and sees it as the primary", async () => {
  const primary = { nodeId: "id-replica", hostname: "primary", advertiseURL: "http://primary:20202" };
  const leaser = new StaticLeaser({ identity: primary, candidate: false });
  const refused = await rejectsWithCode<LeaseExistsError>(leaser.acquire(), "ELEASEEXISTS");
  const expected: PrimaryInfo = {
    hostname: "primary",
    advertiseURL: "http://primary:20202",
    nodeId: undefined,
    epoch: 1n,
  };
  assert.deepEqual(refused.primary, expected);
  assert.deepEqual(await leaser.primaryInfo(), expected);
  const controller = new AbortController();
  const seen: Array<PrimaryInfo | null> = [];
  const watching = (async () => {
    for await (const info of leaser.watch(controller.signal)) seen.push(info);
  })();
  await new Promise((resolve) => setTimeout(resolve, 20));
  controller.abort();
  await watching;
  assert.deepEqual(seen, [expected]);
  await leaser.close();
});

test("the cluster id is set once (in this process only)", async () => {
  const leaser = new StaticLeaser({ identity: identity("p"), candidate: true });
  assert.equal(await leaser.clusterId(), null);
  assert.equal(await leaser.setClusterIdIfAbsent("LFSC1"), "LFSC1");
  assert.equal(await leaser.setClusterIdIfAbsent("LFSC2"), "LFSC1");
  await rejectsWithCode(leaser.setClusterIdIfAbsent(""), "ELEASECONFIG");
  await leaser.close();
});
