// What the node API does with requests that are wrong before any route looks at them, so that client
// garbage always gets a clear 4xx with a JSON body {"error", "code"} — never a 5xx, a silent close or a
// connection held open without bound:
//
//   - HTTP the parser refuses (bad request line, bad header, header block over 16 KiB, a URL too long)
//     → 400 / 431 with a body naming the parser's code (node's default answer has no body);
//   - CONNECT → 405 (node would otherwise close the socket without a word);
//   - a URL that does not parse, or a route's query with unknown or repeated parameters → 400;
//   - a request body that stops arriving (no byte for `idleMs` while nothing waits unread) → 408 and
//     the connection is cut: a client that stalls mid-upload cannot hold a handler (and a temporary
//     file, and locks) forever. Bodies that arrive slowly but steadily are fine.
//
// Headers must arrive within HEADERS_TIMEOUT_MS (node checks every CONNECTION_CHECK_MS). There is no
// whole-request time limit: an import of a large database may legitimately take long.

import type http from "node:http";
import type { Duplex } from "node:stream";

/** How long a client may take to send its request headers. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** How often node looks for connections past the headers timeout. */
export const CONNECTION_CHECK_MS = 1_000;
/** Default: how long a request body may stop arriving before the request is refused (408). */
export const BODY_IDLE_TIMEOUT_MS = 10_000;

/** A request the API refuses: `status` is a 4xx, `code` a stable name of what was wrong. */
export class ApiRequestError extends Error {
  override readonly name = "ApiRequestError";
  readonly status: number;
  readonly code: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    if (!(status >= 400 && status < 500)) throw new RangeError(`ApiRequestError status ${status}`);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** Options for http.createServer that bound how long a client may take to send its headers. */
export const SERVER_TIMEOUTS: http.ServerOptions = {
  headersTimeout: HEADERS_TIMEOUT_MS,
  requestTimeout: 0,
  connectionsCheckingInterval: CONNECTION_CHECK_MS,
};

/** Answers parser errors and CONNECT with a JSON body instead of node's bare answers. */
export function installClientErrorAnswers(server: http.Server): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, code] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "EHEADERS"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "ETIMEOUT"]
          : [400, "Bad Request", "EHTTP"];
    const what =
      status === 431
        ? "the request line and headers exceed 16 KiB"
        : status === 408
          ? `the request headers did not arrive within ${HEADERS_TIMEOUT_MS} ms`
          : `malformed HTTP request (${err.code ?? "parse error"})`;
    socket.end(rawAnswer(status, reason, { error: what, code }));
  });
  server.on("connect", (_req: http.IncomingMessage, socket: Duplex) => {
    socket.end(
      rawAnswer(405, "Method Not Allowed", {
        error: "CONNECT is not served by the node API",
        code: "EMETHOD",
      }),
    );
  });
}

function rawAnswer(status: number, reason: string, body: { error: string; code: string }): string {
  const text = JSON.stringify(body) + "\n";
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`
  );
}

/** The request's URL, or ApiRequestError 400 EBADURL when it does not parse. */
export function parseRequestUrl(raw: string | undefined): URL {
  try {
    return new URL(raw ?? "/", "http://node");
  } catch {
    throw new ApiRequestError(400, "EBADURL", `the request target does not parse as a URL path`);
  }
}

/**
 * Throws ApiRequestError 400 EQUERY when `url` has a query parameter not in `allowed`, or one of them
 * more than once (which value counts would be a guess).
 */
export function checkQuery(url: URL, route: string, allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of url.searchParams.keys()) {
    if (!allowed.includes(key)) {
      const takes = allowed.length === 0 ? "takes no query parameters" : `takes only ${allowed.join(", ")}`;
      throw new ApiRequestError(400, "EQUERY", `unknown query parameter ${quote(key)}: ${route} ${takes}`);
    }
    if (seen.has(key)) {
      throw new ApiRequestError(400, "EQUERY", `query parameter ${quote(key)} given more than once`);
    }
    seen.add(key);
  }
}

/** A parameter name as shown in an error: JSON-quoted, at most 64 characters of it. */
function quote(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
}

/**
 * Watches `req`'s body: when no byte arrives for `idleMs` while the handler has read everything that
 * came (so the client, not the handler, is the slow one), answers 408 (unless an answer started) and
 * destroys the connection. Stops by itself when the body is complete or the connection closes.
 */
export function guardBodyProgress(req: http.IncomingMessage, res: http.ServerResponse, idleMs: number): void {
  if (req.complete || !hasBody(req)) return;
  const socket = req.socket;
  let lastBytes = socket.bytesRead;
  let lastProgressMs = Date.now();
  const timer = setInterval(
    () => {
      if (req.complete || socket.destroyed) return clearInterval(timer);
      const bytes = socket.bytesRead;
      if (bytes !== lastBytes || req.readableLength > 0) {
        lastBytes = bytes;
        lastProgressMs = Date.now();
        return;
      }
      if (Date.now() - lastProgressMs < idleMs) return;
      clearInterval(timer);
      if (!res.headersSent) {
        const text =
          JSON.stringify({
            error: `the request body stopped arriving (no byte for ${idleMs} ms)`,
            code: "EBODYTIMEOUT",
          }) + "\n";
        res.writeHead(408, {
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(text),
          Connection: "close",
        });
        res.end(text, () => socket.destroy());
        setTimeout(() => socket.destroy(), 1000).unref();
      } else {
        socket.destroy();
      }
    },
    Math.max(50, Math.min(1000, idleMs / 4)),
  );
  timer.unref();
  socket.once("close", () => clearInterval(timer));
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Bytes of an unwanted request body read (and dropped) after an answer before the connection is cut. */
const DISCARD_LIMIT_BYTES = 16 << 20;

/**
 * Ends `res` with `text` (its head already written) once the request body that nobody read has been
 * read and dropped (past `discardLimitBytes`, default DISCARD_LIMIT_BYTES, the connection is cut).
 * Ending at once would make node close a socket that still holds unread bytes: the kernel then resets
 * the connection, and the client loses the answer it was sent. Route handlers that answer without
 * reading the body use this.
 */
export function endAfterBody(
  res: http.ServerResponse,
  text: string,
  discardLimitBytes: number = DISCARD_LIMIT_BYTES,
): void {
  const req = res.req;
  if (req.complete || req.socket.destroyed) {
    res.end(text);
    return;
  }
  res.write(text);
  let dropped = 0;
  req.on("data", (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > discardLimitBytes) req.socket.destroy();
  });
  req.once("end", () => res.end());
  req.resume();
}
