// KeptLease's ordering contract, which a real coordinator cannot show: the node stops being primary
// *before* the coordinator hears of a release or handoff, a failed handoff ends the lease, and a loss
// reaches every subscriber once (later subscribers too) and cleans up at the coordinator. The backend is
// scripted; the same code paths run against real etcd in etcd-leaser.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KeptLease, type LeaseBackend } from "../../src/lease/kept-lease.js";
import { LeaseError, LeaseLostError } from "../../src/lease/lease-error.js";
import type { RenewalConfirmation } from "../../src/lease/lease-keeper.js";
import { FakeClock, settle } from "./fake-clock.js";

class ScriptedBackend implements LeaseBackend {
  readonly where = "scripted lease";
  readonly calls: string[] = [];
  renewResult: () => Promise<RenewalConfirmation> = async () => ({ ttlMs: 3000 });
  release = (): Promise<void> => this.#record("release");
  handoff = (to: string): Promise<void> => this.#record(`handoff ${to}`);
  abandon = (): Promise<void> => this.#record("abandon");
  gate: Promise<void> = Promise.resolve();
  failHandoff = false;

  renew(): Promise<RenewalConfirmation> {
    this.calls.push("renew");
    return this.renewResult();
  }

  async #record(call: string): Promise<void> {
    this.calls.push(call);
    await this.gate;
    if (call.startsWith("handoff") && this.failHandoff) throw new LeaseError("ELEASEUNAVAILABLE", "scripted");
  }
}

function keptLease(backend: ScriptedBackend, clock = new FakeClock()) {
  const lease = new KeptLease({
    backend,
    epoch: 7n,
    clock,
    ttlMs: 3000,
    safetyMarginMs: 300,
    grantSentAt: clock.now(),
    grantedTtlMs: 3000,
  });
  return { lease, clock };
}

test("release: not held any more before the coordinator is even asked", async () => {
  const backend = new ScriptedBackend();
  let open!: () => void;
  backend.gate = new Promise((resolve) => (open = resolve));
  const { lease } = keptLease(backend);
  const releasing = lease.release();
  assert.equal(lease.isHeld(), false);
  assert.equal(lease.state, "released");
  assert.deepEqual(backend.calls, ["release"]);
  open();
  await releasing;
  await lease.release(); // idempotent
  assert.deepEqual(backend.calls, ["release"]);
});

test("handoff: stops at once; a handoff that fails ends the lease as lost and cleans up", async () => {
  const backend = new ScriptedBackend();
  backend.failHandoff = true;
  const { lease } = keptLease(backend);
  let lostCalls = 0;
  lease.onLost(() => lostCalls++);
  const handingOff = lease.handoff("id-b");
  assert.equal(lease.isHeld(), false);
  const error = await handingOff.then(
    () => assert.fail("handoff should fail"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof LeaseLostError && error.reason === "handoff-failed");
  assert.equal(lease.state, "lost");
  await settle();
  assert.deepEqual(backend.calls, ["handoff id-b", "abandon"]);
  assert.equal(lostCalls, 0, "the caller learns of a failed handoff from the rejection, not onLost");
});

test("loss: every subscriber hears once, late subscribers too; the coordinator is cleaned up", async () => {
  const backend = new ScriptedBackend();
  backend.renewResult = () => Promise.reject(new LeaseLostError("expired", "scripted"));
  const { lease, clock } = keptLease(backend);
  const heard: string[] = [];
  lease.onLost(() => heard.push("first"));
  const unsubscribe = lease.onLost(() => heard.push("unsubscribed"));
  unsubscribe();
  await clock.advance(1000);
  assert.equal(lease.state, "lost");
  assert.deepEqual(heard, ["first"]);
  lease.onLost(() => heard.push("late"));
  await settle();
  assert.deepEqual(heard, ["first", "late"]);
  assert.deepEqual(backend.calls, ["renew", "abandon"]);
  await lease.release(); // nothing to release any more
  assert.deepEqual(backend.calls, ["renew", "abandon"]);
  await assert.rejects(lease.renew(), { code: "ELEASELOST" });
});

test("the state reads as lost as soon as the deadline has passed, even before any timer ran", async () => {
  const backend = new ScriptedBackend();
  backend.renewResult = () => new Promise(() => undefined);
  const { lease, clock } = keptLease(backend);
  clock.jump(2700);
  assert.equal(lease.state, "lost");
  assert.throws(
    () => lease.assertHeld(),
    (e: Error) => e instanceof LeaseLostError,
  );
});
