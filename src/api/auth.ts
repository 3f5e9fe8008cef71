// Authentication of the node API (`http.auth-token`, issue 8): when a token is configured, every
// request to the node API must carry `Authorization: Bearer <token>` — replication (`POST /stream`),
// import, export, info, pos, status, metrics, events, and paths that match no route (so that a
// stranger cannot even map the routes). Without a token configured nothing is checked, as in LiteFS.
//
// A refused request gets 401 with `WWW-Authenticate: Bearer realm="litefs"` and the JSON body
// `{"error", "code"}` — code ESTREAMAUTH on `POST /stream` (the replication protocol's code,
// docs/protocol.md), EAUTH on every other route — before any handler runs, so nothing changes. The
// comparison is constant-time (`checkBearerToken`).
//
// The 401 is sent at once. A refused request's body is never stored: it is read and dropped, and the
// response is ended only once the body is over, so that a client still sending an upload meets no
// broken pipe (whether it asked for keep-alive or `Connection: close`) — at most DISCARD_LIMIT_BYTES of
// it, for at most DISCARD_LIMIT_MS; past either the connection is cut.
//
// Refusals are logged (warn), at most once a minute per client address, with how many were not logged.

import type http from "node:http";

import type { StoreLogger } from "../store/store-logger.js";

import { checkBearerToken } from "./stream-admission.js";
import { StreamError } from "./stream-error.js";

/** The code of a refused request on any route but `POST /stream`. */
export const AUTH_ERROR_CODE = "EAUTH";
export const AUTH_REALM = "litefs";
/** How much of a refused request's body is read and dropped before the connection is cut. */
export const DISCARD_LIMIT_BYTES = 16 * 1024 * 1024;
/** How long a refused request's body is read and dropped before the connection is cut. */
export const DISCARD_LIMIT_MS = 10_000;
/** Refusals from one client address are logged at most this often. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Client addresses remembered for that; the memory is dropped past this many. */
const MAX_REMEMBERED_CLIENTS = 1024;

/** Why a request was refused, or null when it may proceed. */
export function authRefusal(
  authorization: string | undefined,
  token: string | null,
): { readonly reason: string } | null {
  try {
    checkBearerToken(authorization, token);
    return null;
  } catch (err) {
    if (err instanceof StreamError && err.code === "ESTREAMAUTH") return { reason: err.detail };
    throw err;
  }
}

/** The node API's gate: one per server, holding the token and the refusal log's memory. */
export class NodeAuthenticator {
  readonly #token: string | null;
  readonly #log: StoreLogger;
  readonly #now: () => number;
  /** Per client address: when a refusal was last logged, and how many were not logged since. */
  readonly #logged = new Map<string, { at: number; unlogged: number }>();

  constructor(token: string | null, log: StoreLogger, now: () => number = Date.now) {
    if (token === "") throw new RangeError("the node API token must not be empty (null: no authentication)");
    this.#token = token;
    this.#log = log;
    this.#now = now;
  }

  /** True when a token is required. */
  get required(): boolean {
    return this.#token !== null;
  }

  /**
   * Lets the request through (true) when no token is configured or the request carries it; otherwise
   * answers 401 and returns false. The caller must not touch `req` or `res` after a false.
   */
  admit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const refusal = authRefusal(req.headers.authorization, this.#token);
    if (refusal === null) return true;
    refuse(req, res, refusal.reason);
    this.#logRefusal(req, refusal.reason);
    return false;
  }

  #logRefusal(req: http.IncomingMessage, reason: string): void {
    const remote = req.socket.remoteAddress ?? "?";
    const now = this.#now();
    const seen = this.#logged.get(remote);
    if (seen !== undefined && now - seen.at < REFUSAL_LOG_INTERVAL_MS) {
      seen.unlogged++;
      return;
    }
    if (this.#logged.size >= MAX_REMEMBERED_CLIENTS) this.#logged.clear();
    this.#logged.set(remote, { at: now, unlogged: 0 });
    this.#log.warn("node API request refused: unauthorized", {
      remote,
      method: req.method,
      path: (req.url ?? "").split("?")[0],
      reason,
      ...(seen !== undefined && seen.unlogged > 0 ? { notLoggedSince: seen.unlogged } : {}),
    });
  }
}

function refuse(req: http.IncomingMessage, res: http.ServerResponse, reason: string): void {
  const isStream = req.method === "POST" && (req.url ?? "").split("?")[0] === "/stream";
  const body =
    JSON.stringify({
      error: `unauthorized: ${reason}; this node requires Authorization: Bearer <http.auth-token>`,
      code: isStream ? "ESTREAMAUTH" : AUTH_ERROR_CODE,
    }) + "\n";
  res.writeHead(401, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    "WWW-Authenticate": `Bearer realm="${AUTH_REALM}"`,
  });
  if (req.complete) {
    res.end(body);
    return;
  }
  // The whole answer goes out now (its length is declared, so the client has it all); ending the
  // response waits for the request's end, because Node closes a `Connection: close` socket — and
  // stops reading it — as soon as the response ends.
  res.write(body);
  discardBody(req, () => res.end());
}

/** Reads and drops the rest of `req`'s body, then calls `done`; past the limits, cuts the connection. */
function discardBody(req: http.IncomingMessage, done: () => void): void {
  let received = 0;
  const cut = (): void => {
    clearTimeout(timer);
    req.socket.destroy();
  };
  const timer = setTimeout(cut, DISCARD_LIMIT_MS);
  timer.unref();
  req.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > DISCARD_LIMIT_BYTES) cut();
  });
  req.once("end", () => {
    clearTimeout(timer);
    done();
  });
  req.once("close", () => clearTimeout(timer));
  req.resume();
}
