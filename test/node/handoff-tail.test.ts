// When a node that handed its lease off still serves the target what it missed (src/node/handoff-tail.ts):
// only the target, only within the window, only while nothing moved since, and only until one such
// stream sent HANDOFF.
import assert from "node:assert/strict";
import { test } from "node:test";

import type { Pos } from "../../src/ltx/pos.js";
import { HandoffTail } from "../../src/node/handoff-tail.js";

const TARGET = 0x0123456789abcdefn;
const OTHER = 0x00000000000000aan;
const AT_HANDOFF = new Map<string, Pos>([
  ["a.db", { txid: 7n, checksum: 0x8000000000000001n }],
  ["b.db", { txid: 2n, checksum: 0x8000000000000002n }],
]);

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test("owes the target, under the epoch handed off, while the databases stand where the handoff left them", () => {
  const c = clock();
  const tail = new HandoffTail(c.now);
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    null,
    "nothing was handed off yet",
  );
  tail.handedOff(TARGET, 42n, 10_000, AT_HANDOFF);
  assert.equal(
    tail.owedTo(TARGET, () => new Map(AT_HANDOFF)),
    42n,
  );
  assert.equal(
    tail.owedTo(OTHER, () => AT_HANDOFF),
    null,
    "another replica is owed nothing",
  );
  c.advance(9_999);
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    42n,
    "still inside the window",
  );
});

test("owes nothing once the databases moved, a database appeared or went, or the window passed", () => {
  const c = clock();
  const tail = new HandoffTail(c.now);
  tail.handedOff(TARGET, 42n, 10_000, AT_HANDOFF);
  const moved = new Map(AT_HANDOFF).set("a.db", { txid: 8n, checksum: 0x8000000000000003n });
  assert.equal(
    tail.owedTo(TARGET, () => moved),
    null,
  );
  const sameTxidOtherChecksum = new Map(AT_HANDOFF).set("a.db", { txid: 7n, checksum: 0x8000000000000009n });
  assert.equal(
    tail.owedTo(TARGET, () => sameTxidOtherChecksum),
    null,
  );
  assert.equal(
    tail.owedTo(TARGET, () => new Map(AT_HANDOFF).set("c.db", { txid: 1n, checksum: 1n })),
    null,
  );
  const fewer = new Map(AT_HANDOFF);
  fewer.delete("b.db");
  assert.equal(
    tail.owedTo(TARGET, () => fewer),
    null,
  );
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    42n,
    "back where it was: owed again",
  );
  c.advance(10_001);
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    null,
  );
});

test("owes nothing after one stream sent its HANDOFF frame, nor after clear()", () => {
  const tail = new HandoffTail(clock().now);
  tail.handedOff(TARGET, 42n, 10_000, AT_HANDOFF);
  tail.sent(41n); // a frame of an older handoff changes nothing
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    42n,
  );
  tail.sent(42n);
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    null,
  );
  tail.handedOff(TARGET, 50n, 10_000, AT_HANDOFF);
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    50n,
    "a later handoff is owed anew",
  );
  tail.clear();
  assert.equal(
    tail.owedTo(TARGET, () => AT_HANDOFF),
    null,
  );
});
