// The LeaseKeeper on a fake clock against a scripted coordinator: when renewals hang, fail, answer
// late or say the lease is gone, the lease is declared lost at (send time of the last successful
// renewal) + TTL − margin — strictly before the coordinator could expire it — and a property test checks
// that over random renewal histories the keeper never claims the lease while the coordinator could
// already have given it away, and never loses it while renewals keep succeeding in time.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { LeaseError, LeaseLostError } from "../../src/lease/lease-error.js";
import {
  LeaseKeeper,
  type LeaseKeeperOptions,
  type RenewalConfirmation,
} from "../../src/lease/lease-keeper.js";
import { FakeClock } from "./fake-clock.js";

const TTL = 3000;
const MARGIN = 300;

type Step =
  | { kind: "ok"; afterMs: number; ttlMs?: number; processedAfterMs?: number }
  | { kind: "fail"; afterMs: number }
  | { kind: "gone"; afterMs: number }
  | { kind: "hang" } // never answers; rejects only when its signal aborts
  | { kind: "late"; afterMs: number }; // ignores its signal and answers success after afterMs

/**
 * A coordinator that answers renewals per a script (the last step repeats) and records when it would
 * expire the lease: processing time of the latest successful renewal + the TTL it applied.
 */
class ScriptedCoordinator {
  readonly clock: FakeClock;
  readonly sentAt: number[] = [];
  readonly aborted: number[] = [];
  expiresAt: number;
  #steps: Step[];

  constructor(clock: FakeClock, steps: Step[], grantSentAt: number) {
    this.clock = clock;
    this.#steps = [...steps];
    this.expiresAt = grantSentAt + TTL; // processed no earlier than sent: the earliest possible expiry
  }

  renew = (signal: AbortSignal): Promise<RenewalConfirmation> => {
    const step = this.#steps.length > 1 ? this.#steps.shift()! : this.#steps[0];
    const sentAt = this.clock.now();
    this.sentAt.push(sentAt);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.aborted.push(this.clock.now());
        if (step.kind !== "late") reject(signal.reason as Error);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      if (step.kind === "hang") return;
      if (step.kind === "ok" || step.kind === "late") {
        // A success was processed some time between sending and answering; the TTL restarts then.
        const applied = step.kind === "ok" ? (step.ttlMs ?? TTL) : TTL;
        const processedAt =
          sentAt + (step.kind === "ok" ? Math.min(step.processedAfterMs ?? 0, step.afterMs) : 0);
        this.clock.setTimer(processedAt - sentAt, () => {
          this.expiresAt = Math.max(this.expiresAt, processedAt + applied);
        });
      }
      this.clock.setTimer(step.afterMs, () => {
        signal.removeEventListener("abort", onAbort);
        if (step.kind === "ok") resolve({ ttlMs: step.ttlMs ?? TTL });
        else if (step.kind === "late") resolve({ ttlMs: TTL });
        else if (step.kind === "fail") reject(new LeaseError("ELEASEUNAVAILABLE", "scripted failure"));
        else if (!signal.aborted) reject(new LeaseLostError("expired", "scripted: lease gone"));
      });
    });
  };
}

function startKeeper(steps: Step[], options: Partial<LeaseKeeperOptions> = {}) {
  const clock = new FakeClock();
  const coordinator = new ScriptedCoordinator(clock, steps, clock.now());
  const losses: Array<{ at: number; error: LeaseLostError }> = [];
  const keeper = new LeaseKeeper({
    clock,
    ttlMs: TTL,
    safetyMarginMs: MARGIN,
    grantSentAt: clock.now(),
    grantedTtlMs: TTL,
    renew: coordinator.renew,
    onLost: (error) => losses.push({ at: clock.now(), error }),
    where: "test lease",
    ...options,
  });
  keeper.start();
  return { clock, coordinator, keeper, losses };
}

test("renews every TTL/3 and moves the deadline to send time + TTL − margin", async () => {
  const { clock, coordinator, keeper, losses } = startKeeper([{ kind: "ok", afterMs: 20 }]);
  const start = clock.now();
  assert.equal(keeper.deadline, start + TTL - MARGIN);
  await clock.advance(10 * TTL);
  assert.equal(losses.length, 0);
  assert.ok(keeper.isValid());
  assert.equal(coordinator.sentAt[0], start + TTL / 3);
  for (let i = 1; i < coordinator.sentAt.length; i++) {
    assert.equal(coordinator.sentAt[i] - coordinator.sentAt[i - 1], TTL / 3);
  }
  // The last attempt may still be in flight: the latest *completed* one set the deadline.
  assert.ok(keeper.renewedAt >= coordinator.sentAt.at(-2)! && coordinator.sentAt.includes(keeper.renewedAt));
  assert.equal(keeper.deadline, keeper.renewedAt + TTL - MARGIN);
});

