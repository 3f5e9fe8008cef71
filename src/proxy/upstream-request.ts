// One request to an upstream (the app, or the primary's proxy), with the retry an app that is still
// starting needs: connection failures (refused, reset before anything was sent, connect timeout) are
// retried with a growing pause until the retry window closes, then reported as "down" (502). The body
// is piped only once the connection stands, so a retry never loses body bytes; a body-less request on a
// kept-alive socket that the upstream closed meanwhile is retried as well. Anything that fails after
// the request went out is not retried (the upstream may have acted on it): EPROXYUPSTREAM.
//
// Ending the exchange (the client went away, a timeout) destroys the upstream request and its socket,
// so the app sees the disconnect too.

import http from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { Duplex, Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

import type { ExchangeLifetime } from "./exchange-lifetime.js";
import { ProxyError } from "./proxy-error.js";

export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  /** What it is, for messages: "the app at 127.0.0.1:3000", "the primary's proxy at http://…". */
  readonly description: string;
  readonly downCode: "EPROXYAPPDOWN" | "EPROXYPRIMARYDOWN";
}

export interface UpstreamRequestOptions {
  readonly target: UpstreamTarget;
  readonly method: string;
  /** The request target: path and query, as the client sent it. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  /** The request body, or undefined when the request has none (then retries are always safe). */
  readonly body: Readable | undefined;
  /** A keep-alive agent for ordinary requests; false for upgrades (the socket is handed over). */
  readonly agent: http.Agent | false;
  /** The exchange this request belongs to; ending it destroys the request. */
  readonly lifetime: ExchangeLifetime;
  /** How long connection failures are retried, in ms (≥ 0). */
  readonly connectRetryMs: number;
}

export type UpstreamReply =
  | { readonly kind: "response"; readonly response: IncomingMessage }
  | {
      readonly kind: "upgrade";
      readonly response: IncomingMessage;
      readonly socket: Duplex;
      readonly head: Buffer;
    };

type Attempt =
  | { readonly kind: "reply"; readonly reply: UpstreamReply }
  | { readonly kind: "failed"; readonly error: NodeJS.ErrnoException; readonly retryable: boolean };

const CONNECT_FAILURES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);
const STALE_SOCKET_FAILURES = new Set(["ECONNRESET", "EPIPE"]);
const FIRST_PAUSE_MS = 20;
const MAX_PAUSE_MS = 250;

/** Sends the request; resolves with the upstream's answer or rejects with a ProxyError (or the abort). */
export async function sendUpstream(opts: UpstreamRequestOptions): Promise<UpstreamReply> {
  const deadline = Date.now() + opts.connectRetryMs;
  let pauseMs = FIRST_PAUSE_MS;
  let attempts = 0;
  for (;;) {
    attempts++;
    const attempt = await attemptOnce(opts, Math.max(1, deadline - Date.now()));
    if (opts.lifetime.ended) throw opts.lifetime.reason;
    if (attempt.kind === "reply") return attempt.reply;
    const { error } = attempt;
    const remaining = deadline - Date.now();
    if (!attempt.retryable) {
      throw new ProxyError(
        "EPROXYUPSTREAM",
        `${opts.target.description} failed the request: ${error.message}`,
        {
          cause: error,
        },
      );
    }
    if (remaining <= 0) {
      throw new ProxyError(
        opts.target.downCode,
        `${opts.target.description} is not accepting connections (${error.code ?? error.message}) after ` +
          `${attempts} attempts over ${opts.connectRetryMs} ms; is it running?`,
        { cause: error, retryAfterSeconds: 1 },
      );
    }
    await sleep(Math.min(pauseMs, remaining), undefined, { signal: opts.lifetime.signal });
    pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
  }
}

function attemptOnce(opts: UpstreamRequestOptions, connectTimeoutMs: number): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    let sent = false;
    let settled = false;
    const settle = (attempt: Attempt): void => {
      if (settled) return;
      settled = true;
      resolve(attempt);
    };
    const request = http.request({
      host: opts.target.host,
      port: opts.target.port,
      method: opts.method,
      path: opts.path,
      headers: opts.headers,
      agent: opts.agent,
    });
    const unregister = opts.lifetime.onEnd(() => request.destroy(new Error("the exchange ended")));
    request.once("close", unregister);
    request.on("error", (error: NodeJS.ErrnoException) => {
      const code = error.code ?? "";
      const retryable =
        !opts.lifetime.ended &&
        ((!sent && CONNECT_FAILURES.has(code)) ||
          (request.reusedSocket && opts.body === undefined && STALE_SOCKET_FAILURES.has(code)));
      settle({ kind: "failed", error, retryable });
    });
    request.on("response", (response) => settle({ kind: "reply", reply: { kind: "response", response } }));
    request.on("upgrade", (response, socket, head) =>
      settle({ kind: "reply", reply: { kind: "upgrade", response, socket, head } }),
    );
    request.on("socket", (socket) => {
      const send = (): void => {
        sent = true;
        if (opts.body === undefined) request.end();
        else opts.body.pipe(request);
      };
      if (!socket.connecting) {
        send();
        return;
      }
      // An unreachable host can leave connect() hanging for minutes: bound it by the retry window.
      const timer = setTimeout(() => {
        const timeout: NodeJS.ErrnoException = new Error(`connect timed out after ${connectTimeoutMs} ms`);
        timeout.code = "ETIMEDOUT";
        request.destroy(timeout);
      }, connectTimeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        send();
      });
      socket.once("close", () => clearTimeout(timer));
    });
  });
}
