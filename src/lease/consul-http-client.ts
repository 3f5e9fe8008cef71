// The handful of Consul HTTP API calls the Consul leaser makes, spoken with fetch: session create/
// renew/destroy, KV get (optionally blocking), KV put (plain, `?cas=`, `?acquire=`, `?release=`) and KV
// delete. Shapes follow Consul's documented HTTP API (/v1/session/*, /v1/kv/*).
//
// NOT run against a real Consul server: none can be installed here (licence). The tests drive this
// client against a small server that implements the documented behaviour of exactly these endpoints
// (test/lease/consul-documented-server.ts). See docs/lease.md.
import { LeaseError } from "./lease-error.js";

export interface ConsulHttpClientOptions {
  /** Base URL of a Consul agent or server, e.g. "http://127.0.0.1:8500". */
  url: string;
  /** Limit for one request (ms); blocking reads add their `wait` on top. */
  requestTimeoutMs: number;
}

/** One KV entry as Consul returns it (`GET /v1/kv/<key>` answers a list of these). */
export interface ConsulKvEntry {
  Key: string;
  /** Base64, or null for an empty value. */
  Value: string | null;
  Flags: number;
  /** The session holding the lock on this key, when locked. */
  Session?: string;
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface ConsulAnswer {
  status: number;
  text: string;
  /** `X-Consul-Index`, when present. */
  index: bigint | undefined;
}

const ANSWER_BYTES_MAX = 4 * 1024 * 1024;

export class ConsulHttpClient {
  readonly url: string;
  readonly #requestTimeoutMs: number;

  constructor(options: ConsulHttpClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (error) {
      throw new LeaseError("ELEASECONFIG", `consul url ${JSON.stringify(options.url)} is not a URL`, {
        cause: error,
      });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new LeaseError("ELEASECONFIG", `consul url ${options.url} must be http:// or https://`);
    }
    if (!(options.requestTimeoutMs > 0))
      throw new LeaseError("ELEASECONFIG", "consul: request timeout must be > 0");
    this.url = options.url.replace(/\/+$/, "");
    this.#requestTimeoutMs = options.requestTimeoutMs;
  }

  /**
   * Sends one request. Resolves with any HTTP status below 500 (callers decide what 404 means);
   * rejects with ELEASEUNAVAILABLE on network errors, timeouts and 5xx, or the signal's reason.
   */
  async request(
    method: "GET" | "PUT" | "DELETE",
    path: string,
    options: {
      query?: Record<string, string>;
      body?: string;
      signal?: AbortSignal;
      extraTimeoutMs?: number;
    } = {},
  ): Promise<ConsulAnswer> {
    const query = new URLSearchParams(options.query ?? {}).toString();
    const target = `${this.url}${path}${query === "" ? "" : "?" + query}`;
    const timeout = AbortSignal.timeout(this.#requestTimeoutMs + (options.extraTimeoutMs ?? 0));
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
    let response: Response;
    let text: string;
    try {
      response = await fetch(target, { method, body: options.body, signal });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted === true) throw options.signal.reason;
      const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
      throw new LeaseError("ELEASEUNAVAILABLE", `${method} failed: ${(error as Error).message}${cause}`, {
        where: `consul ${target}`,
        cause: error,
      });
    }
    if (text.length > ANSWER_BYTES_MAX) {
      throw new LeaseError("ELEASEPROTOCOL", `answer of ${text.length} bytes is over the limit`, {
        where: target,
      });
    }
    if (response.status >= 500) {
      throw new LeaseError("ELEASEUNAVAILABLE", `HTTP ${response.status}: ${text.slice(0, 300)}`, {
        where: `consul ${method} ${target}`,
      });
    }
    const header = response.headers.get("x-consul-index");
    const index = header !== null && /^\d+$/.test(header) ? BigInt(header) : undefined;
    return { status: response.status, text, index };
  }

