// The node's logger (`log.format`, `log.timestamp`, `log.debug`): text lines `msg key=value …` with
// values quoted only when they need it, or one JSON object per line; bigints as decimal strings;
// debug lines only when asked for; the time first when asked for.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { LogWriter } from "../../src/node/log-writer.js";

function writer(format: "text" | "json", opts: { timestamp?: boolean; debug?: boolean } = {}) {
  const lines: string[] = [];
  const log = new LogWriter({
    format,
    timestamp: opts.timestamp ?? false,
    debug: opts.debug ?? false,
    write: (line) => lines.push(line),
  });
  return { log, lines };
}

describe("LogWriter", () => {
  test("text: msg then key=value, quoting values with spaces, quotes or '=', levels above info named", () => {
    const { log, lines } = writer("text");
    log.info("mount ready", { dir: "/litefs", http: ":20202", n: 3, ok: true });
    log.warn("odd value", {
      reason: 'has "quotes" and spaces',
      empty: "",
      eq: "a=b",
      big: 12345678901234567890n,
    });
    log.error("failed", { error: new Error("boom"), list: [1, 2] });
    log.debug("hidden");
    assert.deepEqual(lines, [
      "mount ready dir=/litefs http=:20202 n=3 ok=true\n",
      'WARN odd value reason="has \\"quotes\\" and spaces" empty="" eq="a=b" big=12345678901234567890\n',
      'ERROR failed error="boom" list=[1,2]\n',
    ]);
  });

  test("json: one object per line with level, msg and the fields; bigints as strings", () => {
    const { log, lines } = writer("json");
    log.info("commit", { db: "app.db", txid: "0000000000000001", pages: 2 });
    log.warn("big", { value: 2n ** 64n - 1n });
    assert.equal(lines.length, 2);
    assert.ok(lines.every((line) => line.endsWith("\n") && !line.slice(0, -1).includes("\n")));
    assert.deepEqual(JSON.parse(lines[0]), {
      level: "info",
      msg: "commit",
      db: "app.db",
      txid: "0000000000000001",
      pages: 2,
    });
    assert.deepEqual(JSON.parse(lines[1]), { level: "warn", msg: "big", value: "18446744073709551615" });
  });

  test("debug lines only with log.debug; the time first with log.timestamp", () => {
    const quiet = writer("json");
    quiet.log.debug("not shown");
    assert.deepEqual(quiet.lines, []);

    const json = writer("json", { timestamp: true, debug: true });
    json.log.debug("shown", { a: 1 });
    const record = JSON.parse(json.lines[0]) as Record<string, unknown>;
    assert.deepEqual(Object.keys(record), ["time", "level", "msg", "a"]);
    assert.match(String(record.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(record.level, "debug");

    const text = writer("text", { timestamp: true, debug: true });
    text.log.debug("shown", { a: 1 });
    assert.match(text.lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z DEBUG shown a=1\n$/);
  });
});
