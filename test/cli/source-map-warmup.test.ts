// The source-map warm-up `litefs mount` runs once the node is up: it parses the maps of the loaded
// modules (this test's own imports among them) without holding the event loop for the whole set.
import assert from "node:assert/strict";
import { test } from "node:test";

import { warmSourceMaps } from "../../src/cli/source-map-warmup.js";

test("parses the maps of loaded modules, one per event-loop turn", async () => {
  assert.equal(process.sourceMapsEnabled, true, "the test runner runs with --enable-source-maps");
  const order: string[] = [];
  const warming = warmSourceMaps().then((n) => {
    order.push("done");
    return n;
  });
  setImmediate(() => order.push("another task"));
  const parsed = await warming;
  assert.ok(parsed >= 1, `no source map parsed (${parsed})`);
  assert.deepEqual(order, ["another task", "done"], "other work ran while the maps were parsed");
});

test("does nothing without source maps", async () => {
  process.setSourceMapsEnabled(false);
  try {
    assert.equal(await warmSourceMaps(), 0);
  } finally {
    process.setSourceMapsEnabled(true);
  }
});
