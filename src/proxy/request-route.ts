// Where one request goes — a pure decision from the request's method and path and the node's role, so
// that every combination can be tested without sockets. The proxy server carries the decision out.
//
//   /litefs/health                         → answered by the proxy itself
//   passthrough glob                       → the local app, untouched (no TXID wait, no forwarding)
//   write or always-forward, on a replica  → the primary (forwarded, or fly-replay), unless the request
//                                            was already forwarded once: then refused (loop protection)
//   write on the primary                   → the local app; the answer carries the TXID after it
//   read                                   → the local app; on a replica after waiting for the client's TXID
//
// A write is any method but GET and HEAD (LiteFS's rule: OPTIONS and the like are writes too, because
// the proxy cannot know that the app does not write on them).

import type { ProxyMode } from "../config/config.js";
import { PathGlobList } from "./path-glob.js";

export const HEALTH_PATH = "/litefs/health";

export type ProxyRoute =
  | { readonly kind: "health" }
  | { readonly kind: "passthrough" }
  /** To the local app. `waitForTxid`: only on a replica — the primary is never behind its own clients. */
  | { readonly kind: "read"; readonly waitForTxid: boolean }
  /** To the local app on the primary; the response carries the TXID after the write. */
  | { readonly kind: "write" }
  /** To the primary's proxy. `write` says whether the request is a write (for metrics and logs). */
  | { readonly kind: "forward"; readonly write: boolean }
  /** Answer `fly-replay: instance=<primary>`. */
  | { readonly kind: "replay" }
  /** Already forwarded once and would be forwarded again: refuse. */
  | { readonly kind: "loop" };

export interface RouteInput {
  readonly method: string;
  /** The decoded path, without the query string. */
  readonly path: string;
  readonly isPrimary: boolean;
  /** The request carries the hop marker of another LiteFS proxy. */
  readonly forwarded: boolean;
}

export interface RequestRouterOptions {
  readonly passthrough: readonly string[];
  readonly alwaysForward: readonly string[];
  readonly mode: ProxyMode;
}

export function isReadMethod(method: string): boolean {
  return method === "GET" || method === "HEAD";
}

export class RequestRouter {
  readonly #passthrough: PathGlobList;
  readonly #alwaysForward: PathGlobList;
  readonly #mode: ProxyMode;

  constructor(opts: RequestRouterOptions) {
    this.#passthrough = new PathGlobList(opts.passthrough);
    this.#alwaysForward = new PathGlobList(opts.alwaysForward);
    this.#mode = opts.mode;
  }

  route(input: RouteInput): ProxyRoute {
    if (input.path === HEALTH_PATH) return { kind: "health" };
    if (this.#passthrough.matches(input.path)) return { kind: "passthrough" };
    const write = !isReadMethod(input.method);
    if (input.isPrimary) return write ? { kind: "write" } : { kind: "read", waitForTxid: false };
    if (write || this.#alwaysForward.matches(input.path)) {
      if (input.forwarded) return { kind: "loop" };
      return this.#mode === "fly-replay" ? { kind: "replay" } : { kind: "forward", write };
    }
    return { kind: "read", waitForTxid: true };
  }

  /**
   * Where an upgrade (WebSocket) goes. Upgrades are not writes whatever their method: they go to the
   * primary only on always-forward paths, else to the local app (on a replica after the TXID wait, so a
   * socket opened right after a write sees it).
   */
  routeUpgrade(input: RouteInput): ProxyRoute {
    if (input.path === HEALTH_PATH) return { kind: "health" };
    if (this.#passthrough.matches(input.path)) return { kind: "passthrough" };
    if (input.isPrimary) return { kind: "read", waitForTxid: false };
    if (this.#alwaysForward.matches(input.path)) {
      if (input.forwarded) return { kind: "loop" };
      return this.#mode === "fly-replay" ? { kind: "replay" } : { kind: "forward", write: false };
    }
    return { kind: "read", waitForTxid: true };
  }
}

export interface RequestTarget {
  /** The decoded path the globs are matched against (the raw path when it does not decode). */
  readonly path: string;
  /** Path and query to send upstream (origin form, even when the client sent an absolute URL). */
  readonly originForm: string;
}

/** Splits a request's URL as Node gives it (`req.url`) into what routing and forwarding need. */
export function requestTarget(url: string | undefined): RequestTarget {
  let originForm = url ?? "/";
  if (!originForm.startsWith("/")) {
    try {
      const absolute = new URL(originForm);
      originForm = absolute.pathname + absolute.search;
    } catch {
      originForm = "/" + originForm;
    }
  }
  const query = originForm.indexOf("?");
  const rawPath = query < 0 ? originForm : originForm.slice(0, query);
  let path = rawPath;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    // Malformed percent-encoding: match the raw text; the app will answer the request as it sees fit.
  }
  return { path, originForm };
}
