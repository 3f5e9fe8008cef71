import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parseDuration } from "../../src/config/duration.js";

const ok = (text: string) => {
  const result = parseDuration(text);
  assert.ok(result.ok, `${text}: ${result.ok ? "" : result.reason}`);
  return result.ms;
};
const reason = (text: string) => {
  const result = parseDuration(text);
  assert.ok(!result.ok, `${text} should not parse`);
  return result.reason;
};

test("Go duration forms become milliseconds", () => {
  assert.equal(ok("0"), 0);
  assert.equal(ok("10s"), 10_000);
  assert.equal(ok("1m30s"), 90_000);
  assert.equal(ok("500ms"), 500);
  assert.equal(ok("1h"), 3_600_000);
  assert.equal(ok("2h45m"), 9_900_000);
  assert.equal(ok("1.5h"), 5_400_000);
  assert.equal(ok("1.1s"), 1100, "exact, not 1100.0000000000002");
  assert.equal(ok(".5s"), 500);
  assert.equal(ok("1.s"), 1000);
  assert.equal(ok("1500us"), 1.5);
  assert.equal(ok("1500µs"), 1.5);
  assert.equal(ok("1500μs"), 1.5);
  assert.equal(ok("2000000ns"), 2);
  assert.equal(ok("1ns"), 0.000001);
  assert.equal(ok("+5s"), 5000);
  assert.equal(ok("-5s"), -5000);
  assert.equal(ok("-0"), 0);
  assert.ok(Object.is(ok("-0s"), 0), "no negative zero");
  assert.equal(ok("1h1m1s1ms"), 3_661_001);
  assert.equal(ok("10s10s"), 20_000, "Go adds repeated units");
});

test("malformed durations say why", () => {
  assert.equal(reason(""), "empty duration");
  assert.equal(reason("-"), "empty duration");
  assert.match(reason("10"), /missing unit after "10"/);
  assert.match(reason("1.5"), /missing unit after "1.5"/);
  assert.match(reason("10x"), /unknown unit "x"/);
  assert.match(reason("10 s"), /unknown unit " s"/);
  assert.match(reason("10S"), /unknown unit "S"/);
  assert.match(reason("s"), /expected a number at "s"/);
  assert.match(reason(".s"), /expected a number/);
  assert.match(reason("1s.5"), /expected a number|missing unit/);
  assert.match(reason("1s-1s"), /unknown unit "s-"/, "Go's unit runs up to the next digit or dot");
  assert.match(reason("3000000h"), /out of range/);
  assert.equal(ok("2562047h"), 2562047 * 3_600_000, "just inside Go's int64 range");
});

test("property: whole milliseconds round-trip through a Go-style rendering", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 * 365 * 24 * 3_600_000 }), (ms) => {
      const h = Math.floor(ms / 3_600_000);
      const m = Math.floor((ms % 3_600_000) / 60_000);
      const s = Math.floor((ms % 60_000) / 1000);
      const rest = ms % 1000;
      const text = `${h}h${m}m${s}s${rest}ms`;
      assert.equal(ok(text), ms);
      assert.equal(ok(`${ms / 1000}s`), ms);
    }),
  );
});
