// The node's app-facing proxy (`proxy` section): a ProxyServer over the node's view of itself
// (proxy-view.ts), with the primary's proxy URL learned from the primary (primary-proxy-url.ts) and
// the proxy's metrics on the node's registry. Started after the node API, stopped before the store
// closes: a read waiting for a TXID is ended (the client gets an error answer) rather than left to a
// closed store.

import type { AddressInfo } from "node:net";

import type { ProxyConfig } from "../config/config.js";
import { ProxyServer, type ProxyMetrics } from "../proxy/index.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { advertisedProxyURL, PrimaryProxyDiscovery } from "./primary-proxy-url.js";
import { StoreProxyView } from "./proxy-view.js";

/** How long exchanges in progress may finish when the proxy closes (ms). */
const CLOSE_GRACE_MS = 2_000;
/** How often a write waiting for a primary looks again (ms). */
const PRIMARY_POLL_MS = 5;

export interface NodeProxyOptions {
  readonly config: ProxyConfig;
  readonly store: Store;
  readonly log: StoreLogger;
  readonly metrics?: ProxyMetrics;
  readonly isPrimary: () => boolean;
  /** True while this primary hands its lease off: writes wait for the next primary (proxy-server.ts). */
  readonly handingOff?: () => boolean;
  /** The primary's node API URL (a replica asks its `/info` for the proxy URL); null when unknown. */
  readonly primaryApiUrl: () => string | null;
  /** The primary's hostname (fly-replay mode); undefined when unknown. */
  readonly primaryHostname: () => string | undefined;
  /** This node's advertise URL: its host names this proxy to other nodes when bound to all addresses. */
  readonly advertiseUrl: string;
  /** The node API's bearer token, for asking the primary. */
  readonly authToken: string | null;
  readonly lagMs: () => number;
  /** The epoch this primary commits under, and whether a write of that term may be answered as done. */
  readonly primaryEpoch?: () => bigint | undefined;
  readonly mayAcknowledge?: (epoch: bigint) => boolean;
}

export class NodeProxy {
  readonly server: ProxyServer;
  readonly view: StoreProxyView;
  readonly discovery: PrimaryProxyDiscovery;
  /** Where other nodes reach this proxy (`proxyURL` in `/info`). */
  readonly advertisedURL: string;
  readonly address: AddressInfo;
  #closing: Promise<void> | undefined;

  private constructor(parts: {
    server: ProxyServer;
    view: StoreProxyView;
    discovery: PrimaryProxyDiscovery;
    address: AddressInfo;
    advertisedURL: string;
  }) {
    this.server = parts.server;
    this.view = parts.view;
    this.discovery = parts.discovery;
    this.address = parts.address;
    this.advertisedURL = parts.advertisedURL;
  }

  /** Binds `proxy.addr` and starts serving; on a replica starts learning the primary's proxy URL. */
  static async start(opts: NodeProxyOptions): Promise<NodeProxy> {
    const discovery = new PrimaryProxyDiscovery({
      primaryApiUrl: opts.primaryApiUrl,
      authToken: opts.authToken,
      log: opts.log,
    });
    let discovering = false;
    const discover = (): void => {
      if (discovering) return;
      discovering = true;
      discovery.start();
    };
    const view = new StoreProxyView({
      store: opts.store,
      isPrimary: opts.isPrimary,
      handingOff: opts.handingOff,
      // Asked only on a replica; a node that became a replica since starts asking then.
      primaryProxyURL: () => {
        discover();
        return discovery.url();
      },
      primaryHostname: opts.primaryHostname,
      lagMs: opts.lagMs,
      primaryEpoch: opts.primaryEpoch,
      mayAcknowledge: opts.mayAcknowledge,
    });
    // Writes waiting for a primary (a failover, a handoff) look again every 5 ms: the view is local.
    const server = new ProxyServer({
      config: opts.config,
      view,
      metrics: opts.metrics,
      log: opts.log,
      primaryPollMs: PRIMARY_POLL_MS,
    });
    let address: AddressInfo;
    try {
      address = await server.listen();
    } catch (err) {
      view.close();
      await server.close().catch(() => undefined);
      throw new Error(`proxy: cannot listen on ${opts.config.addr}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!opts.isPrimary()) discover();
    server.advertiseAs(advertisedProxyURL(address, opts.advertiseUrl));
    const proxy = new NodeProxy({
      server,
      view,
      discovery,
      address,
      advertisedURL: advertisedProxyURL(address, opts.advertiseUrl),
    });
    opts.log.info("proxy listening", {
      addr: server.url,
      advertised: proxy.advertisedURL,
      target: opts.config.target,
      db: opts.config.db,
    });
    return proxy;
  }

  /** The local URL of the proxy (loopback when bound to all addresses). */
  get url(): string {
    return this.server.url;
  }

  /**
   * Stops serving, ends waiting reads and stops asking the primary; idempotent. Exchanges in progress
   * (a write held during a handoff on SIGTERM, forwarded to the next primary) get up to
   * CLOSE_GRACE_MS to finish first.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.view.close();
      await this.server.close({ graceMs: CLOSE_GRACE_MS });
      await this.discovery.stop();
    })();
    return this.#closing;
  }
}
