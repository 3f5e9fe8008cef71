// How a replica's stream client reports the moments every handoff and failover brings — no primary
// known, or the node asked not primary — against real failures: info, then one warning when it lasts,
// never an error; a refusal for any other reason is an error.
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import { test } from "node:test";

import { ReplicaClient } from "../../src/api/replica-client.js";
import type { LogFields } from "../../src/store/store-logger.js";
import { openStore, tempDir } from "../store/store-test-kit.js";

interface Line {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly msg: string;
  readonly fields: LogFields | undefined;
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("no primary, or a node not primary: info, one warning when it lasts; other refusals are errors", async (t) => {
  const dir = tempDir(t, "no-primary");
  const store = openStore(path.join(dir, "data"));
  t.after(() => store.close());
  const lines: Line[] = [];
  const at =
    (level: Line["level"]) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ level, msg, fields });
    };
  const log = {
    debugEnabled: true,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
  // A node that answers every stream request with the refusal set here.
  let refusal = { status: 503, code: "ENOTPRIMARY", error: "this node is not the primary" };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(refusal.status, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ code: refusal.code, error: refusal.error }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };

  let url: string | null = null;
  const client = new ReplicaClient({
    store,
    primaryUrl: () => url,
    clusterId: { get: () => null, adopt: () => undefined },
    authToken: null,
    applier: {
      plannedPos: (db) => db.pos,
      plan: () => {
        throw new Error("nothing to apply in this test");
      },
      apply: () => Promise.reject(new Error("nothing to apply in this test")),
      flush: () => Promise.resolve(null),
      discardQueued: () => undefined,
      close: () => Promise.resolve(),
    },
    log,
    quarantineDir: path.join(dir, "quarantine"),
    random: () => 0,
    noPrimaryWarnMs: 300,
  });
  client.start();
  t.after(() => client.stop());
  const of = (level: Line["level"], msg: string): Line[] =>
    lines.filter((l) => l.level === level && l.msg === msg);

  // No primary known: one info line, then (still none after 300 ms) one warning.
  await waitFor("a warning", () => of("warn", "still no primary to stream from").length > 0);
  const waiting = of("info", "no primary to stream from yet; waiting");
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0].fields?.code, "ENOPRIMARY");
  assert.ok(Number(of("warn", "still no primary to stream from")[0].fields?.waitedMs) >= 300);

  // A node named that is not primary (yet): info, with its refusal.
  url = `http://127.0.0.1:${port}`;
  client.reconnect();
  await waitFor("ENOTPRIMARY at info", () =>
    of("info", "no primary to stream from yet; waiting").some((l) => l.fields?.code === "ENOTPRIMARY"),
  );
  assert.equal(of("warn", "still no primary to stream from").length, 1, "warned once per wait");
  assert.deepEqual(
    lines.filter((l) => l.level === "error"),
    [],
  );

  // Any other refusal is an error.
  refusal = { status: 401, code: "EAUTH", error: "missing bearer token" };
  await waitFor("an error", () => lines.some((l) => l.level === "error"));
  const errors = lines.filter((l) => l.level === "error");
  assert.equal(errors[0].msg, "replication stream ended with an error; reconnecting");
  assert.equal(errors[0].fields?.code, "EAUTH");
});
