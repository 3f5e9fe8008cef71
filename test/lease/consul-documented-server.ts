// A stand-in for a Consul server that implements, from Consul's HTTP API documentation, exactly the
// endpoints the Consul leaser uses — because no real Consul can be installed here (licence). It is NOT
// Consul: it is our reading of the documented behaviour, and the Consul leaser has never been run
// against a real server (docs/lease.md says so too). Documented behaviour implemented:
//
// Sessions (/v1/session/create, /renew/:id, /destroy/:id)
// - create: JSON body {Name, TTL, LockDelay, Behavior}; TTL must lie in 10s…24h (else 400); LockDelay
//   defaults to 15s and may not exceed 60s; Behavior is "release" (default) or "delete". Answers {"ID"}.
// - The TTL is a lower bound: Consul never invalidates earlier, but may later. This server invalidates
//   at exactly the TTL after creation or the last renewal — the strictest behaviour a client must survive.
// - renew: 200 with a one-element list of the session (TTL as a Go duration), 404 if it is unknown.
// - destroy: invalidates the session, answers true.
// - Invalidation (TTL or destroy): every key the session locks is released (Behavior "release") or
//   deleted ("delete"), and each such key gets the session's lock delay: no `?acquire=` on it succeeds
//   until the delay has passed.
// KV (/v1/kv/<key>)
// - GET: 200 with a one-element list [{Key, Value (base64 or null), Flags, Session?, LockIndex,
//   CreateIndex, ModifyIndex}], or 404 when missing; always an X-Consul-Index header.
// - Blocking GET with `index` and `wait`: if `index` is below the current index the answer is
//   immediate, else it waits until a KV write or until `wait` (default 5m, max 10m) passes.
// - PUT: body = value. `?acquire=<session>`: true if the key is unlocked (and no lock delay runs) or
//   already locked by that session; sets Session, increments LockIndex on a new acquisition; false if
//   another session holds it; HTTP 500 for an unknown session. `?release=<session>`: true and unlocks
//   if that session holds it, else false. `?cas=0`: only if absent; `?cas=N`: only if ModifyIndex = N.
// - DELETE (with optional `?cas=`): deletes regardless of locks; answers true/false.
// Every write takes the next raft index; it becomes ModifyIndex (and CreateIndex on creation).
//
// Fault injection for tests: `renewFault` makes session renewals hang (never answered) or fail (500).
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock, TimerHandle } from "../../src/lease/clock.js";
import { parseGoDurationMs } from "../../src/lease/consul-http-client.js";

interface Session {
  id: string;
  name: string;
  ttlMs: number;
  ttlText: string;
  lockDelayMs: number;
  behavior: "release" | "delete";
  createIndex: number;
  expiresAt: number;
  timer: TimerHandle;
}

interface Entry {
  key: string;
  value: Buffer | null;
  flags: number;
  session: string | undefined;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

export class ConsulDocumentedServer {
  readonly clock: Clock;
  renewFault: "none" | "hang" | "fail" = "none";
  /** Session ids in the order they were invalidated, with the clock time of invalidation. */
  readonly invalidations: Array<{ id: string; at: number; reason: "ttl" | "destroy" }> = [];
  readonly #server: http.Server;
  readonly #sessions = new Map<string, Session>();
  readonly #kv = new Map<string, Entry>();
  readonly #lockDelayUntil = new Map<string, number>();
  readonly #waiters = new Set<() => void>();
  readonly #hanging = new Set<http.ServerResponse>();
  #index = 1;
  #kvIndex = 1;

  private constructor(clock: Clock) {
    this.clock = clock;
    this.#server = http.createServer((request, response) => {
      let body = "";
      request.setEncoding("utf8");
      request.on("data", (chunk: string) => (body += chunk));
      request.on("end", () => this.#route(request, response, body));
    });
  }

