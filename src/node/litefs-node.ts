// One running node: the store (recovered at open), the FUSE mount serving it, the HTTP API, replication
// (a primary serves `POST /stream`; a replica streams from the primary), and the periodic jobs (LTX
// retention; saving page checksums as a base for crash recovery). Starts them in that order and stops
// them in reverse: no request reaches a closed store, and the store is closed (clean checksums saved)
// only once the kernel can no longer send anything. With `proxy.addr`, the app-facing proxy
// (node-proxy.ts) starts after the API and stops first. Metrics and events (node-observability.ts) are
// fed by the store, the mount and the replica client, and served on the API (`/metrics`, `/events`);
// `http.auth-token` guards every API route (docs/node-api.md).
//
// Role: with the static lease (the only one wired here), the node configured `lease.candidate: true`
// is the primary; every other node is a replica of the primary at `lease.advertise-url`, whose
// hostname `.primary` shows (`lease.hostname`). The primary owns the cluster id (`<data>/clusterid`,
// generated at its first start); a replica adopts it at its first connection and refuses any other.

import fs from "node:fs";

import { ApiServer } from "../api/server.js";
import { ReplicaClient } from "../api/replica-client.js";
import type { PrimaryIdentity } from "../api/stream-admission.js";
import { StreamServer } from "../api/stream-server.js";
import type { Config } from "../config/config.js";
import { parseHostPort } from "../config/host-port.js";
import { FuseSession } from "../fuse/session.js";
import { formatPos } from "../ltx/pos.js";
import { DatabaseLockGuard } from "../mountfs/database-lock-guard.js";
import { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import type { NodeRole } from "../mountfs/replica-access.js";
import { loadOrCreateClusterId, readClusterId, writeClusterId } from "../store/cluster-id.js";
import { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { NodeObservability } from "./node-observability.js";
import { NodeProxy } from "./node-proxy.js";
import { ReplicaApplier } from "./replica-applier.js";

export interface LitefsNodeOptions {
  readonly config: Config;
  readonly log: StoreLogger;
  /** Recompute every page checksum at open (`--verify`). */
  readonly verify?: boolean;
}

/** The lease epoch of a static primary (there is only ever one holder). */
const STATIC_EPOCH = 1n;

export class LitefsNode {
  readonly store: Store;
  readonly session: FuseSession;
  readonly api: ApiServer;
  readonly httpPort: number;
  readonly role: NodeRole;
  /** The replica's stream client (null on the primary). */
  readonly replica: ReplicaClient | null;
  /** Metrics (`GET /metrics`) and events (`GET /events`) of this node. */
  readonly observability: NodeObservability;
  /** The app-facing proxy (null without `proxy.addr`). */
  readonly proxy: NodeProxy | null;
  readonly #config: Config;
  readonly #log: StoreLogger;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #streams: StreamServer | null;
  #clusterId: string | null;
  #stopping: Promise<void> | undefined;

  private constructor(parts: {
    store: Store;
    session: FuseSession;
    api: ApiServer;
    httpPort: number;
    role: NodeRole;
    replica: ReplicaClient | null;
    observability: NodeObservability;
    proxy: NodeProxy | null;
    streams: StreamServer | null;
    clusterId: string | null;
    config: Config;
    log: StoreLogger;
  }) {
    this.store = parts.store;
    this.session = parts.session;
    this.api = parts.api;
    this.httpPort = parts.httpPort;
    this.role = parts.role;
    this.replica = parts.replica;
    this.observability = parts.observability;
    this.proxy = parts.proxy;
    this.#streams = parts.streams;
    this.#clusterId = parts.clusterId;
    this.#config = parts.config;
    this.#log = parts.log;
  }

  static async start(opts: LitefsNodeOptions): Promise<LitefsNode> {
    const { config, log } = opts;
    const addr = parseHostPort(config.http.addr);
    if (!addr.ok) throw new Error(`http.addr: ${addr.reason}`);
    fs.mkdirSync(config.fuse.dir, { recursive: true });
    if (config.lease.type !== "static") {
      log.warn("only the static lease is wired into the node yet: lease.candidate decides the role", {
        type: config.lease.type,
      });
    }
    const role: NodeRole = config.lease.candidate ? "primary" : "replica";

    const store = Store.open({
      dataDir: config.data.dir,
      ltxFormat: config.data.compress ? "v3" : "v1",
      verify: opts.verify === true,
      log,
    });
    let session: FuseSession | undefined;
    let api: ApiServer | undefined;
    let proxy: NodeProxy | null = null;
    // Set once the node exists; the closures below run only after that.
    const self: { node: LitefsNode | null } = { node: null };
    const observability = new NodeObservability({
      store,
      log,
      isPrimary: role === "primary",
      primaryHostname: config.lease.hostname,
      lagMs: () => self.node?.replica?.lagMs() ?? 0,
      subscriberCount: () => (self.node === null ? null : (self.node.#streams?.replicas().length ?? null)),
      replicaStream: () => self.node?.replica?.status() ?? null,
      ltxRecountIntervalMs: config.data.retentionMonitorIntervalMs,
    });
    try {
      const clusterId =
        role === "primary" ? loadOrCreateClusterId(store.dataDir) : readClusterId(store.dataDir);
      let replica: ReplicaClient | null = null;
      const fileSystem = new LitefsFileSystem({
        store,
        log,
        role: () => role,
        primaryHostname: () => (role === "replica" ? config.lease.hostname : null),
        lagMs: () => replica?.lagMs() ?? 0,
        onWrite: (db, kind) => observability.countWrite(db, kind),
      });
      session = await FuseSession.mount(fileSystem, {
        mountpoint: config.fuse.dir,
        fsName: "litefs",
        allowOther: config.fuse.allowOther,
        entryTimeoutMs: 1000,
        attrTimeoutMs: 1000,
        negativeTimeoutMs: 1000,
        onError: (err, where) =>
          log.error("FUSE request failed", {
            op: where.opcode,
            error: err instanceof Error ? err.message : String(err),
          }),
      });
      const mounted = session;
      const locks = new DatabaseLockGuard({
        lockTableOf: (db, kind) => fileSystem.lockTableOf(db, kind),
        holdWalReaders: (db) => fileSystem.locks.holdWalReaders(db),
        afterExclusive: (db) => {
          for (const name of fileSystem.renewDatabaseFiles(db)) {
            mounted.invalidateEntry(ROOT_NODE_ID, name).catch(() => undefined);
          }
        },
      });
      const authToken = config.http.authToken ?? null;
      const identity: PrimaryIdentity | null =
        role === "primary" ? { nodeId: store.nodeId, clusterId: clusterId!, epoch: STATIC_EPOCH } : null;
      const streams =
        role === "primary"
          ? new StreamServer({
              store,
              locks,
              log,
              identity: () => identity,
              authToken,
              snapshotFormat: config.data.compress ? "v3" : "v1",
            })
          : new StreamServer({
              store,
              locks,
              log,
              identity: () => null,
              primaryUrl: () => config.lease.advertiseUrl,
              authToken,
              snapshotFormat: "v1",
            });
      api = new ApiServer({
        store,
        locks,
        log,
        isPrimary: () => role === "primary",
        stream: streams,
        status: () => self.node?.status() ?? null,
        authToken,
        extraRoutes: observability.routes(),
        info: () => ({ proxyURL: proxy?.advertisedURL ?? null }),
      });
      const bound = await api.listen(addr.host, addr.port);
      if (role === "replica") {
        const applier = new ReplicaApplier({ fileSystem, session: mounted, locks, log });
        replica = new ReplicaClient({
          store,
          primaryUrl: () => config.lease.advertiseUrl,
          clusterId: {
            get: () => (self.node === null ? clusterId : self.node.#clusterId),
            adopt: (id) => {
              writeClusterId(store.dataDir, id);
              if (self.node !== null) self.node.#clusterId = id;
            },
          },
          authToken,
          applier,
          log,
          quarantineDir: store.dataDir.quarantineDir,
          onQuarantine: (db, result) => observability.quarantined(db, result),
        });
      }
      if (config.proxy !== undefined) {
        proxy = await NodeProxy.start({
          config: config.proxy,
          store,
          log,
          metrics: observability.metrics.proxy,
          isPrimary: () => role === "primary",
          primaryApiUrl: () => (role === "replica" ? config.lease.advertiseUrl : null),
          primaryHostname: () => (role === "replica" ? config.lease.hostname : undefined),
          advertiseUrl: config.lease.advertiseUrl,
          authToken,
          lagMs: () => replica?.lagMs() ?? 0,
        });
      }
      const node = new LitefsNode({
        store,
        session: mounted,
        api,
        httpPort: bound.port,
        role,
        replica,
        observability,
        proxy,
        streams: role === "primary" ? streams : null,
        clusterId,
        config,
        log,
      });
      self.node = node;
      node.#startJobs(config);
      replica?.start();
      return node;
    } catch (err) {
      await proxy?.close().catch(() => undefined);
      observability.close();
      await api?.close().catch(() => undefined);
      await session?.unmount().catch(() => undefined);
      store.close();
      throw err;
    }
  }

  /**
   * Resolves once a replica has caught up with the primary for the first time (at once on the
   * primary), or when `signal` aborts first (then false).
   */
  async waitForSync(signal: AbortSignal): Promise<boolean> {
    if (this.replica === null) return true;
    if (signal.aborted) return false;
    return Promise.race([
      this.replica.synced.then(() => true),
      new Promise<boolean>((resolve) =>
        signal.addEventListener("abort", () => resolve(false), { once: true }),
      ),
    ]);
  }

  /** What `GET /status` and `litefs status` show. */
  status(): unknown {
    const lease = this.#config.lease;
    const dbs: Record<string, unknown> = {};
    for (const db of this.store.databases()) {
      dbs[db.name] = {
        pos: formatPos(db.pos),
        txid: db.pos.txid.toString(16).padStart(16, "0"),
        pageSize: db.pageSize,
        pageCount: db.pageCount,
        walMode: db.walMode,
      };
    }
    return {
      nodeId: this.store.nodeId.toString(16).padStart(16, "0"),
      clusterId: this.#clusterId,
      role: this.role,
      hostname: this.role === "primary" ? lease.hostname : null,
      primary: { hostname: lease.hostname, url: lease.advertiseUrl },
      lagMs: this.replica?.lagMs() ?? 0,
      dbs,
      ...(this.replica === null ? {} : { replication: this.replica.status() }),
      ...(this.#streams === null ? {} : { replicas: this.#streams.replicas() }),
    };
  }

  /** Stops everything, in reverse order of start; idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const timer of this.#timers) clearInterval(timer);
      // The proxy first (no request reaches a closing store), then the events streams end cleanly
      // before the API server cuts its connections.
      await this.proxy
        ?.close()
        .catch((err: unknown) => this.#log.error("closing the proxy", { error: String(err) }));
      this.observability.close();
      await this.replica?.stop();
      await this.api
        .close()
        .catch((err: unknown) => this.#log.error("closing the HTTP API", { error: String(err) }));
      await this.session.unmount();
      this.store.close();
      this.#log.info("stopped");
    })();
    return this.#stopping;
  }

  #startJobs(config: Config): void {
    const every = config.data.retentionMonitorIntervalMs;
    const tick = (): void => {
      try {
        this.store.enforceRetention(config.data.retentionMs);
        this.store.saveChecksums();
      } catch (err) {
        this.#log.error("periodic store job failed", { error: (err as Error).message });
      }
    };
    const timer = setInterval(tick, every);
    timer.unref();
    this.#timers.push(timer);
  }
}