test("a hanging renewal: lost at the last successful send + TTL − margin, before the coordinator expires it", async () => {
  const { clock, coordinator, keeper, losses } = startKeeper([{ kind: "ok", afterMs: 10 }, { kind: "hang" }]);
  await clock.advance(4 * TTL);
  assert.equal(losses.length, 1);
  const lastSuccessSentAt = coordinator.sentAt[0];
  assert.equal(losses[0].at, lastSuccessSentAt + TTL - MARGIN);
  assert.ok(losses[0].at < coordinator.expiresAt);
  assert.equal(losses[0].error.reason, "deadline");
  assert.equal(losses[0].error.code, "ELEASELOST");
  assert.equal(keeper.isValid(), false);
  assert.equal(keeper.state, "lost");
  assert.ok(coordinator.aborted.length >= 1, "the hanging request was aborted");
  assert.equal(clock.pendingTimers, 0, "nothing left scheduled after the loss");
});

test("failing renewals are retried until the deadline, then the lease is lost with the last failure", async () => {
  const { clock, coordinator, losses } = startKeeper([{ kind: "fail", afterMs: 5 }]);
  await clock.advance(2 * TTL);
  assert.equal(losses.length, 1);
  assert.equal(losses[0].at, 1000 + TTL - MARGIN);
  assert.ok(coordinator.sentAt.length > 3, `retried (${coordinator.sentAt.length} attempts)`);
  assert.ok(losses[0].error.cause instanceof LeaseError);
  assert.match(losses[0].error.message, /scripted failure/);
});

test("a renewal that succeeds after failures keeps the lease", async () => {
  const steps: Step[] = [
    { kind: "fail", afterMs: 5 },
    { kind: "fail", afterMs: 5 },
    { kind: "hang" },
    { kind: "ok", afterMs: 5 },
  ];
  // Attempts at +1000 (fails), +1255 (fails), +1510 (hangs, cut after 300 ms), +2060 (succeeds):
  // all before the deadline at +2700.
  const { clock, coordinator, keeper, losses } = startKeeper(steps, { attemptTimeoutMs: 300 });
  await clock.advance(5 * TTL);
  assert.equal(losses.length, 0);
  assert.ok(keeper.isValid());
  assert.ok(coordinator.aborted.length === 1, "the hanging attempt was cut at its timeout");
});

test("every failed renewal of a held lease is reported (the metric) with the time left, successes are not", async () => {
  const failures: unknown[] = [];
  const left: number[] = [];
  const steps: Step[] = [
    { kind: "ok", afterMs: 5 },
    { kind: "fail", afterMs: 5 },
    { kind: "hang" },
    { kind: "ok", afterMs: 5 },
  ];
  const { clock, keeper, losses } = startKeeper(steps, {
    attemptTimeoutMs: 300,
    onRenewFailed: (error, msLeft) => {
      failures.push(error);
      left.push(msLeft);
    },
  });
  await clock.advance(4 * TTL);
  assert.equal(losses.length, 0);
  assert.ok(keeper.isValid());
  assert.equal(failures.length, 2, "the scripted failure and the attempt cut at its timeout");
  assert.match(String(failures[0]), /scripted failure/);
  assert.match(String(failures[1]), /no answer within 300 ms/);
  // Renewed when sent at +1000: deadline +3700. The failure answered at +2005, the hang cut at +2555.
  assert.deepEqual(left, [1695, 1145]);
});

test("an answer that arrives after the deadline does not bring the lease back", async () => {
  const { clock, keeper, losses } = startKeeper([{ kind: "late", afterMs: 5 * TTL }]);
  await clock.advance(10 * TTL);
  assert.equal(losses.length, 1);
  assert.equal(keeper.isValid(), false);
  await assert.rejects(keeper.renewNow(), { code: "ELEASELOST" });
});

