// The app-facing HTTP proxy of one node (LiteFS's `proxy` section): sits in front of the app, sends
// writes that reach a replica to the primary (forwarded to the primary's proxy, or answered with
// fly-replay), gives clients read-your-writes across nodes with the TXID of their last write, answers
// /litefs/health, and relays everything else to the app — bodies streamed both ways, WebSockets
// included. It serves no other route of its own: node routes (stream, halt, tx, …) are not reachable
// through it.
//
// It is handed its view of the node (ProxyNodeView) and knows nothing else about replication.
//
// Lifetimes: every exchange has an ExchangeLifetime, ended when the client disconnects (the upstream
// request and its socket are destroyed, so the app sees the disconnect) or when proxy.write-timeout
// expires. Upstream connections come from keep-alive agents without a socket limit: a slow app request
// holds one socket and never queues the others.

import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { AddressInfo } from "node:net";

import type { ProxyConfig } from "../config/config.js";
import { parseHostPort } from "../config/host-port.js";
import {
  FROM_HEADER,
  HOP_MARKER_HEADER,
  downstreamResponseHeaders,
  upstreamRequestHeaders,
} from "./forwarding-headers.js";
import { relayBody } from "./body-relay.js";
import { ExchangeLifetime } from "./exchange-lifetime.js";
import { PrimaryLocator } from "./primary-locator.js";
import { errorAnswer, healthAnswer, replayAnswer, type ProxyAnswer } from "./proxy-answer.js";
import { ClientGoneError, ProxyError, exchangeFailure, forwardLoopError } from "./proxy-error.js";
import { SILENT_PROXY_LOGGER, type ProxyLogger } from "./proxy-logger.js";
import { ProxyCounters, type ProxyMetrics } from "./proxy-metrics.js";
import type { ProxyNodeView } from "./proxy-node-view.js";
import { ReadYourWrites } from "./read-your-writes.js";
import { RequestRouter, requestTarget, type ProxyRoute, type RequestTarget } from "./request-route.js";
import { TXID_HEADER } from "./txid-token.js";
import { UpgradeRelay } from "./upgrade-relay.js";
import { appTarget, primaryTarget } from "./upstream-target.js";
import { sendUpstream, type UpstreamTarget } from "./upstream-request.js";

export interface ProxyServerOptions {
  readonly config: ProxyConfig;
  readonly view: ProxyNodeView;
  /** Defaults to a private ProxyCounters (see `metrics`). */
  readonly metrics?: ProxyMetrics;
  readonly log?: ProxyLogger;
  /** How long connection failures to the app or the primary's proxy are retried (default 2000 ms). */
  readonly connectRetryMs?: number;
  /** How often a write waiting for a primary to be known looks again (default 50 ms). */
  readonly primaryPollMs?: number;
  /**
   * How long a request forwarded here while this node is not (yet) the primary waits for it to become
   * primary before it is refused as a forwarding loop (default 1000 ms): the sender took this node for
   * the primary — typically the target of a handoff, moments before it holds the lease.
   */
  readonly forwardedWaitMs?: number;
}

