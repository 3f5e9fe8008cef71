// WebSocket (and any other HTTP/1.1 Upgrade) through the proxy. Routed like a read: to the local app (on
// a replica after the read-your-writes wait), or to the primary's proxy when the path is always-forward.
// The upstream's 101 is relayed, then the two sockets are piped to each other byte for byte until
// either side closes; a refusal (any other status) is relayed and the connection closed.

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Socket } from "node:net";

import { ExchangeLifetime } from "./exchange-lifetime.js";
import { HOP_MARKER_HEADER, upstreamRequestHeaders } from "./forwarding-headers.js";
import type { PrimaryLocator } from "./primary-locator.js";
import { errorAnswer, healthAnswer, replayAnswer, type ProxyAnswer } from "./proxy-answer.js";
import { ClientGoneError, exchangeFailure, forwardLoopError } from "./proxy-error.js";
import type { ProxyLogger } from "./proxy-logger.js";
import type { ProxyMetrics } from "./proxy-metrics.js";
import type { ProxyNodeView } from "./proxy-node-view.js";
import { relayRawResponse, writeRawResponse, writeSwitchingProtocols } from "./raw-socket-response.js";
import type { ReadYourWrites } from "./read-your-writes.js";
import { requestTarget, type RequestRouter } from "./request-route.js";
import { primaryTarget } from "./upstream-target.js";
import { sendUpstream, type UpstreamReply, type UpstreamTarget } from "./upstream-request.js";

export interface UpgradeRelayOptions {
  readonly router: RequestRouter;
  readonly view: ProxyNodeView;
  readonly readYourWrites: ReadYourWrites;
  readonly primaryLocator: PrimaryLocator;
  readonly metrics: ProxyMetrics;
  readonly log: ProxyLogger;
  readonly app: UpstreamTarget;
  readonly connectRetryMs: number;
  readonly maxLagMs: number;
}

export class UpgradeRelay {
  readonly #opts: UpgradeRelayOptions;
  /** Every socket of an upgrade in progress or tunnelled, so that close() can end them. */
  readonly #sockets = new Set<Duplex>();
  #closed = false;

  constructor(opts: UpgradeRelayOptions) {
    this.#opts = opts;
  }

  /** Number of open sockets (both ends of each tunnel count). */
  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Takes over an upgrade request's socket (the http server's `upgrade` event). */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#track(socket);
    const lifetime = new ExchangeLifetime();
    socket.once("close", () => lifetime.end(new ClientGoneError()));
    socket.on("error", (err) =>
      this.#opts.log.debug("proxy: upgrade client socket error", { error: err.message }),
    );
    const progress = { answered: false };
    this.#relay(req, socket, head, lifetime, progress).catch((err: unknown) => {
      const failure = exchangeFailure(err, lifetime);
      if (failure instanceof ClientGoneError) return;
      this.#opts.metrics.countError(failure.code);
      this.#opts.log.warn("proxy: upgrade failed", {
        code: failure.code,
        path: req.url,
        error: failure.message,
      });
      if (progress.answered) socket.destroy();
      else this.#answer(socket, errorAnswer(failure));
    });
  }

  /** Ends every upgrade in progress and every tunnel; later upgrades are refused. */
  closeAll(): void {
    this.#closed = true;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  async #relay(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    lifetime: ExchangeLifetime,
    progress: { answered: boolean },
  ): Promise<void> {
    const { router, view, metrics } = this.#opts;
    const target = requestTarget(req.url);
    const route = router.routeUpgrade({
      method: req.method ?? "GET",
      path: target.path,
      isPrimary: view.isPrimary(),
      forwarded: req.headers[HOP_MARKER_HEADER] !== undefined,
    });
    if (route.kind === "health") {
      metrics.countRequest("health");
      this.#answer(socket, healthAnswer(view, this.#opts.maxLagMs));
      return;
    }
    metrics.countRequest("websocket");
    if (route.kind === "loop") throw forwardLoopError();
    let upstream = this.#opts.app;
    let hopMarker: "add" | "strip" = "strip";
    let toPrimary = route.kind === "forward" || route.kind === "replay";
    if (route.kind === "read") {
      // "primary": this replica is on another branch than the client's last write (read-your-writes.ts).
      const admission = await this.#opts.readYourWrites.admit(req.headers, lifetime, {
        mayWait: route.waitForTxid,
        forwarded: req.headers[HOP_MARKER_HEADER] !== undefined,
      });
      toPrimary = admission === "primary";
    }
    if (toPrimary) {
      const location = await this.#opts.primaryLocator.locate(lifetime);
      if (location.kind === "replay") {
        this.#answer(socket, replayAnswer(location.hostname));
        return;
      }
      if (location.kind === "proxy") {
        upstream = primaryTarget(location.url);
        hopMarker = "add";
      }
    }
    const reply = await sendUpstream({
      target: upstream,
      method: req.method ?? "GET",
      path: target.originForm,
      headers: upstreamRequestHeaders(req.headers, {
        clientAddress: req.socket.remoteAddress,
        hopMarker,
        upgrade: true,
      }),
      body: undefined,
      agent: false,
      lifetime,
      connectRetryMs: this.#opts.connectRetryMs,
    });
    progress.answered = true;
    if (reply.kind === "response") {
      await relayRawResponse(reply.response, socket);
      return;
    }
    this.#tunnel(socket, head, reply);
  }

  #tunnel(client: Duplex, clientHead: Buffer, reply: Extract<UpstreamReply, { kind: "upgrade" }>): void {
    const upstream = reply.socket;
    if (this.#closed || client.destroyed) {
      upstream.destroy();
      return;
    }
    this.#track(upstream);
    writeSwitchingProtocols(client, reply.response);
    if (reply.head.length > 0) client.write(reply.head);
    if (clientHead.length > 0) upstream.write(clientHead);
    for (const socket of [client, upstream]) if (socket instanceof Socket) socket.setNoDelay(true);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", (err) =>
      this.#opts.log.debug("proxy: upgrade upstream socket error", { error: err.message }),
    );
    client.once("close", closeBoth);
    upstream.once("close", closeBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  #answer(socket: Duplex, answer: ProxyAnswer): void {
    writeRawResponse(socket, answer.status, answer.headers, answer.body);
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }
}
