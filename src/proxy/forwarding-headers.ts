// Header rewriting on the way through the proxy (RFC 9110 §7.6.1): hop-by-hop headers — the fixed set
// plus any named in the request's own `Connection` header — belong to one connection and are dropped;
// `X-Forwarded-For` gets the client's address appended; `X-Forwarded-Proto`/`-Host` are set when absent
// (kept when present, so an edge that terminates TLS in front of the proxy keeps telling the app
// "https" — the app decides whether to trust them); the Host header is kept as the client sent it.
//
// The hop marker: a proxy forwarding a request to the primary's proxy adds `Litefs-Proxy-Hop`; a proxy
// never forwards a request that carries it (loop protection when two nodes each think the other is the
// primary, e.g. in the middle of a failover), and strips it before the app sees the request. It grants
// nothing: a client that sends it only stops its own request from being forwarded. One exception: a
// request forwarded once to a node that is no longer (or not yet) the primary goes on once more, to the
// primary that node knows, unless it came from there (FROM_HEADER) — value "2", never forwarded again
// (proxy-server.ts: a primary that held writes while it handed its lease off, a stale view).

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

export const HOP_MARKER_HEADER = "litefs-proxy-hop";
/**
 * Added beside the hop marker: the advertised URL of the proxy that forwarded the request, so that the
 * next one does not send it back there (proxy-server.ts, a stale view of the primary). Stripped before
 * the app, and replaced (or dropped) on every forward.
 */
export const FROM_HEADER = "litefs-proxy-from";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // The proxy's own server has already answered "100 Continue" to the client; the upstream request
  // streams the body without waiting.
  "expect",
]);

const NO_TOKENS: ReadonlySet<string> = new Set();

/** Header names listed in Connection; the usual lone "keep-alive"/"close" name none (a fast path). */
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined || value === "keep-alive" || value === "close" || value === "Keep-Alive")
    return NO_TOKENS;
  const tokens = new Set<string>();
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const token of line.split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "") tokens.add(name);
    }
  }
  return tokens;
}

export interface UpstreamHeaderOptions {
  /** The address of the peer that sent the request (the client, or a replica's proxy). */
  readonly clientAddress: string | undefined;
  /**
   * "add" when forwarding to the primary's proxy ("again": a second forward, of a write held during a
   * handoff), "strip" when sending to the app.
   */
  readonly hopMarker: "add" | "again" | "strip";
  /** With a hop marker: this proxy's advertised URL, for FROM_HEADER (absent: none is sent). */
  readonly from?: string;
  /** Keep `Connection: upgrade` and `Upgrade` (a WebSocket handshake). */
  readonly upgrade: boolean;
}

/** The headers of the request sent upstream; `incoming` is not modified. */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  opts: UpstreamHeaderOptions,
): OutgoingHttpHeaders {
  const dropped = connectionTokens(incoming.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name)) continue;
    out[name] = value;
  }
  if (opts.upgrade && incoming.upgrade !== undefined) {
    out.connection = "upgrade";
    out.upgrade = incoming.upgrade;
  }
  const client = opts.clientAddress?.startsWith("::ffff:") ? opts.clientAddress.slice(7) : opts.clientAddress;
  if (client !== undefined) {
    const prior = incoming["x-forwarded-for"];
    const chain = prior === undefined ? [] : Array.isArray(prior) ? prior : [prior];
    out["x-forwarded-for"] = [...chain, client].join(", ");
  }
  if (incoming["x-forwarded-proto"] === undefined) out["x-forwarded-proto"] = "http";
  if (incoming["x-forwarded-host"] === undefined && incoming.host !== undefined) {
    out["x-forwarded-host"] = incoming.host;
  }
  delete out[FROM_HEADER];
  if (opts.hopMarker === "strip") delete out[HOP_MARKER_HEADER];
  else {
    out[HOP_MARKER_HEADER] = opts.hopMarker === "add" ? "1" : "2";
    if (opts.from !== undefined) out[FROM_HEADER] = opts.from;
  }
  return out;
}

export interface DownstreamHeaderOptions {
  /** Drop these (lower-case) names too, e.g. a TXID header the proxy replaces with its own. */
  readonly drop?: ReadonlySet<string>;
  /** Keep `Connection`/`Upgrade` (relaying a 101). */
  readonly upgrade?: boolean;
}

/**
 * The response headers relayed to the client, from the upstream's raw [name, value, …] list (case and
 * repeated headers such as Set-Cookie preserved), without hop-by-hop headers.
 */
export function downstreamResponseHeaders(
  rawHeaders: readonly string[],
  opts: DownstreamHeaderOptions = {},
): string[] {
  let connection: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === 10 && rawHeaders[i].toLowerCase() === "connection") {
      connection = connection === undefined ? rawHeaders[i + 1] : `${connection}, ${rawHeaders[i + 1]}`;
    }
  }
  const dropped = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const keepForUpgrade = opts.upgrade === true && (name === "connection" || name === "upgrade");
    if (!keepForUpgrade && (HOP_BY_HOP.has(name) || dropped.has(name))) continue;
    if (opts.drop?.has(name) === true) continue;
    out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}
