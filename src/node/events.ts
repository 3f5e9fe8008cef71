// The node's event bus and `GET /events`: a stream of NDJSON lines, one per event, in LiteFS's shapes
//
//   {"type":"init","data":{"isPrimary":true,"hostname":"node-1"}}
//   {"type":"tx","db":"app.db","data":{"txID":"0000000000000027","postApplyChecksum":"83b05248774ce767",
//                                      "pageSize":4096,"commit":2,"timestamp":"2024-05-01T10:00:00.123Z"}}
//   {"type":"primaryChange","data":{"isPrimary":false,"hostname":"node-2"}}
//
// plus ours: `{"type":"quarantine","db":…,"data":{"file":…,"reason":…}}` and
// `{"type":"leaseLost","data":{"reason":…}}`. As in LiteFS, TXIDs and checksums are 16 hex digits,
// timestamps RFC 3339 in UTC without trailing zeros in the fraction, and an empty hostname (or
// reason) is left out. Each client first receives `init` (the node's role and the primary's hostname
// now), then every event published after it, in order, with no heartbeats.
//
// Memory is bounded per subscriber: events wait in its queue only while its consumer cannot take
// them (an HTTP client that does not read fills the socket, then Node's buffer, then the queue); a
// subscriber whose queue would exceed `maxQueuedEvents` is dropped with a logged reason, and its
// HTTP connection is cut, rather than letting one slow client grow the node's memory without bound.

import type http from "node:http";

import { formatHex64 } from "../ltx/hex64.js";
import type { CommitEvent } from "../store/commit-event.js";
import type { StoreLogger } from "../store/store-logger.js";

export interface InitEvent {
  readonly type: "init";
  readonly isPrimary: boolean;
  /** The primary's hostname (this node's own when it is primary); "" when no primary is known. */
  readonly hostname: string;
}

export interface TxEvent {
  readonly type: "tx";
  readonly db: string;
  readonly txID: bigint;
  readonly postApplyChecksum: bigint;
  readonly pageSize: number;
  /** Database size in pages after the transaction. */
  readonly commit: number;
  /** Milliseconds since the Unix epoch, as in the LTX header. */
  readonly timestamp: number;
}

export interface PrimaryChangeEvent {
  readonly type: "primaryChange";
  readonly isPrimary: boolean;
  readonly hostname: string;
}

/** Diverged history of `db` was kept in quarantine (`file`: where) instead of being dropped. */
export interface QuarantineEvent {
  readonly type: "quarantine";
  readonly db: string;
  readonly file: string;
  readonly reason: string;
}

/** This node lost the primary lease without giving it up. */
export interface LeaseLostEvent {
  readonly type: "leaseLost";
  readonly reason: string;
}

export type NodeEvent = InitEvent | TxEvent | PrimaryChangeEvent | QuarantineEvent | LeaseLostEvent;
/** What is published to every subscriber; `init` is made per subscriber by the bus. */
export type BroadcastEvent = Exclude<NodeEvent, InitEvent>;

export type EventBusErrorCode =
  | "EEVENTINVALID" // an event that cannot be serialised (TXID out of range, non-integer page size…)
  | "EEVENTSFULL" // maxSubscribers are connected already
  | "EEVENTSCLOSED" // the bus was closed
  | "EEVENTCONFIG"; // a limit that is not a positive integer

export class EventBusError extends Error {
  override readonly name = "EventBusError";
  constructor(
    readonly code: EventBusErrorCode,
    detail: string,
  ) {
    super(`events: ${detail} (${code})`);
  }
}

/** A tx event for a transaction the store committed or applied. */
export function txEventFromCommit(commit: CommitEvent): TxEvent {
  return {
    type: "tx",
    db: commit.db,
    txID: commit.pos.txid,
    postApplyChecksum: commit.pos.checksum,
    pageSize: commit.pageSize,
    commit: commit.commit,
    timestamp: commit.timestamp,
  };
}

/** One NDJSON line, newline included. Throws EEVENTINVALID for a value LiteFS's shapes cannot carry. */
export function serializeEvent(event: NodeEvent): string {
  let envelope: { type: string; db?: string; data?: Record<string, unknown> };
  switch (event.type) {
    case "init":
    case "primaryChange":
      envelope = {
        type: event.type,
        data: omitEmpty({ isPrimary: event.isPrimary, hostname: event.hostname }),
      };
      break;
    case "tx":
      envelope = {
        type: "tx",
        db: checkDb(event.db),
        data: {
          txID: hex64(event.txID, "txID"),
          postApplyChecksum: hex64(event.postApplyChecksum, "postApplyChecksum"),
          pageSize: checkUint32(event.pageSize, "pageSize"),
          commit: checkUint32(event.commit, "commit"),
          timestamp: formatTimestamp(event.timestamp),
        },
      };
      break;
    case "quarantine":
      envelope = {
        type: "quarantine",
        db: checkDb(event.db),
        data: { file: event.file, reason: event.reason },
      };
      break;
    case "leaseLost":
      envelope =
        event.reason === "" ? { type: "leaseLost" } : { type: "leaseLost", data: { reason: event.reason } };
      break;
  }
  return JSON.stringify(envelope) + "\n";
}