test("the coordinator saying the lease is gone loses it at once", async () => {
  const { clock, keeper, losses } = startKeeper([{ kind: "gone", afterMs: 5 }]);
  await clock.advance(TTL / 3 + 10);
  assert.equal(losses.length, 1);
  assert.equal(losses[0].error.reason, "expired");
  assert.equal(losses[0].at, 1000 + TTL / 3 + 5);
  assert.equal(keeper.isValid(), false);
});

test("a shorter TTL from the coordinator shortens the deadline; a longer one is capped at the requested TTL", async () => {
  const shorter = startKeeper([{ kind: "ok", afterMs: 1, ttlMs: 2000 }]);
  await shorter.clock.advance(TTL / 3 + 1);
  assert.equal(
    shorter.keeper.deadline,
    Math.max(1000 + TTL - MARGIN, shorter.coordinator.sentAt[0] + 2000 - MARGIN),
  );
  const longer = startKeeper([{ kind: "ok", afterMs: 1, ttlMs: 60_000 }]);
  await longer.clock.advance(TTL / 3 + 1);
  assert.equal(longer.keeper.deadline, longer.coordinator.sentAt[0] + TTL - MARGIN);
});

test("isValid() enforces the deadline even when the timer has not fired (blocked event loop)", async () => {
  const { clock, keeper, losses } = startKeeper([{ kind: "hang" }]);
  clock.jump(TTL - MARGIN - 1);
  assert.equal(keeper.isValid(), true);
  clock.jump(1);
  assert.equal(keeper.isValid(), false);
  assert.equal(losses.length, 1, "declared lost by the check itself");
  assert.equal(losses[0].error.reason, "deadline");
});

test("stop() ends renewals without declaring a loss", async () => {
  const { clock, coordinator, keeper, losses } = startKeeper([{ kind: "ok", afterMs: 5 }]);
  await clock.advance(TTL);
  const attempts = coordinator.sentAt.length;
  keeper.stop();
  await clock.advance(5 * TTL);
  assert.equal(coordinator.sentAt.length, attempts);
  assert.equal(losses.length, 0);
  assert.equal(keeper.state, "stopped");
  await assert.rejects(keeper.renewNow(), { code: "ELEASESTATE" });
});

test("options that leave no room for a renewal before the deadline are refused", () => {
  assert.throws(() => startKeeper([{ kind: "hang" }], { safetyMarginMs: TTL }), { code: "ELEASECONFIG" });
  assert.throws(() => startKeeper([{ kind: "hang" }], { renewIntervalMs: TTL - MARGIN }), {
    code: "ELEASECONFIG",
  });
  assert.throws(() => startKeeper([{ kind: "hang" }], { safetyMarginMs: -1 }), { code: "ELEASECONFIG" });
});

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("ok" as const),
    afterMs: fc.integer({ min: 0, max: 2 * TTL }),
    ttlMs: fc.option(fc.integer({ min: 1000, max: 2 * TTL }), { nil: undefined }),
    processedAfterMs: fc.integer({ min: 0, max: 2 * TTL }),
  }),
  fc.record({ kind: fc.constant("fail" as const), afterMs: fc.integer({ min: 0, max: TTL }) }),
  fc.record({ kind: fc.constant("late" as const), afterMs: fc.integer({ min: 0, max: 3 * TTL }) }),
  fc.constant({ kind: "hang" as const }),
);

test("property: never valid while the coordinator could have expired the lease", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 30 }), async (steps) => {
      const { clock, coordinator, keeper, losses } = startKeeper(steps);
      for (let i = 0; i < 200 && keeper.state === "running"; i++) {
        await clock.advance(37);
        if (keeper.isValid())
          assert.ok(
            clock.now() < coordinator.expiresAt,
            `valid at ${clock.now()} ≥ expiry ${coordinator.expiresAt}`,
          );
      }
      for (const loss of losses)
        assert.ok(loss.at < coordinator.expiresAt || loss.error.reason !== "deadline");
    }),
    { numRuns: 150 },
  );
});

test("property: renewals that answer within the attempt timeout never lose the lease", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: TTL / 3 - 1 }), { minLength: 1, maxLength: 30 }),
      async (delays) => {
        const steps: Step[] = delays.map((afterMs) => ({ kind: "ok", afterMs }));
        const { clock, keeper, losses } = startKeeper(steps);
        await clock.advance(20 * TTL);
        assert.equal(losses.length, 0, String(losses[0]?.error));
        assert.ok(keeper.isValid());
      },
    ),
    { numRuns: 60 },
  );
});
