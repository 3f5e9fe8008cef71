// One running node: the store (recovered at open), the FUSE mount serving it, the HTTP API, replication
// (a primary serves `POST /stream`; a replica streams from the primary), and the periodic jobs (LTX
// retention; saving page checksums as a base for crash recovery). Starts them in that order and stops
// them in reverse: no request reaches a closed store, and the store is closed (clean checksums saved)
// only once the kernel can no longer send anything. With `proxy.addr`, the app-facing proxy
// (node-proxy.ts) starts after the API and stops first. Metrics and events (node-observability.ts) are
// fed by the store, the mount and the replica client, and served on the API (`/metrics`, `/events`);
// `http.auth-token` guards every API route (docs/node-api.md).
//
// Role: decided by the lease (`lease.type` static | etcd | consul, lease-role.ts) and changing at run
// time. This file is the lease-role manager's host: it switches the parts between the two roles —
//   primary: the stream server streams under the lease's epoch, the replica client is stopped, the mount
//            is writable and every commit passes the gate `mayCommit` (primary, not handing off, lease
//            held by the clock);
//   replica: the stream server answers 503, a replica client follows the holder the lease names
//            (`.primary` shows its hostname), streams end with END lease-lost / handed-off.
// Cluster id: a primary stores or adopts it beside the lease (`setClusterIdIfAbsent`; static: in
// `<data>/clusterid`); a replica adopts the primary's at its first connection and refuses any other.
// Epochs: `<data>/epoch` and each database's `epochs` file (epoch-recorder.ts) record the fencing epochs.
// Locks: by default the mount answers every fcntl lock (mount-locks.ts) and the node's own locks are
// entries of its tables; with `fuse.kernel-locks` the kernel keeps them, and the node's own are kernel
// locks held by a helper process (KernelNodeLocks, started once the mount is up, closed before the
// unmount: its open files would make the unmount fail EBUSY).

import fs from "node:fs";

