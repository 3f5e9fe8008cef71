// One HTTP request with node:http(s), answered as text: what the nodes and the CLI ask each other and
// etcd (lease calls, /info, /handoff, HALT, /promote). Not the global fetch: on this Node (20) fetch
// is undici, and a small POST on loopback cost ~1.0–1.8 ms of CPU against ~0.35–0.5 ms here (client and
// server together, measured side by side) — in a handoff every node makes several such calls while the
// cores are busiest. The first fetch of a process also compiles undici and its HTTP parser (~60 ms of
// CPU for `litefs promote`, ~20 ms of it after the answer: in the window where the new primary takes its
// first writes, on the same machine).
//
// Connections are kept alive between calls (one agent per protocol); an idle kept socket does not hold
// the process open (Node unrefs it), so a CLI exits as soon as its work is done. A kept socket the
// server closed just as it was reused (ECONNRESET/EPIPE before any answer) is retried once on a new
// one — the server closed it idle, so it never saw the request (Node's documented remedy).

import http from "node:http";
import https from "node:https";

export interface HttpRequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Ends the request with that signal's reason (an Error, or an AbortError) when it aborts. */
  readonly signal?: AbortSignal;
  /** Ends the request with HttpTimeoutError when the whole answer has not arrived by then (ms). */
  readonly timeoutMs?: number;
  /** Answers longer than this fail with HttpAnswerTooLargeError (bytes). Default 4 MiB. */
  readonly maxBytes?: number;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
}

export class HttpTimeoutError extends Error {
  override readonly name = "HttpTimeoutError";
  readonly code = "ETIMEDOUT";
}

export class HttpAnswerTooLargeError extends Error {
  override readonly name = "HttpAnswerTooLargeError";
  readonly code = "EANSWERTOOLARGE";
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
const httpAgent = new http.Agent({ keepAlive: true });
const httpsAgent = new https.Agent({ keepAlive: true });

/**
 * Sends one request and reads the whole answer. Rejects with the connection's error (ECONNREFUSED, …),
 * HttpTimeoutError, HttpAnswerTooLargeError, or the signal's reason.
 */
export async function httpRequest(url: string | URL, opts: HttpRequestOptions = {}): Promise<HttpAnswer> {
  try {
    return await requestOnce(url, opts);
  } catch (err) {
    if (!(err instanceof StaleSocketError)) throw err;
    return requestOnce(url, opts);
  }
}

/** A kept-alive socket that turned out closed by the server before the request got an answer. */
class StaleSocketError extends Error {}

function requestOnce(url: string | URL, opts: HttpRequestOptions): Promise<HttpAnswer> {
  const target = typeof url === "string" ? new URL(url) : url;
  const secure = target.protocol === "https:";
  if (!secure && target.protocol !== "http:") {
    return Promise.reject(new TypeError(`not an http(s) URL: ${target.href}`));
  }
  const signal = opts.signal;
  if (signal?.aborted === true) return Promise.reject(abortReason(signal));
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  const headers: Record<string, string | number> = { ...opts.headers };
  if (body !== undefined) headers["Content-Length"] = body.length;

  return new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    let answered = false;
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(abortReason(signal!));
    const req = (secure ? https : http).request(
      target,
      { method: opts.method ?? "GET", headers, agent: secure ? httpsAgent : httpAgent },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        let total = 0;
        res.on("data", (chunk: Buffer) => {
          total += chunk.length;
          if (total > maxBytes) {
            fail(new HttpAnswerTooLargeError(`the answer is over the ${maxBytes}-byte limit`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => {
          if (settled) return;
          settled = true;
          cleanup();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks, total).toString("utf8"),
          });
        });
        res.on("error", (err) => fail(err));
        res.on("close", () => {
          if (!res.complete) fail(new Error("the connection closed before the answer ended"));
        });
      },
    );
    if (opts.timeoutMs !== undefined) {
      const ms = opts.timeoutMs;
      timer = setTimeout(() => fail(new HttpTimeoutError(`no answer within ${ms} ms`)), ms);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
      fail(stale && !answered ? new StaleSocketError(err.message, { cause: err }) : err);
    });
    req.end(body);
  });
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException("the request was aborted", "AbortError");
}
