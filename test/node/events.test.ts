// The event bus and `GET /events`: LiteFS's JSON shapes byte for byte, the bounded per-subscriber
// queue, and the HTTP stream over a real loopback server on port 0 with real node:http / net clients —
// init first, events in order, a slow client dropped with a logged reason while a fast one keeps up,
// cleanup on client disconnect, a clean end when the bus closes.

import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";

import {
  EventBus,
  EventBusError,
  formatTimestamp,
  handleEventsRequest,
  serializeEvent,
  txEventFromCommit,
} from "../../src/node/events.js";
import type { BroadcastEvent, EventsResponseEnd, TxEvent } from "../../src/node/events.js";
import type { LogFields, StoreLogger } from "../../src/store/store-logger.js";

interface LogLine {
  level: string;
  msg: string;
  fields: LogFields;
}

function recordingLogger(lines: LogLine[]): StoreLogger {
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}): void => {
      lines.push({ level, msg, fields });
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

function newBus(
  opts: { maxQueuedEvents?: number; maxSubscribers?: number } = {},
  log: LogLine[] = [],
): EventBus {
  return new EventBus({ log: recordingLogger(log), isPrimary: true, hostname: "node-1", ...opts });
}

const TX: TxEvent = {
  type: "tx",
  db: "db",
  txID: 0x27n,
  postApplyChecksum: 0x83b05248774ce767n,
  pageSize: 4096,
  commit: 2,
  timestamp: Date.UTC(2024, 4, 1, 10, 0, 0, 123),
};

/** Go's zero time.Time, 0001-01-01T00:00:00Z, in ms since the Unix epoch. */
const GO_ZERO_TIME_MS = -62135596800000;

async function waitUntil(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("event shapes (LiteFS's JSON)", () => {
  test("init, tx and primaryChange serialise exactly as LiteFS writes them", () => {
    assert.equal(
      serializeEvent({ type: "init", isPrimary: true, hostname: "node-1" }),
      '{"type":"init","data":{"isPrimary":true,"hostname":"node-1"}}\n',
    );
    // LiteFS's own test line, with Go's zero time (0001-01-01T00:00:00Z).
    assert.equal(
      serializeEvent({ ...TX, timestamp: GO_ZERO_TIME_MS }),
      '{"type":"tx","db":"db","data":{"txID":"0000000000000027","postApplyChecksum":"83b05248774ce767","pageSize":4096,"commit":2,"timestamp":"0001-01-01T00:00:00Z"}}\n',
    );
    assert.equal(
      serializeEvent({ type: "primaryChange", isPrimary: false, hostname: "node-2" }),
      '{"type":"primaryChange","data":{"isPrimary":false,"hostname":"node-2"}}\n',
    );
    // An empty hostname is left out (Go's omitempty).
    assert.equal(
      serializeEvent({ type: "primaryChange", isPrimary: false, hostname: "" }),
      '{"type":"primaryChange","data":{"isPrimary":false}}\n',
    );
  });

  test("ours: quarantine and leaseLost in the same envelope", () => {
    assert.equal(
      serializeEvent({
        type: "quarantine",
        db: "app.db",
        file: "/data/quarantine/app.db/x",
        reason: "diverged",
      }),
      '{"type":"quarantine","db":"app.db","data":{"file":"/data/quarantine/app.db/x","reason":"diverged"}}\n',
    );
    assert.equal(
      serializeEvent({ type: "leaseLost", reason: "renewal failed until the deadline" }),
      '{"type":"leaseLost","data":{"reason":"renewal failed until the deadline"}}\n',
    );
    assert.equal(serializeEvent({ type: "leaseLost", reason: "" }), '{"type":"leaseLost"}\n');
  });

  test("timestamps: RFC 3339 in UTC, fraction without trailing zeros", () => {
    assert.equal(formatTimestamp(Date.UTC(2024, 4, 1, 10, 0, 0, 123)), "2024-05-01T10:00:00.123Z");
    assert.equal(formatTimestamp(Date.UTC(2024, 4, 1, 10, 0, 0, 120)), "2024-05-01T10:00:00.12Z");
    assert.equal(formatTimestamp(Date.UTC(2024, 4, 1, 10, 0, 10, 100)), "2024-05-01T10:00:10.1Z");
    assert.equal(formatTimestamp(Date.UTC(2024, 4, 1, 10, 0, 0, 0)), "2024-05-01T10:00:00Z");
    assert.equal(formatTimestamp(0), "1970-01-01T00:00:00Z");
    for (const bad of [1.5, NaN, Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1)]) {
      assert.throws(() => formatTimestamp(bad), { code: "EEVENTINVALID" });
    }
  });

  test("a tx event from the store's commit event", () => {
    const tx = txEventFromCommit({
      db: "app.db",
      pos: { txid: 5n, checksum: 0xabcn },
      prevPos: { txid: 4n, checksum: 0x123n },
      pageSize: 512,
      commit: 9,
      pageCount: 3,
      ltxPath: "/data/dbs/app.db/ltx/0000000000000005-0000000000000005.ltx",
      ltxBytes: 2000,
      timestamp: 0,
      source: "journal",
    });
    assert.equal(
      serializeEvent(tx),
      '{"type":"tx","db":"app.db","data":{"txID":"0000000000000005","postApplyChecksum":"0000000000000abc","pageSize":512,"commit":9,"timestamp":"1970-01-01T00:00:00Z"}}\n',
    );
  });

  test("an event that cannot be serialised is refused and reaches no subscriber", () => {
    const bus = newBus();
    const sub = bus.subscribe({ name: "t" });
    const bad: BroadcastEvent[] = [
      { ...TX, txID: -1n },
      { ...TX, txID: 1n << 64n },
      { ...TX, postApplyChecksum: 1n << 64n },
      { ...TX, pageSize: 1.5 },
      { ...TX, commit: -1 },
      { ...TX, commit: 2 ** 32 },
      { ...TX, db: "" },
      { ...TX, timestamp: NaN },
    ];
    for (const event of bad) {
      assert.throws(
        () => bus.publish(event),
        (err: unknown) => err instanceof EventBusError && err.code === "EEVENTINVALID",
      );
    }
    assert.equal(sub.queued, 0);
  });
});

describe("event bus", () => {
  test("each subscriber gets every event in order; onQueued fires when its queue stops being empty", () => {
    const bus = newBus();
    let readyA = 0;
    const a = bus.subscribe({ name: "a", onQueued: () => readyA++ });
    bus.publish({ ...TX, txID: 1n });
    const b = bus.subscribe({ name: "b" });
    bus.publish({ ...TX, txID: 2n });
    bus.publish({ ...TX, txID: 3n });
    assert.equal(readyA, 1);
    assert.deepEqual(
      a.take().map((p) => (p.event as TxEvent).txID),
      [1n, 2n, 3n],
    );
    assert.deepEqual(
      b.take().map((p) => (p.event as TxEvent).txID),
      [2n, 3n],
    );
    bus.publish({ ...TX, txID: 4n });
    assert.equal(readyA, 2);
    assert.equal(a.take()[0].line, serializeEvent({ ...TX, txID: 4n }));
  });

  test("a subscriber that falls behind is dropped alone, its queue freed, with a logged reason", () => {
    const log: LogLine[] = [];
    const bus = newBus({ maxQueuedEvents: 3 }, log);
    const ends: string[] = [];
    const slow = bus.subscribe({ name: "slow one", onEnd: (r) => ends.push(r) });
    const fast = bus.subscribe({ name: "fast one" });
    for (let i = 1n; i <= 5n; i++) {
      bus.publish({ ...TX, txID: i });
      fast.take();
    }
    assert.equal(slow.endReason, "overflow");
    assert.equal(slow.queued, 0);
    assert.deepEqual(ends, ["overflow"]);
    assert.equal(fast.endReason, null);
    assert.equal(bus.subscriberCount, 1);
    assert.deepEqual(
      log.filter((l) => l.level === "warn"),
      [
        {
          level: "warn",
          msg: "events subscriber dropped: it fell too far behind",
          fields: { subscriber: "slow one", reason: "overflow", maxQueuedEvents: 3 },
        },
      ],
    );
  });

  test("init follows primaryChange; limits on subscribers; close ends everything", () => {
    const bus = newBus({ maxSubscribers: 2 });
    assert.deepEqual(bus.initEvent(), { type: "init", isPrimary: true, hostname: "node-1" });
    bus.publish({ type: "primaryChange", isPrimary: false, hostname: "node-2" });
    assert.deepEqual(bus.initEvent(), { type: "init", isPrimary: false, hostname: "node-2" });

    const a = bus.subscribe({ name: "a" });
    bus.subscribe({ name: "b" });
    assert.throws(() => bus.subscribe({ name: "c" }), { code: "EEVENTSFULL" });
    a.close();
    a.close(); // idempotent
    assert.equal(a.endReason, "unsubscribed");
    const c = bus.subscribe({ name: "c" });
    bus.publish({ type: "leaseLost", reason: "" });
    bus.close();
    assert.equal(c.endReason, "bus-closed");
    assert.equal(c.take().length, 1, "events queued before the close can still be taken");
    assert.equal(bus.subscriberCount, 0);
    assert.throws(() => bus.publish({ type: "leaseLost", reason: "" }), { code: "EEVENTSCLOSED" });
    assert.throws(() => bus.subscribe({ name: "d" }), { code: "EEVENTSCLOSED" });
    assert.throws(() => newBus({ maxQueuedEvents: 0 }), { code: "EEVENTCONFIG" });
  });
});

/** A loopback server serving /events from `bus`; `ends` collects how each response ended. */
async function startServer(bus: EventBus): Promise<{
  port: number;
  ends: Promise<EventsResponseEnd>[];
  close: () => Promise<void>;
}> {
  const ends: Promise<EventsResponseEnd>[] = [];
  const server = http.createServer((req, res) => ends.push(handleEventsRequest(req, res, bus)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ends,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface EventsClient {
  readonly res: http.IncomingMessage;
  readonly req: http.ClientRequest;
  /** Parsed lines received so far. */
  readonly events: { type: string; db?: string; data?: Record<string, unknown> }[];
  readonly ended: Promise<void>;
}

function openEvents(port: number): Promise<EventsClient> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/events" }, (res) => {
      const events: EventsClient["events"] = [];
      let partial = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        partial += chunk;
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
          events.push(JSON.parse(partial.slice(0, nl)));
          partial = partial.slice(nl + 1);
        }
      });
      const ended = new Promise<void>((done) => {
        res.on("end", done);
        res.on("close", done);
      });
      resolve({ res, req, events, ended });
    });
    req.on("error", reject);
  });
}