  /** `GET /v1/kv/<key>`: the entry, or undefined when the key does not exist (404). */
  async getKey(
    key: string,
    options: { signal?: AbortSignal; index?: bigint; waitMs?: number } = {},
  ): Promise<{ entry: ConsulKvEntry | undefined; index: bigint | undefined }> {
    const query: Record<string, string> = {};
    let extraTimeoutMs = 0;
    if (options.index !== undefined && options.waitMs !== undefined) {
      query["index"] = options.index.toString();
      query["wait"] = `${Math.ceil(options.waitMs / 1000)}s`;
      extraTimeoutMs = options.waitMs + options.waitMs / 16; // Consul adds up to wait/16 of jitter
    }
    const answer = await this.request("GET", kvPath(key), { query, signal: options.signal, extraTimeoutMs });
    if (answer.status === 404) return { entry: undefined, index: answer.index };
    expectStatus(answer, 200, `GET ${kvPath(key)}`);
    const list = parseJson(answer.text, `consul GET ${kvPath(key)}`);
    if (!Array.isArray(list) || list.length !== 1 || !isKvEntry(list[0])) {
      throw new LeaseError("ELEASEPROTOCOL", `expected one KV entry, got ${answer.text.slice(0, 300)}`, {
        where: `consul GET ${kvPath(key)}`,
      });
    }
    return { entry: list[0], index: answer.index };
  }

  /** `PUT /v1/kv/<key>?…` with `value` as the body; Consul answers true or false. */
  async putKey(
    key: string,
    value: string,
    query: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const answer = await this.request("PUT", kvPath(key), { query, body: value, signal });
    return parseBooleanAnswer(answer, `PUT ${kvPath(key)}`);
  }

  /** `DELETE /v1/kv/<key>?…`; Consul answers true or false. */
  async deleteKey(key: string, query: Record<string, string>, signal?: AbortSignal): Promise<boolean> {
    const answer = await this.request("DELETE", kvPath(key), { query, signal });
    return parseBooleanAnswer(answer, `DELETE ${kvPath(key)}`);
  }
}

/** The KV entry's value as text. */
export function entryValue(entry: ConsulKvEntry): string {
  return Buffer.from(entry.Value ?? "", "base64").toString("utf8");
}

/** Parses the Go durations Consul prints ("10s", "15s", "1m0s", "1.5s", "250ms", "1h0m0s") into ms. */
export function parseGoDurationMs(text: string, where: string): number {
  const pattern = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/gy;
  let total = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  const units: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 1e-3,
    µs: 1e-3,
    ns: 1e-6,
  };
  while ((match = pattern.exec(text)) !== null) {
    total += Number(match[1]) * units[match[2]];
    consumed = pattern.lastIndex;
  }
  if (text === "" || consumed !== text.length) {
    throw new LeaseError("ELEASEPROTOCOL", `not a duration: ${JSON.stringify(text)}`, { where });
  }
  return total;
}

/** "/v1/kv/" + the key with each segment URL-encoded (slashes kept, a leading slash dropped). */
function kvPath(key: string): string {
  return "/v1/kv/" + key.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/");
}

function expectStatus(answer: ConsulAnswer, status: number, what: string): void {
  if (answer.status !== status) {
    throw new LeaseError("ELEASEPROTOCOL", `HTTP ${answer.status}: ${answer.text.slice(0, 300)}`, {
      where: `consul ${what}`,
    });
  }
}

function parseBooleanAnswer(answer: ConsulAnswer, what: string): boolean {
  expectStatus(answer, 200, what);
  const value = answer.text.trim();
  if (value === "true") return true;
  if (value === "false") return false;
  throw new LeaseError("ELEASEPROTOCOL", `expected true or false, got ${value.slice(0, 100)}`, {
    where: `consul ${what}`,
  });
}

export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new LeaseError("ELEASEPROTOCOL", `answer is not JSON: ${text.slice(0, 200)}`, {
      where,
      cause: error,
    });
  }
}

function isKvEntry(value: unknown): value is ConsulKvEntry {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry["Key"] === "string" &&
    (entry["Value"] === null || typeof entry["Value"] === "string") &&
    (entry["Session"] === undefined || typeof entry["Session"] === "string") &&
    Number.isSafeInteger(entry["LockIndex"]) &&
    Number.isSafeInteger(entry["ModifyIndex"]) &&
    Number.isSafeInteger(entry["CreateIndex"])
  );
}