  static async start(clock: Clock): Promise<ConsulDocumentedServer> {
    const server = new ConsulDocumentedServer(clock);
    await new Promise<void>((resolve) => server.#server.listen(0, "127.0.0.1", resolve));
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The raw stored entry, for assertions. */
  entry(key: string): Readonly<Entry> | undefined {
    return this.#kv.get(key);
  }

  sessionExists(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** Clock time at which the session's TTL runs out unless it is renewed first (undefined: gone). */
  sessionExpiresAt(id: string): number | undefined {
    return this.#sessions.get(id)?.expiresAt;
  }

  async close(): Promise<void> {
    for (const session of this.#sessions.values()) session.timer.cancel();
    for (const response of this.#hanging) response.destroy();
    for (const wake of this.#waiters) wake();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #route(request: http.IncomingMessage, response: http.ServerResponse, body: string): void {
    const url = new URL(request.url ?? "/", "http://consul");
    const path = url.pathname;
    const method = request.method ?? "GET";
    if (method === "PUT" && path === "/v1/session/create") return this.#createSession(response, body);
    if (method === "PUT" && path.startsWith("/v1/session/renew/")) {
      return this.#renewSession(response, path.slice("/v1/session/renew/".length));
    }
    if (method === "PUT" && path.startsWith("/v1/session/destroy/")) {
      this.#invalidate(path.slice("/v1/session/destroy/".length), "destroy");
      return send(response, 200, "true");
    }
    if (path.startsWith("/v1/kv/")) {
      const key = decodeURIComponent(path.slice("/v1/kv/".length));
      if (method === "GET") return this.#getKey(response, key, url.searchParams);
      if (method === "PUT") return this.#putKey(response, key, url.searchParams, body);
      if (method === "DELETE") return this.#deleteKey(response, key, url.searchParams);
    }
    send(response, 405, `no route for ${method} ${path}`);
  }

  #createSession(response: http.ServerResponse, body: string): void {
    const request = (body === "" ? {} : JSON.parse(body)) as Record<string, string | undefined>;
    const ttlText = request["TTL"] ?? "";
    const ttlMs = ttlText === "" ? 0 : parseGoDurationMs(ttlText, "TTL");
    if (ttlText === "" || ttlMs < 10_000 || ttlMs > 86_400_000) {
      return send(response, 400, `Invalid Session TTL '${ttlText}', must be between [10s=24h0m0s]`);
    }
    const lockDelayMs =
      request["LockDelay"] === undefined ? 15_000 : parseGoDurationMs(request["LockDelay"], "LockDelay");
    if (lockDelayMs > 60_000) return send(response, 400, "Lock delay must be at most 60s");
    const behavior = request["Behavior"] ?? "release";
    if (behavior !== "release" && behavior !== "delete")
      return send(response, 400, `Invalid Behavior setting '${behavior}'`);
    const id = randomUUID();
    const session: Session = {
      id,
      name: request["Name"] ?? "",
      ttlMs,
      ttlText,
      lockDelayMs,
      behavior,
      createIndex: ++this.#index,
      expiresAt: this.clock.now() + ttlMs,
      timer: this.clock.setTimer(ttlMs, () => this.#invalidate(id, "ttl")),
    };
    this.#sessions.set(id, session);
    send(response, 200, JSON.stringify({ ID: id }));
  }

  #renewSession(response: http.ServerResponse, id: string): void {
    if (this.renewFault === "hang") {
      this.#hanging.add(response);
      response.on("close", () => this.#hanging.delete(response));
      return;
    }
    if (this.renewFault === "fail") return send(response, 500, "rpc error: No cluster leader");
    const session = this.#sessions.get(id);
    if (session === undefined) return send(response, 404, `Session id '${id}' not found`);
    session.timer.cancel();
    session.expiresAt = this.clock.now() + session.ttlMs;
    session.timer = this.clock.setTimer(session.ttlMs, () => this.#invalidate(id, "ttl"));
    send(response, 200, JSON.stringify([this.#sessionJson(session)]));
  }

  #invalidate(id: string, reason: "ttl" | "destroy"): void {
    const session = this.#sessions.get(id);
    if (session === undefined) return;
    session.timer.cancel();
    this.#sessions.delete(id);
    this.invalidations.push({ id, at: this.clock.now(), reason });
    for (const entry of [...this.#kv.values()]) {
      if (entry.session !== id) continue;
      if (session.lockDelayMs > 0)
        this.#lockDelayUntil.set(entry.key, this.clock.now() + session.lockDelayMs);
      if (session.behavior === "delete") this.#kv.delete(entry.key);
      else {
        entry.session = undefined;
        entry.modifyIndex = ++this.#index;
      }
      this.#kvWritten();
    }
  }

  #getKey(response: http.ServerResponse, key: string, query: URLSearchParams): void {
    const answer = (): void => {
      const entry = this.#kv.get(key);
      response.setHeader("X-Consul-Index", String(this.#kvIndex));
      if (entry === undefined) return send(response, 404, "");
      send(response, 200, JSON.stringify([entryJson(entry)]));
    };
    const index = query.get("index");
    if (index === null || Number(index) < this.#kvIndex) return answer();
    const waitText = query.get("wait") ?? "5m";
    const waitMs = Math.min(
      parseGoDurationMs(/^\d+$/.test(waitText) ? `${waitText}s` : waitText, "wait"),
      600_000,
    );
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      timer.cancel();
      this.#waiters.delete(finish);
      if (!response.destroyed) answer();
    };
    const timer = this.clock.setTimer(waitMs, finish);
    this.#waiters.add(finish);
    response.on("close", () => {
      timer.cancel();
      this.#waiters.delete(finish);
    });
  }

  #putKey(response: http.ServerResponse, key: string, query: URLSearchParams, body: string): void {
    const existing = this.#kv.get(key);
    const value = Buffer.from(body, "utf8");
    const acquire = query.get("acquire");
    const release = query.get("release");
    const cas = query.get("cas");
    if (acquire !== null) {
      if (!this.#sessions.has(acquire)) return send(response, 500, `invalid session "${acquire}"`);
      if (existing?.session !== undefined && existing.session !== acquire)
        return send(response, 200, "false");
      if (existing?.session !== acquire && this.clock.now() < (this.#lockDelayUntil.get(key) ?? 0)) {
        return send(response, 200, "false");
      }
      const entry = existing ?? this.#newEntry(key);
      if (entry.session !== acquire) entry.lockIndex += 1;
      entry.session = acquire;
      entry.value = value;
      entry.modifyIndex = ++this.#index;
      this.#kv.set(key, entry);
      this.#kvWritten();
      return send(response, 200, "true");
    }
    if (release !== null) {
      if (existing === undefined || existing.session !== release) return send(response, 200, "false");
      existing.session = undefined;
      existing.value = value;
      existing.modifyIndex = ++this.#index;
      this.#kvWritten();
      return send(response, 200, "true");
    }
    if (cas !== null && !(cas === "0" ? existing === undefined : existing?.modifyIndex === Number(cas))) {
      return send(response, 200, "false");
    }
    const entry = existing ?? this.#newEntry(key);
    entry.value = value;
    entry.modifyIndex = ++this.#index;
    this.#kv.set(key, entry);
    this.#kvWritten();
    send(response, 200, "true");
  }

  #deleteKey(response: http.ServerResponse, key: string, query: URLSearchParams): void {
    const existing = this.#kv.get(key);
    const cas = query.get("cas");
    if (cas !== null && existing?.modifyIndex !== Number(cas)) return send(response, 200, "false");
    if (existing !== undefined) {
      this.#kv.delete(key);
      ++this.#index;
      this.#kvWritten();
    }
    send(response, 200, "true");
  }

  #newEntry(key: string): Entry {
    const index = this.#index + 1; // the write that creates it takes this index
    return {
      key,
      value: null,
      flags: 0,
      session: undefined,
      lockIndex: 0,
      createIndex: index,
      modifyIndex: index,
    };
  }

  #kvWritten(): void {
    this.#kvIndex = this.#index;
    for (const wake of [...this.#waiters]) wake();
  }

  #sessionJson(session: Session): Record<string, unknown> {
    return {
      ID: session.id,
      Name: session.name,
      TTL: session.ttlText,
      LockDelay: session.lockDelayMs * 1_000_000,
      Behavior: session.behavior,
      CreateIndex: session.createIndex,
      ModifyIndex: session.createIndex,
    };
  }
}

function entryJson(entry: Entry): Record<string, unknown> {
  return {
    Key: entry.key,
    Value: entry.value === null || entry.value.length === 0 ? null : entry.value.toString("base64"),
    Flags: entry.flags,
    ...(entry.session === undefined ? {} : { Session: entry.session }),
    LockIndex: entry.lockIndex,
    CreateIndex: entry.createIndex,
    ModifyIndex: entry.modifyIndex,
  };
}

function send(response: http.ServerResponse, status: number, body: string): void {
  response.statusCode = status;
  response.setHeader("Content-Type", status === 200 ? "application/json" : "text/plain");
  response.end(body);
}