/** Go's RFC 3339 with nanoseconds, in UTC: the fraction without trailing zeros, none when zero. */
export function formatTimestamp(ms: number): string {
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  if (!Number.isInteger(ms) || Number.isNaN(date.getTime()) || year < 0 || year > 9999) {
    throw new EventBusError("EEVENTINVALID", `timestamp ${ms} is not a whole millisecond in years 0–9999`);
  }
  return date.toISOString().replace(/\.?0+Z$/, "Z");
}

/** An event with its NDJSON line, serialised once for every subscriber. */
export interface PublishedEvent {
  readonly event: NodeEvent;
  readonly line: string;
}

export type SubscriptionEnd = "unsubscribed" | "overflow" | "bus-closed";

export interface SubscribeOptions {
  /** Names the subscriber in log lines, e.g. the HTTP client's address. */
  readonly name: string;
  /** Called when the queue goes from empty to not empty: time to `take()`. */
  readonly onQueued?: () => void;
  /** Called once when the subscription ends, whatever ended it. */
  readonly onEnd?: (reason: SubscriptionEnd) => void;
}

/** One subscriber's bounded queue. Owned by whoever subscribed; `close()` it when done. */
export class EventSubscription {
  readonly name: string;
  readonly #bus: EventBus;
  readonly #opts: SubscribeOptions;
  #queue: PublishedEvent[] = [];
  #end: SubscriptionEnd | null = null;

  constructor(bus: EventBus, opts: SubscribeOptions) {
    this.#bus = bus;
    this.#opts = opts;
    this.name = opts.name;
  }