describe("GET /events over HTTP", () => {
  test("init first, then events in order; a later client's init reflects the change", async (t) => {
    const bus = newBus();
    const server = await startServer(bus);
    t.after(() => server.close());
    const client = await openEvents(server.port);
    t.after(() => client.req.destroy());
    assert.equal(client.res.statusCode, 200);
    assert.equal(client.res.headers["content-type"], "application/x-ndjson");
    await waitUntil("init arrives", () => client.events.length === 1);
    assert.deepEqual(client.events[0], { type: "init", data: { isPrimary: true, hostname: "node-1" } });

    bus.publish(TX);
    bus.publish({ type: "quarantine", db: "db", file: "f", reason: "r" });
    bus.publish({ type: "primaryChange", isPrimary: false, hostname: "node-2" });
    await waitUntil("three events arrive", () => client.events.length === 4);
    assert.deepEqual(
      client.events.map((e) => e.type),
      ["init", "tx", "quarantine", "primaryChange"],
    );
    assert.deepEqual(client.events[1], JSON.parse(serializeEvent(TX)));

    const later = await openEvents(server.port);
    t.after(() => later.req.destroy());
    await waitUntil("the later client's init", () => later.events.length === 1);
    assert.deepEqual(later.events[0], { type: "init", data: { isPrimary: false, hostname: "node-2" } });
  });

  test("a client that disconnects is unsubscribed at once", async (t) => {
    const bus = newBus();
    const server = await startServer(bus);
    t.after(() => server.close());
    const client = await openEvents(server.port);
    await waitUntil("init arrives", () => client.events.length === 1);
    assert.equal(bus.subscriberCount, 1);
    client.req.destroy();
    assert.equal(await server.ends[0], "client-closed");
    assert.equal(bus.subscriberCount, 0);
    bus.publish(TX); // publishing to nobody is fine
  });

  test("a client that does not read is dropped with a logged reason; a reading client keeps everything", async (t) => {
    const log: LogLine[] = [];
    const bus = newBus({ maxQueuedEvents: 16 }, log);
    const server = await startServer(bus);
    t.after(() => server.close());

    const fast = await openEvents(server.port);
    t.after(() => fast.req.destroy());
    await waitUntil("the fast client's init", () => fast.events.length === 1);

    // The slow client: a raw socket that sends the request and never reads a byte of the answer.
    const slow = net.connect(server.port, "127.0.0.1");
    t.after(() => slow.destroy());
    await new Promise((resolve) => slow.once("connect", resolve));
    slow.pause();
    slow.write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitUntil("both are subscribed", () => bus.subscriberCount === 2);

    // 64 KiB events, one per turn of the event loop, until the slow client's backlog (socket buffers,
    // Node's buffer, then the queue) overflows. Bounded so a broken drop fails instead of hanging.
    const reason = "x".repeat(64 * 1024);
    let published = 0;
    while (bus.subscriberCount === 2 && published < 2000) {
      bus.publish({ type: "quarantine", db: "db", file: String(published), reason });
      published++;
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(bus.subscriberCount, 1, `slow client still subscribed after ${published} events`);
    assert.equal(await server.ends[1], "overflow");
    const warned = log.find((l) => l.level === "warn");
    assert.ok(warned, "the drop is logged");
    assert.equal(warned.fields.reason, "overflow");
    assert.match(String(warned.fields.subscriber), /^events client 127\.0\.0\.1:\d+$/);

    await waitUntil("the fast client has every event", () => fast.events.length === published + 1, 10_000);
    assert.deepEqual(
      fast.events.slice(1).map((e) => e.data?.file),
      Array.from({ length: published }, (_, i) => String(i)),
    );
    assert.equal(bus.subscriberCount, 1);
  });

  test("closing the bus ends each response cleanly after the events already queued", async (t) => {
    const bus = newBus();
    const server = await startServer(bus);
    t.after(() => server.close());
    const client = await openEvents(server.port);
    await waitUntil("init arrives", () => client.events.length === 1);
    bus.publish(TX);
    bus.close(); // same tick: the tx is still queued when the bus closes
    await client.ended;
    assert.equal(client.res.complete, true, "the chunked body ended properly");
    assert.deepEqual(
      client.events.map((e) => e.type),
      ["init", "tx"],
    );
    assert.equal(await server.ends[0], "bus-closed");
  });

  test("other methods get 405; a full bus 503", async (t) => {
    const bus = newBus({ maxSubscribers: 1 });
    const server = await startServer(bus);
    t.after(() => server.close());
    const status = (method: string): Promise<[number, string]> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port: server.port, path: "/events", method }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve([res.statusCode ?? 0, body]));
        });
        req.on("error", reject);
        req.end();
      });
    assert.equal((await status("POST"))[0], 405);
    const first = await openEvents(server.port);
    t.after(() => first.req.destroy());
    const [code, body] = await status("GET");
    assert.equal(code, 503);
    assert.match(body, /1 subscribers are connected already \(EEVENTSFULL\)/);
    assert.deepEqual(await Promise.all(server.ends.filter((_, i) => i !== 1)), ["refused", "refused"]);
  });
});