export const DEFAULT_CONNECT_RETRY_MS = 2_000;
export const DEFAULT_PRIMARY_POLL_MS = 50;
export const DEFAULT_FORWARDED_WAIT_MS = 1_000;
/** How often a write held for a handoff, or forwarded to a node about to be primary, looks again. */
const HANDOFF_POLL_MS = 2;
/** The longest a write is held for a handoff (the handoff bounds itself well within this). */
const HANDOFF_HOLD_MAX_MS = 30_000;
/** How often Node checks header/request timeouts (its default, 30 s, would make them very coarse). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;
const NO_TXID_FROM_APP: ReadonlySet<string> = new Set([TXID_HEADER]);

export class ProxyServer {
  readonly metrics: ProxyMetrics;
  readonly #config: ProxyConfig;
  readonly #view: ProxyNodeView;
  readonly #log: ProxyLogger;
  readonly #router: RequestRouter;
  readonly #readYourWrites: ReadYourWrites;
  readonly #primaryLocator: PrimaryLocator;
  readonly #upgrades: UpgradeRelay;
  readonly #app: UpstreamTarget;
  readonly #appAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
  readonly #primaryAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
  readonly #connectRetryMs: number;
  readonly #forwardedWaitMs: number;
  readonly #server: http.Server;
  #address: AddressInfo | undefined;
  /** Exchanges whose response has not closed yet (for `close({graceMs})`). */
  #active = 0;
  #localWrites = 0;
  /**
   * The URL other nodes reach this proxy at (`advertiseAs`; else its own `url`), sent as FROM_HEADER
   * when forwarding.
   */
  #advertised: string | undefined;

  constructor(opts: ProxyServerOptions) {
    const config = opts.config;
    this.#config = config;
    this.#view = opts.view;
    this.metrics = opts.metrics ?? new ProxyCounters();
    this.#log = opts.log ?? SILENT_PROXY_LOGGER;
    this.#connectRetryMs = opts.connectRetryMs ?? DEFAULT_CONNECT_RETRY_MS;
    this.#forwardedWaitMs = opts.forwardedWaitMs ?? DEFAULT_FORWARDED_WAIT_MS;
    this.#app = appTarget(config.target);
    this.#router = new RequestRouter(config);
    this.#readYourWrites = new ReadYourWrites({
      view: opts.view,
      db: config.db,
      timeoutMs: config.txidWaitTimeoutMs,
      metrics: this.metrics,
    });
    this.#primaryLocator = new PrimaryLocator({
      view: opts.view,
      mode: config.mode,
      timeoutMs: config.primaryRedirectTimeoutMs,
      pollMs: opts.primaryPollMs ?? DEFAULT_PRIMARY_POLL_MS,
    });
    this.#upgrades = new UpgradeRelay({
      router: this.#router,
      view: opts.view,
      readYourWrites: this.#readYourWrites,
      primaryLocator: this.#primaryLocator,
      metrics: this.metrics,
      log: this.#log,
      app: this.#app,
      connectRetryMs: this.#connectRetryMs,
      maxLagMs: config.maxLagMs,
    });
    const read = config.readTimeoutMs;
    const header = config.readHeaderTimeoutMs;
    this.#server = http.createServer(
      {
        // Node requires headersTimeout ≤ requestTimeout when both are set.
        requestTimeout: read,
        headersTimeout: read > 0 && (header === 0 || header > read) ? read : header,
        keepAliveTimeout: config.idleTimeoutMs,
        connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      },
      (req, res) => this.#onRequest(req, res),
    );
    this.#server.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) =>
      this.#upgrades.handle(req, socket, head),
    );
  }

  /** Binds `proxy.addr` (port 0 picks a free port); resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    const addr = parseHostPort(this.#config.addr);
    if (!addr.ok) throw new RangeError(`proxy.addr: ${addr.reason}`);
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(addr.port, addr.host === "" ? undefined : addr.host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#address = this.#server.address() as AddressInfo;
    return this.#address;
  }

  /** Tells the proxy the URL other nodes reach it at (a node's `proxyURL`), named when it forwards. */
  advertiseAs(url: string): void {
    this.#advertised = url;
  }

  /** The proxy's base URL once listening, e.g. "http://127.0.0.1:8080" (what other nodes forward to). */
  get url(): string {
    const address = this.#address;
    if (address === undefined) throw new Error("ProxyServer.url: not listening");
    const unspecified = address.address === "::" || address.address === "0.0.0.0";
    const host = unspecified
      ? "127.0.0.1"
      : address.family === "IPv6"
        ? `[${address.address}]`
        : address.address;
    return `http://${host}:${address.port}`;
  }

  /**
   * Stops listening and ends every open exchange, tunnel and upstream connection. With `graceMs`,
   * exchanges in progress — writes held for a handoff and forwarded to the next primary, say — get
   * that long to finish first (idle keep-alive connections close at once).
   */
  async close(opts: { graceMs?: number } = {}): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const graceMs = opts.graceMs ?? 0;
    if (graceMs > 0 && this.#active > 0) {
      this.#server.closeIdleConnections();
      const deadline = performance.now() + graceMs;
      while (this.#active > 0 && performance.now() < deadline) await sleep(HANDOFF_POLL_MS * 5);
    }
    this.#upgrades.closeAll();
    this.#server.closeAllConnections();
    this.#appAgent.destroy();
    this.#primaryAgent.destroy();
    await closed;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const exchange = new ExchangeLifetime();
    const started = performance.now();
    this.#active++;
    res.once("close", () => {
      this.#active--;
      clearTimeout(writeTimer);
      if (!res.writableFinished) exchange.end(new ClientGoneError());
      if (this.#config.debug) {
        this.#log.info("proxy: request", {
          method: req.method,
          path: req.url,
          status: res.statusCode,
          finished: res.writableFinished,
          ms: Math.round(performance.now() - started),
        });
      }
    });
    const writeTimeoutMs = this.#config.writeTimeoutMs;
    const writeTimer =
      writeTimeoutMs > 0
        ? setTimeout(() => {
            const reason = new ProxyError(
              "EPROXYWRITETIMEOUT",
              `the exchange took longer than proxy.write-timeout (${writeTimeoutMs} ms)`,
            );
            exchange.end(reason);
          }, writeTimeoutMs)
        : undefined;
    this.#serve(req, res, exchange).catch((err: unknown) => this.#fail(req, res, err, exchange));
  }

  async #serve(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    lifetime: ExchangeLifetime,
  ): Promise<void> {
    const target = requestTarget(req.url);
    const route = (): ProxyRoute =>
      this.#router.route({
        method: req.method ?? "GET",
        path: target.path,
        isPrimary: this.#view.isPrimary(),
        forwarded: req.headers[HOP_MARKER_HEADER] !== undefined,
      });
    let now = route();
    let held = false;
    if (now.kind === "write" && this.#view.handingOff?.() === true) {
      held = true;
      // This primary hands its lease off and refuses new transactions: the write waits for the outcome,
      // then goes where writes go then — the next primary (one a replica's proxy forwarded here goes on
      // as a second hop, "loop" below), or this app again if the handoff failed — instead of failing.
      const started = performance.now();
      await this.#until(() => this.#view.handingOff?.() !== true, HANDOFF_HOLD_MAX_MS, lifetime);
      now = route();
      this.#log.debug("proxy: write held during a handoff", {
        path: target.path,
        ms: Math.round(performance.now() - started),
        then: now.kind,
      });
    }
    await this.#carryOut(now, req, res, target, lifetime, held);
  }

  /** Polls `done` every HANDOFF_POLL_MS for at most `limitMs`; false when it never became true. */
  async #until(done: () => boolean, limitMs: number, lifetime: ExchangeLifetime): Promise<boolean> {
    const deadline = performance.now() + limitMs;
    while (!done()) {
      if (performance.now() >= deadline) return false;
      await sleep(HANDOFF_POLL_MS, undefined, { signal: lifetime.signal });
    }
    return true;
  }

  /**
   * `heldForHandoff`: the request reached this node while it was the primary and waited for its
   * handoff (#serve), so the primary this node knows now is its successor — even when that is the proxy
   * that forwarded it (a handoff's target forwards writes to the primary until it holds the lease).
   */
  async #carryOut(
    route: ProxyRoute,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: RequestTarget,
    lifetime: ExchangeLifetime,
    heldForHandoff = false,
  ): Promise<void> {
    switch (route.kind) {
      case "health":
        this.metrics.countRequest("health");
        if (req.method !== "GET" && req.method !== "HEAD") {
          throw new ProxyError("EPROXYMETHOD", `${req.method} is not allowed on /litefs/health; use GET`);
        }
        return this.#answer(res, healthAnswer(this.#view, this.#config.maxLagMs));
      case "passthrough":
        this.metrics.countRequest("passthrough");
        return this.#toApp(req, res, target, lifetime, false);
      case "read": {
        const forwarded = req.headers[HOP_MARKER_HEADER] !== undefined;
        const admission = await this.#readYourWrites.admit(req.headers, lifetime, {
          mayWait: route.waitForTxid,
          forwarded,
        });
        if (admission === "local") {
          this.metrics.countRequest("read");
          return this.#toApp(req, res, target, lifetime, false);
        }
        // This replica's history is on another branch than the client's last write: the primary's.
        return this.#carryOut({ kind: "forward", write: false }, req, res, target, lifetime);
      }
      case "write":
        this.metrics.countRequest("write");
        return this.#toApp(req, res, target, lifetime, true);
      case "loop": {
        // The sender took this node for the primary. Wait (bounded) until either this node is the
        // primary — a handoff's target, moments before it holds the lease — or, for a request forwarded
        // once by a proxy other than the primary this node knows, until this node knows one: the
        // sender's view was stale (this node was primary, or never was), so the request goes on to it as
        // a second and last hop. Never back to the sender (FROM_HEADER: it took this node for the
        // primary, and this node may be the one whose view is stale — a handoff's target that does not
        // hold the lease yet), except a request held here for this node's own handoff: it came while
        // this node was the primary, and the sender is the successor it handed its lease to. Sent back
        // as a second hop, it waits there to be primary; kept here, it waited forwardedWaitMs and failed
        // with EPROXYLOOP (a one-second stall of the writes a handoff's target had forwarded, seen in
        // bench/chaos.ts's SIGTERM faults). No name: only the wait.
        const from = req.headers[FROM_HEADER];
        const onward = (): string | undefined => {
          if (this.#config.mode === "fly-replay" || hopCount(req.headers[HOP_MARKER_HEADER]) !== 1) return;
          const known = this.#view.primaryProxyURL();
          if (known === undefined) return undefined;
          if (heldForHandoff) return known;
          return typeof from === "string" && known !== from ? known : undefined;
        };
        const settled = await this.#until(
          () => this.#view.isPrimary() || onward() !== undefined,
          this.#forwardedWaitMs,
          lifetime,
        );
        if (!settled) throw forwardLoopError();
        const next = this.#view.isPrimary() ? undefined : onward();
        if (next !== undefined) {
          this.metrics.countRequest("forwarded");
          return this.#toPrimary(req, res, target, lifetime, next, true);
        }
        const local = this.#router.route({
          method: req.method ?? "GET",
          path: target.path,
          isPrimary: true,
          forwarded: true,
        });
        return this.#carryOut(local, req, res, target, lifetime);
      }
      case "forward":
      case "replay": {
        const location = await this.#primaryLocator.locate(lifetime);
        if (location.kind === "self") {
          // Became primary while waiting: serve it here, as the primary would (a read is checked
          // against the client's position again).
          const local = this.#router.route({
            method: req.method ?? "GET",
            path: target.path,
            isPrimary: true,
            forwarded: req.headers[HOP_MARKER_HEADER] !== undefined,
          });
          return this.#carryOut(local, req, res, target, lifetime);
        }
        if (location.kind === "replay") {
          this.metrics.countRequest("replayed");
          return this.#answer(res, replayAnswer(location.hostname));
        }
        this.metrics.countRequest("forwarded");
        return this.#toPrimary(req, res, target, lifetime, location.url, false);
      }
    }
  }

  /**
   * Writes passed to the local app and not answered yet (its headers not received): a handoff lets
   * them finish before the mount refuses new transactions (lease-role.ts).
   */
  get localWritesInFlight(): number {
    return this.#localWrites;
  }

  /** To the local app; a write's answer gets the TXID after it (`stampTxid`). */
  async #toApp(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: RequestTarget,
    lifetime: ExchangeLifetime,
    stampTxid: boolean,
  ): Promise<void> {
    if (stampTxid) this.#localWrites++;
    // The term the write runs in: its answer is checked against it (mayAcknowledge) before it is relayed.
    const epoch = stampTxid ? this.#view.primaryEpoch?.() : undefined;
    let response: http.IncomingMessage;
    try {
      response = await this.#sendPlain(req, target, lifetime, {
        upstream: this.#app,
        hopMarker: "strip",
        agent: this.#appAgent,
        description: this.#app.description,
      });
    } finally {
      if (stampTxid) this.#localWrites--;
    }
    if (
      epoch !== undefined &&
      (response.statusCode ?? 502) < 400 &&
      this.#view.mayAcknowledge?.(epoch) === false
    ) {
      response.resume(); // the app's answer is dropped: its success is not ours to confirm any more
      throw new ProxyError(
        "EPROXYLEASELOST",
        `the app answered this write (${response.statusCode}) after this node's lease (epoch ${epoch}) ` +
          "ended without a handoff: the write may have been committed here and not reached the next " +
          "primary — its outcome is unknown; check before retrying",
      );
    }
    const headers = downstreamResponseHeaders(
      response.rawHeaders,
      stampTxid ? { drop: NO_TXID_FROM_APP } : {},
    );
    // Read after the app answered: a write is committed before its answer, so this TXID includes it.
    if (stampTxid) headers.push(...this.#readYourWrites.stampHeaders());
    await this.#relay(response, res, headers);
  }

  /**
   * To the primary's proxy, marked as forwarded (`secondHop`: a request that came forwarded, going on
   * once more); its answer (TXID cookie and header included) relayed.
   */
  async #toPrimary(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: RequestTarget,
    lifetime: ExchangeLifetime,
    url: string,
    secondHop: boolean,
  ): Promise<void> {
    const response = await this.#sendPlain(req, target, lifetime, {
      upstream: primaryTarget(url),
      hopMarker: secondHop ? "again" : "add",
      agent: this.#primaryAgent,
      description: `the primary's proxy at ${url}`,
    });
    await this.#relay(response, res, downstreamResponseHeaders(response.rawHeaders));
  }

  /** Sends a plain (non-upgrade) request upstream; an upstream that switches protocols is an error. */
  async #sendPlain(
    req: http.IncomingMessage,
    target: RequestTarget,
    lifetime: ExchangeLifetime,
    via: {
      upstream: Parameters<typeof sendUpstream>[0]["target"];
      hopMarker: "strip" | "add" | "again";
      agent: http.Agent;
      description: string;
    },
  ): Promise<http.IncomingMessage> {
    const reply = await sendUpstream({
      target: via.upstream,
      method: req.method ?? "GET",
      path: target.originForm,
      headers: upstreamRequestHeaders(req.headers, {
        clientAddress: req.socket.remoteAddress,
        hopMarker: via.hopMarker,
        from: this.#advertised ?? this.url,
        upgrade: false,
      }),
      body: hasBody(req) ? req : undefined,
      agent: via.agent,
      lifetime,
      connectRetryMs: this.#connectRetryMs,
    });
    if (reply.kind !== "response") {
      reply.socket.destroy();
      throw new ProxyError("EPROXYUPSTREAM", `${via.description} switched protocols on a plain request`);
    }
    return reply.response;
  }

  async #relay(upstream: http.IncomingMessage, res: http.ServerResponse, headers: string[]): Promise<void> {
    res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, headers);
    try {
      await relayBody(upstream, res);
    } catch (cause) {
      // Headers are gone already: the only way left to tell the client is to cut the connection.
      throw new ProxyError("EPROXYUPSTREAM", "the upstream answer broke off mid-body", { cause });
    }
  }

  #answer(res: http.ServerResponse, answer: ProxyAnswer): void {
    res.writeHead(answer.status, answer.headers as string[]);
    res.end(answer.body);
  }

  #fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, lifetime: ExchangeLifetime): void {
    const failure = exchangeFailure(err, lifetime);
    if (failure instanceof ClientGoneError) {
      this.#log.debug("proxy: client went away", { method: req.method, path: req.url });
      return;
    }
    this.metrics.countError(failure.code);
    this.#log.warn("proxy: request failed", {
      code: failure.code,
      method: req.method,
      path: req.url,
      error: failure.message,
    });
    if (res.headersSent) res.destroy();
    else this.#answer(res, errorAnswer(failure));
  }
}

/** Whether the request has a body to stream (a GET normally has none, so it can be retried freely). */
function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Hops a request has made between LiteFS proxies, from its hop marker (0: none; see forwarding-headers.ts). */
function hopCount(marker: string | string[] | undefined): number {
  if (marker === undefined) return 0;
  return (Array.isArray(marker) ? marker : [marker]).some((v) => v.trim() === "2") ? 2 : 1;
}