  /** Events queued since the last take, oldest first; empties the queue. */
  take(): PublishedEvent[] {
    const taken = this.#queue;
    this.#queue = [];
    return taken;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Why the subscription ended, or null while it is live. */
  get endReason(): SubscriptionEnd | null {
    return this.#end;
  }

  /** Unsubscribes; idempotent. Events still queued can be taken. */
  close(): void {
    this.end("unsubscribed");
  }

  /** @internal Called by the bus. Returns false when the queue was full and the subscription ended. */
  deliver(published: PublishedEvent, maxQueued: number): boolean {
    if (this.#end !== null) return false;
    if (this.#queue.length >= maxQueued) {
      this.#queue = []; // a dropped subscriber must not keep holding memory
      this.end("overflow");
      return false;
    }
    this.#queue.push(published);
    if (this.#queue.length === 1) this.#opts.onQueued?.();
    return true;
  }

  /** @internal */
  end(reason: SubscriptionEnd): void {
    if (this.#end !== null) return;
    this.#end = reason;
    this.#bus.detach(this, reason);
    this.#opts.onEnd?.(reason);
  }
}

export interface EventBusOptions {
  readonly log: StoreLogger;
  /** The node's role and the primary's hostname at start (later changed by primaryChange events). */
  readonly isPrimary: boolean;
  readonly hostname: string;
  /** Events a subscriber may have waiting before it is dropped (default 4096). */
  readonly maxQueuedEvents?: number;
  /** Subscribers at once; more are refused with EEVENTSFULL (default 64). */
  readonly maxSubscribers?: number;
}

export class EventBus {
  readonly maxQueuedEvents: number;
  readonly maxSubscribers: number;
  readonly #log: StoreLogger;
  readonly #subscribers = new Set<EventSubscription>();
  #isPrimary: boolean;
  #hostname: string;
  #closed = false;

  constructor(opts: EventBusOptions) {
    this.#log = opts.log;
    this.#isPrimary = opts.isPrimary;
    this.#hostname = opts.hostname;
    this.maxQueuedEvents = positiveInteger(opts.maxQueuedEvents ?? 4096, "maxQueuedEvents");
    this.maxSubscribers = positiveInteger(opts.maxSubscribers ?? 64, "maxSubscribers");
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** What a new subscriber is told first: the role and primary as of the last primaryChange. */
  initEvent(): InitEvent {
    return { type: "init", isPrimary: this.#isPrimary, hostname: this.#hostname };
  }

  /**
   * Queues `event` for every subscriber (dropping those whose queue is full). Throws EEVENTINVALID,
   * delivering nothing, when the event cannot be serialised and someone is subscribed (with nobody
   * subscribed it is not serialised: a tx event per commit cost ~15 µs of the request thread);
   * EEVENTSCLOSED after `close()`.
   */
  publish(event: BroadcastEvent): void {
    if (this.#closed)
      throw new EventBusError("EEVENTSCLOSED", `cannot publish ${event.type}: the bus is closed`);
    // A primaryChange is checked even so: later subscribers' init event is built from it.
    if (this.#subscribers.size === 0 && event.type !== "primaryChange") return;
    const published: PublishedEvent = { event, line: serializeEvent(event) };
    if (event.type === "primaryChange") {
      this.#isPrimary = event.isPrimary;
      this.#hostname = event.hostname;
    }
    for (const sub of [...this.#subscribers]) sub.deliver(published, this.maxQueuedEvents);
  }

  /** Adds a subscriber; throws EEVENTSFULL at `maxSubscribers`, EEVENTSCLOSED after `close()`. */
  subscribe(opts: SubscribeOptions): EventSubscription {
    if (this.#closed)
      throw new EventBusError("EEVENTSCLOSED", `cannot subscribe ${opts.name}: the bus is closed`);
    if (this.#subscribers.size >= this.maxSubscribers) {
      throw new EventBusError(
        "EEVENTSFULL",
        `cannot subscribe ${opts.name}: ${this.maxSubscribers} subscribers are connected already`,
      );
    }
    const sub = new EventSubscription(this, opts);
    this.#subscribers.add(sub);
    return sub;
  }

  /** Ends every subscription ("bus-closed"; queued events can still be taken) and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const sub of [...this.#subscribers]) sub.end("bus-closed");
  }

  /** @internal Called by a subscription as it ends. */
  detach(sub: EventSubscription, reason: SubscriptionEnd): void {
    this.#subscribers.delete(sub);
    if (reason === "overflow") {
      this.#log.warn("events subscriber dropped: it fell too far behind", {
        subscriber: sub.name,
        reason,
        maxQueuedEvents: this.maxQueuedEvents,
      });
    }
  }
}

/** How an `/events` response ended. */
export type EventsResponseEnd = "client-closed" | "overflow" | "bus-closed" | "refused";

/**
 * Serves `GET /events` on node:http: 200 with `init`, then every published event as NDJSON until the
 * client goes away (the subscription is closed at once), the client falls too far behind (the
 * connection is cut), or the bus closes (the response ends cleanly). Other methods get 405; a full or
 * closed bus 503. Resolves when the response is over; never rejects.
 */
export function handleEventsRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bus: EventBus,
): Promise<EventsResponseEnd> {
  if (req.method !== "GET") {
    res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET" });
    res.end(`method ${req.method} not allowed on events; use GET\n`);
    return Promise.resolve("refused");
  }
  return new Promise((resolve) => {
    let blocked = false; // res.write returned false: wait for "drain" before writing again
    let flushScheduled = false;
    let done = false;
    const finish = (how: EventsResponseEnd): void => {
      if (done) return;
      done = true;
      resolve(how);
    };
    const writeQueued = (sub: EventSubscription): void => {
      const events = sub.take();
      if (events.length === 0 || res.destroyed || res.writableEnded) return;
      let chunk = "";
      for (const e of events) chunk += e.line;
      if (!res.write(chunk)) blocked = true;
    };
    const flush = (): void => {
      flushScheduled = false;
      if (!blocked && sub.endReason === null) writeQueued(sub);
    };

    let sub: EventSubscription;
    try {
      sub = bus.subscribe({
        name: `events client ${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`,
        // Batched per microtask: events published together go out in one write.
        onQueued: () => {
          if (flushScheduled || blocked) return;
          flushScheduled = true;
          queueMicrotask(flush);
        },
        onEnd: (reason) => {
          if (reason === "overflow") {
            res.destroy(); // its unread bytes stay with the socket otherwise
            finish("overflow");
          } else if (reason === "bus-closed") {
            writeQueued(sub);
            res.end();
            finish("bus-closed");
          } else {
            finish("client-closed");
          }
        },
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "1" });
      res.end(message + "\n");
      finish("refused");
      return;
    }
    res.on("drain", () => {
      blocked = false;
      flush();
    });
    res.on("close", () => sub.close());
    res.on("error", () => sub.close()); // the socket failed; "close" follows
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    // Subscribed before init is written, both synchronously: no event falls between the two.
    if (!res.write(serializeEvent(bus.initEvent()))) blocked = true;
  });
}

function omitEmpty(data: { isPrimary: boolean; hostname: string }): Record<string, unknown> {
  return data.hostname === "" ? { isPrimary: data.isPrimary } : data;
}

function checkDb(db: string): string {
  if (typeof db !== "string" || db === "")
    throw new EventBusError("EEVENTINVALID", `db must be a name, got ${JSON.stringify(db)}`);
  return db;
}

function hex64(value: bigint, field: string): string {
  try {
    return formatHex64(value);
  } catch {
    throw new EventBusError("EEVENTINVALID", `${field} ${String(value)} is not a 64-bit unsigned value`);
  }
}

function checkUint32(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new EventBusError("EEVENTINVALID", `${field} ${value} is not a 32-bit unsigned integer`);
  }
  return value;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new EventBusError("EEVENTCONFIG", `${what} must be a positive integer, got ${value}`);
  }
  return value;
}
