// A small client for etcd's v3 JSON gateway (`POST /v3/...`, grpc-gateway), spoken with node:http for
// unary calls (net/http-request.ts says why) and fetch for the streaming watch: etcd
// 3.4 serves lease grant/keepalive/revoke, KV range/txn and watch there, which is all the leaser needs,
// without a gRPC stack or the 37 packages of the `etcd3` client.
//
// Wire facts this relies on (etcd 3.4, checked against the real server by the tests): int64 fields are
// JSON strings, fields equal to their zero value are omitted (`succeeded: false`, `TTL: 0`, `type: PUT`),
// keys and values are base64, errors are `{"error","message","code"}` with the gRPC code and an HTTP
// status (5xx for "no leader"/unavailable), and streaming calls (keepalive, watch) answer with one JSON
// object per line, `{"result": …}` or `{"error": …}`.
//
// Endpoints: every call tries the endpoint that answered last, then each other one in order, with a
// per-endpoint timeout, so a cluster that lost a member (refused connections) or has a hung one
// (timeouts) keeps working. A call is retried on another endpoint only after a network error, a timeout
// or a 5xx — callers make their writes safe to repeat (compare-guarded transactions); reads and
// keep-alives that are only slow are not cut but doubled on the next endpoint (see `call`).
import { HttpAnswerTooLargeError, httpRequest } from "../net/http-request.js";
import { asError, LeaseError } from "./lease-error.js";

export interface EtcdGatewayOptions {
  /** Client URLs of the members, e.g. ["http://10.0.0.1:2379"]; at least one. */
  endpoints: readonly string[];
  /** Limit for one request to one endpoint (ms); for streams, until the response headers arrive. */
  requestTimeoutMs: number;
}

/** One key-value as the gateway returns it (int64s as strings, zero values omitted). */
export interface EtcdKeyValue {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export interface EtcdHeader {
  revision?: string;
}

const RESPONSE_BYTES_MAX = 4 * 1024 * 1024;

/** Calls that are safe to have answered twice, by two members: see `call`. */
const HEDGED_PATHS: ReadonlySet<string> = new Set(["/v3/kv/range", "/v3/lease/keepalive"]);

interface EndpointFailures {
  texts: string[];
  causes: unknown[];
}

export class EtcdGatewayClient {
  readonly #endpoints: string[];
  readonly #requestTimeoutMs: number;
  #preferred = 0;