import { haltRoutes } from "../api/halt-routes.js";
import { leaseRoutes, requestHandoff } from "../api/lease-routes.js";
import { ApiServer } from "../api/server.js";
import { ReplicaClient } from "../api/replica-client.js";
import { StreamServer } from "../api/stream-server.js";
import { formatNodeId } from "../api/stream-request.js";
import type { Config } from "../config/config.js";
import { parseHostPort } from "../config/host-port.js";
import { FuseSession } from "../fuse/session.js";
import type { Lease, PrimaryInfo } from "../lease/index.js";
import { formatPos, type Pos } from "../ltx/pos.js";
import { DatabaseLockGuard } from "../mountfs/database-lock-guard.js";
import { KernelNodeLocks } from "../mountfs/kernel-node-locks.js";
import { JournalUnlinkFence } from "../mountfs/journal-unlink-fence.js";
import { LitefsFileSystem, type LitefsFileSystemOptions } from "../mountfs/litefs-file-system.js";
import { lockFileDirOf, mountLockFiles } from "../mountfs/lock-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import type { NodeRole } from "../mountfs/replica-access.js";
import {
  generateClusterId,
  loadOrCreateClusterId,
  readClusterId,
  writeClusterId,
} from "../store/cluster-id.js";
import { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { EpochRecorder } from "./epoch-recorder.js";
import { epochHistoryFrom } from "../store/epoch-history.js";
import { NodeHalt } from "./halt-node.js";
import { LeaseRole } from "./lease-role.js";
import { RoleError, type DemotionReason, type HandoffTarget, type RoleHost } from "./role-host.js";
import { leaserFromConfig } from "./leaser-from-config.js";
import { candidateElectionFromConfig } from "./candidate-election-from-config.js";
import { NodeObservability } from "./node-observability.js";
import { NodeProxy } from "./node-proxy.js";
import { ReplicaApplier } from "./replica-applier.js";
import { ReplicaReconnectNudge } from "./replica-reconnect-nudge.js";
import { HandoffPacer } from "./handoff-pacer.js";
import { HandoffTail } from "./handoff-tail.js";

export interface LitefsNodeOptions {
  readonly config: Config;
  readonly log: StoreLogger;
  /** Recompute every page checksum at open (`--verify`). */
  readonly verify?: boolean;
}

/** How long `POST /promote` waits for this node to become primary after the primary agreed. */
const PROMOTE_WAIT_MS = 10_000;
/**
 * How long after a handoff the target may still fetch what it missed from this node: longer than the
 * target waits for the HANDOFF frame (lease-role.ts, 3 s) before it acts without it.
 */
const HANDOFF_TAIL_WINDOW_MS = 10_000;

export class LitefsNode {
  readonly store: Store;
  readonly session: FuseSession;
  readonly api: ApiServer;
  readonly httpPort: number;
  /** Metrics (`GET /metrics`) and events (`GET /events`) of this node. */
  readonly observability: NodeObservability;
  readonly #config: Config;
  readonly #log: StoreLogger;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #streams: StreamServer;
  readonly #fileSystem: LitefsFileSystem;
  readonly #locks: DatabaseLockGuard;
  /** Kernel-locks mode: the helper holding the node's own locks (closed before the unmount). */
  readonly #kernelLocks: KernelNodeLocks | null;
  /** Kernel-locks mode: the mount of the `<db>-lock` files (lock-file-system.ts), unmounted last. */
  readonly #lockFiles: FuseSession | null;
  readonly #epochs: EpochRecorder;
  readonly #halt: NodeHalt;
  readonly #nodeIdHex: string;
  #roleManager!: LeaseRole;
  #proxy: NodeProxy | null = null;
  #replica: ReplicaClient | null = null;
  /** The primary this node follows as a replica (URL and hostname), null when none is known. */
  #following: PrimaryInfo | null = null;
  #clusterId: string | null;
  /** The role and primary hostname last published (`primaryChange` only when one of them changes). */
  #published = "false ";
  #stopping: Promise<void> | undefined;
  /** Connects the replica to a new primary as soon as it serves streams (replica-reconnect-nudge.ts). */
  readonly #nudge: ReplicaReconnectNudge;
  /** After a handoff: what the target may still fetch from this node (handoff-tail.ts). */
  readonly #handoffTail = new HandoffTail();
  /** A handoff's pace step: commits answered at the pace the target applies them (handoff-pacer.ts). */
  readonly #pacer: HandoffPacer;

  private constructor(parts: {
    store: Store;
    session: FuseSession;
    api: ApiServer;
    httpPort: number;
    observability: NodeObservability;
    streams: StreamServer;
    fileSystem: LitefsFileSystem;
    locks: DatabaseLockGuard;
    kernelLocks: KernelNodeLocks | null;
    lockFiles: FuseSession | null;
    epochs: EpochRecorder;
    halt: NodeHalt;
    pacer: HandoffPacer;
    clusterId: string | null;
    config: Config;
    log: StoreLogger;
  }) {
    this.store = parts.store;
    this.session = parts.session;
    this.api = parts.api;
    this.httpPort = parts.httpPort;
    this.observability = parts.observability;
    this.#streams = parts.streams;
    this.#fileSystem = parts.fileSystem;
    this.#locks = parts.locks;
    this.#kernelLocks = parts.kernelLocks;
    this.#lockFiles = parts.lockFiles;
    this.#epochs = parts.epochs;
    this.#halt = parts.halt;
    this.#pacer = parts.pacer;
    this.#clusterId = parts.clusterId;
    this.#config = parts.config;
    this.#log = parts.log;
    this.#nodeIdHex = formatNodeId(parts.store.nodeId);
    this.#nudge = new ReplicaReconnectNudge({
      replica: () => {
        const replica = this.#replica;
        return replica === null
          ? null
          : {
              connected: () => replica.status().connected,
              reconnect: () => replica.reconnect(),
              attemptAgeMs: () => replica.attemptAgeMs(),
            };
      },
      authToken: parts.config.http.authToken ?? null,
      log: parts.log,
    });
  }

  static async start(opts: LitefsNodeOptions): Promise<LitefsNode> {
    const { config, log } = opts;
    const addr = parseHostPort(config.http.addr);
    if (!addr.ok) throw new Error(`http.addr: ${addr.reason}`);
    try {
      fs.mkdirSync(config.fuse.dir, { recursive: true });
    } catch (err) {
      // A mount left by a node killed with -9 answers ENOTCONN: FuseSession.mount clears it below.
      if ((err as NodeJS.ErrnoException).code !== "ENOTCONN") throw err;
    }

    const store = Store.open({
      dataDir: config.data.dir,
      ltxFormat: config.data.compress ? "v3" : "v1",
      verify: opts.verify === true,
      log,
    });
    let session: FuseSession | undefined;
    let api: ApiServer | undefined;
    let epochs: EpochRecorder | undefined;
    // Set once the node exists; the closures below run only after that.
    const self: { node: LitefsNode | null } = { node: null };
    /** `read(node)` once the node exists, else `otherwise`. */
    const ofNode = <T>(read: (node: LitefsNode) => T, otherwise: T): T =>
      self.node === null ? otherwise : read(self.node);
    const role = (): NodeRole => self.node?.role ?? "replica";
    /** Kernel-locks mode: the node's own locks, held by a helper process once the mount is up. */
    let kernelLocks: KernelNodeLocks | undefined;
    let lockFiles: FuseSession | undefined;
    const observability = new NodeObservability({
      store,
      log,
      isPrimary: false,
      primaryHostname: "",
      lagMs: () => ofNode((n) => n.#replica?.lagMs() ?? 0, 0),
      subscriberCount: () => (self.node?.role === "primary" ? self.node.#streams.replicas().length : null),
      replicaStream: () => ofNode((n) => n.#replica?.status() ?? null, null),
    });
    try {
      const clusterId = readClusterId(store.dataDir);
      epochs = new EpochRecorder({
        store,
        log,
        primaryEpoch: () =>
          ofNode((n) => (n.role === "primary" ? (n.#roleManager.lease?.epoch ?? 0n) : 0n), 0n),
        streamEpoch: () => ofNode((n) => n.#replica?.streamEpoch ?? 0n, 0n),
        streamEpochLines: (db) => ofNode((n) => n.#replica?.streamEpochLines(db), undefined),
      });
      const halt = new NodeHalt({
        store,
        log,
        role,
        primaryUrl: () => ofNode((n) => n.#following?.advertiseURL ?? null, null),
        authToken: config.http.authToken ?? null,
        resync: () => ofNode((n) => n.#replica?.reconnect(), undefined),
        registry: observability.registry,
      });
      const pacer = new HandoffPacer();
      store.subscribe(pacer.onCommit);
      // `mayCommit` is the commit gate of the mount (consulted at every commit point).
      const fsOptions: LitefsFileSystemOptions = {
        store,
        log,
        role,
        // A primary handing off names the target while it drains (new transactions refused).
        primaryHostname: () =>
          ofNode(
            (n) =>
              role() === "replica"
                ? (n.#following?.hostname ?? null)
                : n.#roleManager.handoffTargetHostname(),
            null,
          ),
        lagMs: () => ofNode((n) => n.#replica?.lagMs() ?? 0, 0),
        onWrite: (db, kind) => observability.countWrite(db, kind),
        mayCommit: () => ofNode((n) => n.#roleManager.mayCommit(), false),
        writesClosing: () => ofNode((n) => n.#roleManager.writesClosing(), false),
        halt,
        pacer,
        kernelLocks: config.fuse.kernelLocks,
        lockHelperPid: () => kernelLocks?.helperPid ?? null,
        // Kernel-locks mode: a rolling-back writer's journal unlink waits for readers holding SHARED.
        journalUnlinkFence: new JournalUnlinkFence({
          nodeLocks: () => kernelLocks ?? null,
          mountDir: config.fuse.dir,
          log,
        }),
        lockFileDir: config.fuse.kernelLocks ? lockFileDirOf(store.dataDir.root) : undefined,
      };
      const fileSystem = new LitefsFileSystem(fsOptions);
      // Kernel-locks mode: `<db>-lock` links to a second mount that does see fcntl locks (the HALT lock).
      if (fsOptions.lockFileDir !== undefined) {
        lockFiles = await mountLockFiles({
          dir: fsOptions.lockFileDir,
          allowOther: config.fuse.allowOther,
          log,
          locks: fileSystem.locks,
          halt,
          databases: () => fileSystem.lockableDatabases(),
        });
      }
      session = await FuseSession.mount(fileSystem, {
        mountpoint: config.fuse.dir,
        fsName: "litefs",
        allowOther: config.fuse.allowOther,
        // Kernel-locks mode: the kernel keeps every fcntl lock (litefs-file-system.ts header).
        posixLocks: !fileSystem.kernelLocks,
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
      // The helper opens files in the mount, so it starts once the mount answers.
      if (fileSystem.kernelLocks)
        kernelLocks = await KernelNodeLocks.start({ mountDir: config.fuse.dir, log });
      // Logged just before "mount ready": which side answers SQLite's locks (config fuse.kernel-locks).
      log.info("mount locks", {
        mode: fileSystem.kernelLocks ? "kernel" : "table",
        ...(kernelLocks === undefined ? {} : { helperPid: kernelLocks.helperPid }),
        ...(fsOptions.lockFileDir === undefined ? {} : { lockFiles: fsOptions.lockFileDir }),
      });
      // The mount drops kernel caches itself after a refused commit and on role changes (commit-gate.ts).
      fileSystem.attachSession(mounted);
      // The notification workers start now, not at first use: a refused commit is answered only after
      // an inode invalidation, and a worker started at that moment delayed the first refusal after a
      // handoff by 100–250 ms (bench/failover.ts).
      mounted.warmNotifications();
      const locks = new DatabaseLockGuard({
        lockTableOf: (db, kind) => fileSystem.lockTableOf(db, kind),
        holdWalReaders: (db) => fileSystem.locks.holdWalReaders(db),
        nodeLocks: kernelLocks,
        afterExclusive: (db) => {
          for (const name of fileSystem.renewDatabaseFiles(db)) {
            mounted.invalidateEntry(ROOT_NODE_ID, name).catch(() => undefined);
          }
        },
      });
      halt.attach({ fileSystem, session: mounted, locks });
      const authToken = config.http.authToken ?? null;
      const streams = new StreamServer({
        store,
        locks,
        log,
        identity: () => {
          const node = self.node;
          if (node === null) return null;
          const lease = node.#roleManager.lease;
          if (node.role !== "primary" || lease === null || node.#clusterId === null) return null;
          return { nodeId: store.nodeId, clusterId: node.#clusterId, epoch: lease.epoch };
        },
        primaryUrl: () => ofNode((n) => n.#following?.advertiseURL ?? null, null),
        handoffTail: {
          owedTo: (nodeId) => {
            const node = self.node;
            if (node === null || node.role !== "replica" || node.#clusterId === null) return null;
            const epoch = node.#handoffTail.owedTo(nodeId, () => databasePositions(store));
            return epoch === null ? null : { nodeId: store.nodeId, clusterId: node.#clusterId, epoch };
          },
          sent: (epoch) => ofNode((n) => n.#handoffTail.sent(epoch), undefined),
        },
        authToken,
        snapshotFormat: config.data.compress ? "v3" : "v1",
        onFrame: (frame, bytes) => observability.streamFrameSent(frame, bytes),
        epochLines: (db, fromTxid) =>
          ofNode((n) => epochHistoryFrom(n.#epochs.historyOf(db).history, fromTxid), []),
      });
      const extraRoutes = new Map(observability.routes());
      for (const [route, handler] of leaseRoutes({
        handOff: (to, named) => self.node!.#handOff(to, named),
        promote: () => self.node!.#promote(),
      })) {
        extraRoutes.set(route, handler);
      }
      for (const [route, handler] of haltRoutes(halt)) extraRoutes.set(route, handler);
      api = new ApiServer({
        store,
        locks,
        log,
        isPrimary: () => role() === "primary",
        stream: streams,
        status: () => self.node?.status() ?? null,
        authToken,
        extraRoutes,
        info: () => ({ proxyURL: ofNode((n) => n.#proxy?.advertisedURL ?? null, null) }),
      });
      const bound = await api.listen(addr.host, addr.port);
      const node = new LitefsNode({
        store,
        session: mounted,
        api,
        httpPort: bound.port,
        observability,
        streams,
        fileSystem,
        locks,
        kernelLocks: kernelLocks ?? null,
        lockFiles: lockFiles ?? null,
        epochs,
        halt,
        pacer,
        clusterId,
        config,
        log,
      });
      self.node = node;
      node.#roleManager = new LeaseRole({
        leaser: leaserFromConfig({
          lease: config.lease,
          nodeId: node.#nodeIdHex,
          onBackgroundError: (err) => log.debug("lease background work failed", { error: err.message }),
          onRenewFailed: (err, msLeft) => {
            observability.metrics.lease.renewFailed();
            log.warn("lease renewal failed", {
              error: err instanceof Error ? err.message : String(err),
              msLeft: Math.round(msLeft),
            });
          },
        }),
        host: node.#roleHost(),
        log,
        candidate: config.lease.candidate,
        promote: config.lease.promote,
        quietMs: config.lease.demoteDelayMs,
        periodicMs: Math.max(250, Math.min(config.lease.ttlMs, config.lease.reconnectDelayMs)),
        election: candidateElectionFromConfig({
          lease: config.lease,
          nodeId: node.#nodeIdHex,
          store,
          epochs: node.#epochs,
          log,
        }),
      });
      await node.#roleManager.start();
      if (config.proxy !== undefined) {
        node.#proxy = await NodeProxy.start({
          config: config.proxy,
          store,
          log,
          metrics: observability.metrics.proxy,
          isPrimary: () => role() === "primary",
          handingOff: () => node.#roleManager.proxyHoldsWrites(),
          primaryApiUrl: () => (role() === "replica" ? (node.#following?.advertiseURL ?? null) : null),
          primaryHostname: () => (role() === "replica" ? node.#following?.hostname : undefined),
          advertiseUrl: config.lease.advertiseUrl,
          authToken,
          lagMs: () => node.#replica?.lagMs() ?? 0,
          primaryEpoch: () => node.#roleManager.lease?.epoch,
          mayAcknowledge: (epoch) => node.#roleManager.mayAcknowledge(epoch),
        });
      }
      node.#startJobs(config);
      return node;
    } catch (err) {
      const node = self.node;
      if (node !== null) {
        await (node.#roleManager as LeaseRole | undefined)?.stop().catch(() => undefined);
        await node.#replica?.stop().catch(() => undefined);
        await node.#proxy?.close().catch(() => undefined);
      }
      observability.close();
      await api?.close().catch(() => undefined);
      await kernelLocks?.close().catch(() => undefined); // its open files would make the unmount EBUSY
      await session?.unmount().catch(() => undefined);
      await lockFiles?.unmount().catch(() => undefined);
      await epochs?.close();
      store.close();
      throw err;
    }
  }

  /** The role now (it changes with the lease). */
  get role(): NodeRole {
    return this.#roleManager.role;
  }

  /** The replica's stream client (null on the primary). */
  get replica(): ReplicaClient | null {
    return this.#replica;
  }

  /** The app-facing proxy (null without `proxy.addr`). */
  get proxy(): NodeProxy | null {
    return this.#proxy;
  }

  /** The lease epoch this node holds, or that of the primary it follows (0 when unknown). */
  get epoch(): bigint {
    return this.#roleManager.epoch;
  }

  /** This node's id as the stream protocol and handoffs name it (16 hex digits). */
  get nodeIdHex(): string {
    return this.#nodeIdHex;
  }

  /**
   * Resolves true once this node is primary or its replica has caught up with the primary once, or
   * false when `signal` aborts first.
   */
  async waitForSync(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (this.role === "primary" || this.#replica?.status().synced === true) return true;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return false;
  }

  /** On shutdown: hands the lease to a caught-up candidate replica, if this node is primary. */
  handOffForShutdown(): Promise<boolean> {
    return this.#roleManager.handOffForShutdown();
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
    const holder = this.#roleManager.holder ?? null;
    const held = this.#roleManager.lease;
    const primary =
      this.role === "primary"
        ? { hostname: lease.hostname, url: lease.advertiseUrl }
        : // Unknown for now: empty strings, so the shape stays {hostname, url}.
          { hostname: this.#following?.hostname ?? "", url: this.#following?.advertiseURL ?? "" };
    return {
      nodeId: this.#nodeIdHex,
      clusterId: this.#clusterId,
      role: this.role,
      hostname: this.role === "primary" ? lease.hostname : null,
      primary,
      epoch: this.epoch.toString(),
      lease: {
        type: this.#roleManager.leaserType,
        candidate: lease.candidate,
        holder:
          holder === null
            ? null
            : {
                hostname: holder.hostname,
                url: holder.advertiseURL,
                nodeId: holder.nodeId ?? null,
                epoch: holder.epoch.toString(),
              },
        ...(held === null ? {} : { expiresInMs: Math.round(held.expiresAt - performance.now()) }),
      },
      epochSeen: this.#epochs.highest.toString(),
      lagMs: this.#replica?.lagMs() ?? 0,
      dbs,
      ...(this.#replica === null ? {} : { replication: this.#replica.status() }),
      ...(this.role === "primary" ? { replicas: this.#streams.replicas() } : {}),
    };
  }

  /** Stops everything, in reverse order of start; idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const timer of this.#timers) clearInterval(timer);
      // The proxy first (no request reaches a closing store), then the events streams end cleanly
      // before the API server cuts its connections.
      await this.#proxy
        ?.close()
        .catch((err: unknown) => this.#log.error("closing the proxy", { error: String(err) }));
      this.#nudge.stop();
      this.observability.close();
      await this.#roleManager.stop();
      await this.#halt.close();
      await this.#replica?.stop();
      await this.api
        .close()
        .catch((err: unknown) => this.#log.error("closing the HTTP API", { error: String(err) }));
      // The lock helper holds files open in the mount: they would make the unmount fail EBUSY.
      await this.#kernelLocks
        ?.close()
        .catch((err: unknown) => this.#log.error("closing the lock helper", { error: String(err) }));
      await this.session.unmount();
      await this.#lockFiles
        ?.unmount()
        .catch((err: unknown) => this.#log.error("unmounting the lock files", { error: String(err) }));
      await this.#epochs.close();
      this.store.close();
      this.#log.info("stopped");
    })();
    return this.#stopping;
  }

  /** `POST /handoff`: hands the lease to replica `to`, then owes it a while what it may have missed. */
  async #handOff(to: string, named?: { hostname: string; advertiseURL: string }): Promise<bigint> {
    let epoch: bigint;
    try {
      epoch = await this.#roleManager.handOff(to, named);
    } catch (err) {
      // `.primary` named the target during the attempt: this node is primary again (or lost the lease).
      if (named !== undefined) this.#fileSystem.primaryNameChanged();
      throw err;
    }
    this.#handoffTail.handedOff(
      BigInt("0x" + to),
      epoch,
      HANDOFF_TAIL_WINDOW_MS,
      databasePositions(this.store),
    );
    return epoch;
  }

  /** `POST /promote`: ask the primary to hand the lease to this node, then wait to be primary. */
  async #promote(): Promise<bigint> {
    const manager = this.#roleManager;
    if (this.role === "primary") return manager.epoch;
    if (manager.leaserType === "static") {
      throw new RoleError("ELEASENOTSUPPORTED", "a static lease cannot be moved: change lease.candidate");
    }
    if (!this.#config.lease.candidate)
      throw new RoleError("ENOTCANDIDATE", "this node is not a lease candidate");
    const primary = this.#following;
    if (primary === null) throw new RoleError("ENOTPRIMARY", "no primary is known to hand off from");
    manager.expectHandoff();
    await manager.askForHandoff(() =>
      requestHandoff(primary.advertiseURL, this.#nodeIdHex, this.#config.http.authToken ?? null, {
        self: manager.identity,
      }),
    );
    const started = performance.now();
    while ((this.role as NodeRole) !== "primary") {
      if (performance.now() - started > PROMOTE_WAIT_MS) {
        throw new RoleError("EHANDOFFTIMEOUT", `handed off, but not primary within ${PROMOTE_WAIT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return manager.epoch;
  }

  #roleHost(): RoleHost {
    const { observability } = this;
    const log = this.#log;
    const config = this.#config;
    return {
      enterPrimary: async (lease: Lease) => {
        const t0 = performance.now();
        this.#handoffTail.clear();
        this.#nudge.stop();
        await this.#stopReplica();
        const t1 = performance.now();
        this.#clusterId = await this.#primaryClusterId();
        const t2 = performance.now();
        if (lease.epoch < this.#epochs.highest) {
          log.warn("holding a lease epoch below one seen before", {
            epoch: lease.epoch.toString(),
            seen: this.#epochs.highest.toString(),
          });
        }
        await this.#epochs.primaryStarted(lease.epoch);
        const t3 = performance.now();
        this.#following = null;
        this.#publishRole(true, config.lease.hostname);
        // Where entering the role takes its time (bench/failover.ts prints it per handoff).
        const ms = (from: number, to: number): number => Math.round((to - from) * 100) / 100;
        log.debug("primary role entered", {
          stopReplicaMs: ms(t0, t1),
          clusterIdMs: ms(t1, t2),
          epochsMs: ms(t2, t3),
          publishMs: ms(t3, performance.now()),
        });
      },
      enterReplica: async (reason: DemotionReason | "start") => {
        if (reason !== "start") this.#streams.endStreams(reason);
        this.#halt.primaryEnded();
        this.#publishRole(false, this.#following?.hostname ?? "");
        this.#startReplica();
      },
      primaryChanged: (holder: PrimaryInfo | null) => {
        // Only a new holder moves the stream. "No holder" (a handoff or a failover in progress) leaves
        // the stream to the old primary running: it ends by itself, and it still carries what that
        // primary committed — for a handoff target, the last transactions and then HANDOFF.
        const moved = holder !== null && holder.advertiseURL !== this.#following?.advertiseURL;
        this.#following = holder;
        if (holder !== null) observability.metrics.lease.setEpoch(holder.epoch);
        this.#publishRole(false, holder?.hostname ?? "");
        log.info("following the primary", {
          primary: holder?.hostname ?? null,
          url: holder?.advertiseURL ?? null,
          epoch: holder?.epoch.toString(),
        });
        if (moved) {
          this.#replica?.reconnect();
          this.#nudge.follow(holder.advertiseURL);
          this.#proxy?.discovery.primaryChanged();
        }
      },
      awaitingHandoffFrom: (from: PrimaryInfo) => {
        this.#following = from;
        // A stream to it that is up carries the frame; one that broke (or went elsewhere) goes again now.
        // Compared with the stream's own URL, not with whom this node followed last: the target's watch
        // usually reports "no holder" first, which leaves the stream to the old primary running — and
        // it may still hold hundreds of transactions in flight that a reconnect would throw away and
        // have the old primary read back from its files (session 17: a 306 ms handoff).
        if (this.#replica?.connectedUrl !== from.advertiseURL) this.#replica?.reconnect();
      },
      replicaSynced: () => this.#replica?.status().synced === true,
      replicationProgress: () => this.store.databases().reduce((sum, db) => sum + db.pos.txid, 0n),
      handoffTarget: (nodeId: string): HandoffTarget | undefined => {
        const entry = this.#streams.streamOf(BigInt("0x" + nodeId));
        if (entry === undefined) return undefined;
        return {
          candidate: entry.candidate,
          caughtUp: () => entry.stream.caughtUp(),
          handOff: (fromEpoch) => entry.stream.handOff(fromEpoch),
        };
      },
      proxyWritesInFlight: () => this.#proxy?.server.localWritesInFlight ?? 0,
      localWritersActive: () =>
        this.store.databases().some((db) => this.#fileSystem.localWriterActive(db.name)),
      paceHandoff: async (nodeId: string, abandoned: () => boolean) => {
        const url = this.#streams.streamOf(BigInt("0x" + nodeId))?.advertiseUrl ?? null;
        if (url === null) {
          log.info("handoff: the target did not tell its URL; handing off without pacing", { to: nodeId });
          return;
        }
        try {
          const result = await this.#pacer.pace({
            url,
            authToken: config.http.authToken ?? null,
            head: () => new Map(this.store.databases().map((db) => [db.name, db.pos.txid])),
            abandoned,
          });
          observability.metrics.lease.paced(result.waitedMs / 1000, result.held);
          log.info("handoff: the pace step ended", {
            to: nodeId,
            url,
            ...result,
          });
        } catch (err) {
          // An optimisation: the handoff goes on without it.
          log.warn("handoff: could not pace the commits", { to: nodeId, error: String(err) });
        }
      },
      shutdownTarget: () => {
        const candidates = this.#streams.replicas().filter((r) => r.candidate && r.ready);
        const caughtUp = candidates.find((r) =>
          this.#streams.streamOf(BigInt("0x" + r.nodeId))?.stream.caughtUp(),
        );
        return (caughtUp ?? candidates[0])?.nodeId;
      },
      requestHandoff: (url: string) =>
        requestHandoff(url, this.#nodeIdHex, config.http.authToken ?? null, {
          self: this.#roleManager.identity,
        }),
      leaseAcquired: (epoch: bigint) => observability.metrics.lease.acquired(epoch),
      leaseLost: (reason: string) => {
        observability.metrics.lease.lost();
        try {
          observability.bus.publish({ type: "leaseLost", reason });
        } catch (err) {
          log.error("cannot publish an event", { type: "leaseLost", error: (err as Error).message });
        }
      },
    };
  }

  #publishRole(isPrimary: boolean, hostname: string): void {
    const key = `${isPrimary} ${hostname}`;
    if (key === this.#published) return;
    this.#published = key;
    // Attributes (0666 on a primary, 0444 on a replica) and `.primary` were cached under the old role.
    // The `.primary` name invalidation may wait for the root directory's lock (a writer's journal
    // UNLINK holds it until answered); it runs on the notifier's entry lane, so the inode
    // invalidations a refused UNLINK waits for are never queued behind it (src/fuse/notifier.ts).
    this.#fileSystem
      .roleChanged(isPrimary ? "primary" : "replica")
      .catch((err: unknown) => this.#log.warn("dropping cached attributes failed", { error: String(err) }));
    this.observability.primaryChanged(isPrimary, hostname);
  }

  /** The cluster id a new primary uses: the one beside the lease, stored here too; ours if none. */
  async #primaryClusterId(): Promise<string> {
    const dataDir = this.store.dataDir;
    const leaser = this.#roleManager.leaserType;
    if (leaser === "static") return loadOrCreateClusterId(dataDir);
    const local = readClusterId(dataDir);
    // A read first: the id is nearly always there already (a handoff, a failover), and a read costs the
    // coordinator no disk-synced write on the way to becoming primary.
    const present = await this.#roleManager.clusterId();
    const stored = present ?? (await this.#roleManager.setClusterIdIfAbsent(local ?? generateClusterId()));
    if (local !== null && stored !== local) {
      throw new Error(
        `this node belongs to cluster ${local}, the lease to cluster ${stored}: refusing to mix`,
      );
    }
    if (local === null) writeClusterId(dataDir, stored);
    return stored;
  }

  #startReplica(): void {
    if (this.#replica !== null) return;
    const config = this.#config;
    const applier = new ReplicaApplier({
      fileSystem: this.#fileSystem,
      session: this.session,
      locks: this.#locks,
      log: this.#log,
    });
    const replica = new ReplicaClient({
      store: this.store,
      primaryUrl: () => this.#following?.advertiseURL ?? null,
      clusterId: {
        get: () => this.#clusterId,
        adopt: (id) => {
          writeClusterId(this.store.dataDir, id);
          this.#clusterId = id;
        },
      },
      authToken: config.http.authToken ?? null,
      applier,
      log: this.#log,
      quarantineDir: this.store.dataDir.quarantineDir,
      onQuarantine: (db, result) => this.observability.quarantined(db, result),
      initialEpochSeen: this.#epochs.highest,
      onEpoch: async (epoch) => {
        await this.#epochs.raise(epoch);
        this.observability.metrics.lease.setEpoch(epoch);
      },
      candidate: config.lease.candidate,
      advertiseUrl: this.#roleManager.identity.advertiseURL,
      onHandoff: () => this.#roleManager.handoffReceived(),
      onFrame: (frame, bytes) => this.observability.streamFrameReceived(frame, bytes),
    });
    this.#replica = replica;
    replica.synced.then(() => this.#roleManager.poke()).catch(() => undefined);
    replica.start();
  }

  async #stopReplica(): Promise<void> {
    const replica = this.#replica;
    if (replica === null) return;
    this.#replica = null;
    await replica.stop();
  }

  #startJobs(config: Config): void {
    const every = config.data.retentionMonitorIntervalMs;
    const tick = (): void => {
      try {
        this.store.enforceRetention(config.data.retentionMs, (db, files, bytes) =>
          this.observability.ltxRetired(db, files, bytes),
        );
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

/** Each database's position now, by name. */
function databasePositions(store: Store): Map<string, Pos> {
  return new Map(store.databases().map((db) => [db.name, db.pos]));
}