  constructor(options: EtcdGatewayOptions) {
    if (options.endpoints.length === 0) {
      throw new LeaseError("ELEASECONFIG", "etcd: at least one endpoint is required");
    }
    this.#endpoints = options.endpoints.map((endpoint) => {
      let url: URL;
      try {
        url = new URL(endpoint);
      } catch (error) {
        throw new LeaseError("ELEASECONFIG", `etcd endpoint ${JSON.stringify(endpoint)} is not a URL`, {
          cause: error,
        });
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new LeaseError("ELEASECONFIG", `etcd endpoint ${endpoint} must be http:// or https://`);
      }
      return endpoint.replace(/\/+$/, "");
    });
    if (!(options.requestTimeoutMs > 0)) {
      throw new LeaseError("ELEASECONFIG", "etcd: request timeout must be > 0");
    }
    this.#requestTimeoutMs = options.requestTimeoutMs;
  }

  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /**
   * POSTs `body` to `path` (e.g. "/v3/kv/range") and returns the parsed JSON answer. Rejects with
   * ELEASEUNAVAILABLE when no endpoint answers, ELEASEPROTOCOL (with `grpcCode`) when etcd refuses the
   * request, or the signal's reason when `signal` aborts.
   *
   * Reads and keep-alives (HEDGED_PATHS) do not give up on an endpoint that is slow to answer: after
   * the request timeout the next endpoint is asked as well, and the first answer wins. A member whose
   * raft leader just died holds such a request until a new leader is elected and then answers it —
   * cutting it at the timeout, as a write must be cut (it is retried elsewhere only once it is sure to
   * be over), threw that answer away and left a renewal to start again from nothing.
   */
  async call(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    throwIfAborted(signal);
    const payload = JSON.stringify(body);
    return HEDGED_PATHS.has(path)
      ? this.#hedged(path, payload, signal)
      : this.#oneByOne(path, payload, signal);
  }

  async #oneByOne(path: string, payload: string, signal: AbortSignal | undefined): Promise<unknown> {
    const failures: EndpointFailures = { texts: [], causes: [] };
    // The order is fixed when the call starts: a concurrent call that succeeds elsewhere moves
    // #preferred, and reading it at each step visited one endpoint twice and skipped another.
    const start = this.#preferred;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const index = (start + i) % this.#endpoints.length;
      throwIfAborted(signal);
      let answer: { status: number; text: string };
      try {
        answer = await this.#request(index, path, payload, signal, this.#requestTimeoutMs);
      } catch (error) {
        this.#noteFailure(index, path, error, signal, failures);
        continue;
      }
      const outcome = this.#interpret(index, path, answer, failures);
      if (outcome.done) return outcome.value;
    }
    throw this.#unavailable(path, failures);
  }

  #hedged(path: string, payload: string, signal: AbortSignal | undefined): Promise<unknown> {
    const count = this.#endpoints.length;
    const start = this.#preferred;
    const failures: EndpointFailures = { texts: [], causes: [] };
    const inFlight = new Set<AbortController>();
    return new Promise<unknown>((resolve, reject) => {
      let launched = 0;
      let settled = false;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const settle = (finish: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(hedgeTimer);
        signal?.removeEventListener("abort", onAbort);
        for (const controller of inFlight) controller.abort(new Error("another etcd endpoint answered"));
        finish();
      };
      const onAbort = (): void => settle(() => reject(abortReason(signal!)));
      const launch = (): void => {
        clearTimeout(hedgeTimer);
        if (settled) return;
        if (launched === count) {
          if (inFlight.size === 0) settle(() => reject(this.#unavailable(path, failures)));
          return;
        }
        const position = launched++;
        const index = (start + position) % count;
        const controller = new AbortController();
        inFlight.add(controller);
        // Every request ends when a one-by-one pass over the endpoints would have: no later.
        const limitMs = this.#requestTimeoutMs * (count - position);
        this.#request(index, path, payload, controller.signal, limitMs).then(
          (answer) => {
            inFlight.delete(controller);
            if (settled) return;
            let outcome: { done: true; value: unknown } | { done: false };
            try {
              outcome = this.#interpret(index, path, answer, failures);
            } catch (error) {
              settle(() => reject(asError(error)));
              return;
            }
            if (outcome.done) settle(() => resolve(outcome.value));
            else launch();
          },
          (error: unknown) => {
            inFlight.delete(controller);
            if (settled) return;
            try {
              this.#noteFailure(index, path, error, undefined, failures);
            } catch (fatal) {
              settle(() => reject(asError(fatal)));
              return;
            }
            launch();
          },
        );
        if (launched < count) hedgeTimer = setTimeout(launch, this.#requestTimeoutMs);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      launch();
    });
  }

  #request(
    index: number,
    path: string,
    payload: string,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    return httpRequest(this.#endpoints[index] + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: payload,
      signal,
      timeoutMs,
      maxBytes: RESPONSE_BYTES_MAX,
    });
  }

  /** Records a request that got no answer; throws when the call must end instead (size, abort). */
  #noteFailure(
    index: number,
    path: string,
    error: unknown,
    signal: AbortSignal | undefined,
    failures: EndpointFailures,
  ): void {
    const endpoint = this.#endpoints[index];
    if (error instanceof HttpAnswerTooLargeError) {
      throw new LeaseError("ELEASEPROTOCOL", `answer is over the ${RESPONSE_BYTES_MAX}-byte limit`, {
        where: `etcd ${endpoint}${path}`,
      });
    }
    throwIfAborted(signal);
    failures.texts.push(`${endpoint}: ${describeFetchError(error)}`);
    failures.causes.push(error);
  }

  /** An answer: the call's result, a 5xx worth asking another endpoint, or (thrown) etcd's refusal. */
  #interpret(
    index: number,
    path: string,
    answer: { status: number; text: string },
    failures: EndpointFailures,
  ): { done: true; value: unknown } | { done: false } {
    const endpoint = this.#endpoints[index];
    if (answer.status >= 500) {
      failures.texts.push(`${endpoint}: HTTP ${answer.status} ${answer.text.slice(0, 200)}`);
      return { done: false };
    }
    const parsed = parseJson(answer.text, `etcd ${endpoint}${path}`);
    if (answer.status !== 200) throw gatewayError(parsed, answer.status, `etcd ${endpoint}${path}`);
    this.#preferred = index;
    return { done: true, value: parsed };
  }

  #unavailable(path: string, failures: EndpointFailures): LeaseError {
    return new LeaseError("ELEASEUNAVAILABLE", `no etcd endpoint answered: ${failures.texts.join("; ")}`, {
      where: `etcd ${path}`,
      cause: new AggregateError(failures.causes, "etcd endpoint failures"),
    });
  }

  /**
   * Calls a streaming method (one request, many answers) and yields each answer's `result`. Connects
   * like `call` (trying every endpoint); once connected, a broken stream ends the iteration with
   * ELEASEUNAVAILABLE. Ends quietly when the server closes the stream or `signal` aborts.
   */
  async *stream(path: string, body: unknown, signal: AbortSignal): AsyncGenerator<unknown> {
    const failures: string[] = [];
    const start = this.#preferred;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const index = (start + i) % this.#endpoints.length;
      const endpoint = this.#endpoints[index];
      if (signal.aborted) return;
      const connect = new AbortController();
      const onAbort = (): void => connect.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const connectTimer = setTimeout(
        () => connect.abort(new Error(`no answer within ${this.#requestTimeoutMs} ms`)),
        this.#requestTimeoutMs,
      );
      let response: Response;
      // A refusal's body is read under the connect timeout too: a server that sends the headers of
      // an error and then nothing must not hold the caller.
      let refusal: { status: number; text: string } | undefined;
      try {
        response = await fetch(endpoint + path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: connect.signal,
        });
        if (response.status !== 200 || response.body === null) {
          refusal = { status: response.status, text: await readBoundedText(response, endpoint + path) };
        }
      } catch (error) {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) return;
        if (error instanceof LeaseError) throw error;
        failures.push(`${endpoint}: ${describeFetchError(error)}`);
        continue;
      } finally {
        clearTimeout(connectTimer);
      }
      try {
        if (refusal !== undefined) {
          if (refusal.status >= 500) {
            failures.push(`${endpoint}: HTTP ${refusal.status} ${refusal.text.slice(0, 200)}`);
            continue;
          }
          throw gatewayError(
            parseJson(refusal.text, `etcd ${endpoint}${path}`),
            refusal.status,
            endpoint + path,
          );
        }
        this.#preferred = index;
        yield* readJsonLines(response.body!, `etcd ${endpoint}${path}`, signal);
        return;
      } finally {
        signal.removeEventListener("abort", onAbort);
        connect.abort(new Error("stream finished"));
      }
    }
    throw new LeaseError(
      "ELEASEUNAVAILABLE",
      `no etcd endpoint accepted the stream: ${failures.join("; ")}`,
      {
        where: `etcd ${path}`,
      },
    );
  }
}

/**
 * The whole body of a unary answer as text, refusing (ELEASEPROTOCOL) as soon as it passes
 * RESPONSE_BYTES_MAX: an endpoint that streams without end must not fill memory until the timeout.
 */
async function readBoundedText(response: Response, where: string): Promise<string> {
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  // Leaving the loop by the throw below cancels the body (the async iterator's return()).
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    total += chunk.length;
    if (total > RESPONSE_BYTES_MAX) {
      throw new LeaseError("ELEASEPROTOCOL", `answer is over the ${RESPONSE_BYTES_MAX}-byte limit`, {
        where,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

/** Yields `result` of every NDJSON line of a streaming answer; an `error` line becomes an exception. */
async function* readJsonLines(
  body: ReadableStream<Uint8Array>,
  where: string,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of body) {
      pending += decoder.decode(chunk, { stream: true });
      if (pending.length > RESPONSE_BYTES_MAX) {
        throw new LeaseError("ELEASEPROTOCOL", "stream line over the size limit", { where });
      }
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line === "") continue;
        yield unwrapStreamLine(parseJson(line, where), where);
      }
    }
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof LeaseError) throw error;
    throw new LeaseError("ELEASEUNAVAILABLE", `stream broke: ${describeFetchError(error)}`, {
      where,
      cause: error,
    });
  }
  const last = pending.trim();
  if (last !== "") yield unwrapStreamLine(parseJson(last, where), where);
}

function unwrapStreamLine(message: unknown, where: string): unknown {
  const record = asRecord(message);
  if (record["result"] !== undefined) return record["result"];
  const error = asRecord(record["error"]);
  const grpcCode = typeof error["grpc_code"] === "number" ? error["grpc_code"] : undefined;
  const text = typeof error["message"] === "string" ? error["message"] : JSON.stringify(message);
  const code = grpcCode === 14 || grpcCode === 4 ? "ELEASEUNAVAILABLE" : "ELEASEPROTOCOL";
  throw Object.assign(new LeaseError(code, `etcd stream error: ${text}`, { where }), { grpcCode });
}

/** An etcd refusal (4xx): ELEASEPROTOCOL carrying the gRPC code and message. */
function gatewayError(body: unknown, status: number, where: string): LeaseError {
  const record = asRecord(body);
  const grpcCode = typeof record["code"] === "number" ? record["code"] : undefined;
  const message = typeof record["message"] === "string" ? record["message"] : JSON.stringify(body);
  return Object.assign(
    new LeaseError(
      "ELEASEPROTOCOL",
      `etcd refused the request (HTTP ${status}, gRPC ${grpcCode}): ${message}`,
      {
        where,
      },
    ),
    { grpcCode },
  );
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new LeaseError("ELEASEPROTOCOL", `answer is not JSON: ${text.slice(0, 200)}`, {
      where,
      cause: error,
    });
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortReason(signal);
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new LeaseError("ELEASEUNAVAILABLE", "aborted");
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}

/** The object itself, or an empty one for anything that is not an object (missing fields then). */
export function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
}

export function toBase64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/**
 * Decodes a base64 field. Strict: Node's decoder skips characters outside the alphabet, so a mangled
 * answer would otherwise decode to different bytes without a word.
 */
export function fromBase64(value: string | undefined, where = "etcd answer"): string {
  if (value === undefined) return "";
  if (value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new LeaseError("ELEASEPROTOCOL", `expected base64, got ${JSON.stringify(value.slice(0, 100))}`, {
      where,
    });
  }
  return Buffer.from(value, "base64").toString("utf8");
}

/** An int64 field of a gateway answer (a decimal string, omitted when zero) as a bigint. */
export function int64Field(value: unknown, where: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  throw new LeaseError("ELEASEPROTOCOL", `expected an int64 string, got ${JSON.stringify(value)}`, { where });
}
