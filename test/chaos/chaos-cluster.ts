// The cluster a chaos run beats on: N `litefs mount` nodes, each with
//   - its data directory on a small tmpfs of its own (a disk that really fills up: ENOSPC from the
//     kernel), seen through a FaultyDisk (our FUSE passthrough that can delay requests: a slow disk);
//   - the chaos app (chaos-app.ts) behind the node's proxy (`proxy.addr`);
//   - fault proxies on the paths between nodes, so a node can be partitioned from the others (and,
//     with the etcd lease, from etcd).
// Lease "static": n1 is the primary; each replica reaches it through a fault proxy of its own
// (replica→primary pairs), so cutting a replica's proxy partitions it, and cutting all of them
// partitions the primary. Lease "etcd" (all nodes candidates): each node's advertised API URL is a
// fault proxy in front of it, and each node reaches etcd through a fault proxy of its own; a
// partition cuts both. (Writes a replica's proxy forwards to the primary's proxy take the direct path.)
import * as fs from "node:fs";
import * as path from "node:path";

import { EtcdCluster } from "../support/etcd.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { FaultyDisk } from "../support/faulty-disk.js";
import { freeLoopbackPort } from "../support/free-port.js";
import { LitefsNode } from "../support/litefs-node.js";
import { REPO_ROOT } from "../support/paths.js";
import { SmallTmpfs } from "../support/small-disk.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { TrackedProcess } from "../support/tracked-process.js";

export const CHAOS_DB = "chaos.db";
const APP_MAIN = path.join(REPO_ROOT, "dist", "test", "chaos", "chaos-app.js");

export type LeaseMode = "static" | "etcd";

export interface ChaosClusterOptions {
  nodes: number;
  lease: LeaseMode;
  /** etcd lease TTL (default "2s"). */
  ttl?: string;
  /** Size of each node's tmpfs (default 256 MiB). */
  diskBytes?: number;
  /** Put a FaultyDisk between the node and its tmpfs (needed for slow-disk faults; default true). */
  faultyDisk?: boolean;
  /** The database's journal mode, set by the app at /init (default "delete"). */
  journalMode?: "delete" | "wal";
  /** `data.compress: false`: the nodes write and stream v1 LTX files (default: v3). */
  uncompressed?: boolean;
}

export class ChaosNode {
  readonly name: string;
  readonly baseDir: string;
  readonly tmpfs: SmallTmpfs;
  /** The data directory as the node sees it (the FaultyDisk mount, or the tmpfs itself). */
  readonly dataDir: string;
  /** The same files on the tmpfs, read by the checker without any FUSE hop. */
  readonly sourceDataDir: string;
  disk: FaultyDisk | undefined;
  node!: LitefsNode;
  app!: TrackedProcess;
  proxyPort = 0;
  appPort = 0;
  /** The node API's port (etcd: chosen before the start, so the inbound proxy can target it). */
  apiPort: number | undefined;
  /** Static lease: this replica's path to the primary's API. */
  toPrimary: FaultProxy | undefined;
  /** etcd lease: the proxy in front of this node's API (its advertise URL) and its path to etcd. */
  inbound: FaultProxy | undefined;
  toEtcd: FaultProxy | undefined;
  frozen = false;

  constructor(name: string, baseDir: string, tmpfs: SmallTmpfs, dataDir: string) {
    this.name = name;
    this.baseDir = baseDir;
    this.tmpfs = tmpfs;
    this.dataDir = dataDir;
    this.sourceDataDir = path.join(tmpfs.dir, "data");
  }

  get proxyUrl(): string {
    return `http://127.0.0.1:${this.proxyPort}`;
  }

  /** The node API, directly (not through any fault proxy). */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get dbPath(): string {
    return this.node.dbPath(CHAOS_DB);
  }

  /** The proxies a partition of this node cuts. */
  get pathProxies(): FaultProxy[] {
    return [this.toPrimary, this.inbound, this.toEtcd].filter((p): p is FaultProxy => p !== undefined);
  }
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = [];
  readonly options: ChaosClusterOptions;
  etcd: EtcdCluster | undefined;

  private constructor(options: ChaosClusterOptions) {
    this.options = options;
  }

  static async start(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const cluster = new ChaosCluster(options);
    try {
      if (options.lease === "etcd") cluster.etcd = await EtcdCluster.start({ label: "chaos-etcd" });
      for (let i = 1; i <= options.nodes; i++) await cluster.#startNode(`n${i}`);
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  node(name: string): ChaosNode {
    const node = this.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`chaos cluster: no node ${name}`);
    return node;
  }

  /** Static lease: the primary never moves. etcd: the node whose /status says primary, if any. */
  async primary(): Promise<ChaosNode | undefined> {
    if (this.options.lease === "static") return this.nodes[0];
    for (const node of this.nodes) {
      if (!node.node.running || node.frozen) continue;
      try {
        const res = await fetch(`${node.apiUrl}/status`, { signal: AbortSignal.timeout(2_000) });
        const status = (await res.json()) as { role?: string };
        if (status.role === "primary") return node;
      } catch {
        // Not answering: not the primary we can use.
      }
    }
    return undefined;
  }

  async #startNode(name: string): Promise<void> {
    const diskBytes = this.options.diskBytes ?? 256 << 20;
    const baseDir = makeTempDir(`chaos-${name}`);
    const tmpfs = SmallTmpfs.mount(diskBytes);
    fs.mkdirSync(path.join(tmpfs.dir, "data"));
    const useDisk = this.options.faultyDisk ?? true;
    const dataDir = useDisk ? path.join(baseDir, "disk") : path.join(tmpfs.dir, "data");
    const chaos = new ChaosNode(name, baseDir, tmpfs, dataDir);
    this.nodes.push(chaos);
    if (useDisk) {
      fs.mkdirSync(dataDir);
      chaos.disk = await FaultyDisk.start({ sourceDir: chaos.sourceDataDir, mountDir: dataDir });
    }
    chaos.appPort = await freeLoopbackPort();
    chaos.proxyPort = await freeLoopbackPort();
    const lease = await this.#leaseConfig(chaos);
    chaos.node = await LitefsNode.start({
      baseDir,
      config: {
        data: { dir: dataDir, ...(this.options.uncompressed === true ? { compress: false } : {}) },
        proxy: { addr: `127.0.0.1:${chaos.proxyPort}`, target: `127.0.0.1:${chaos.appPort}`, db: CHAOS_DB },
        lease,
        // Timestamps: a fault's log lines can be put beside the workload's acknowledgements.
        log: { format: "json", debug: true, timestamp: true },
        ...(chaos.apiPort === undefined ? {} : { http: { addr: `127.0.0.1:${chaos.apiPort}` } }),
      },
    });
    chaos.apiPort ??= chaos.node.httpPort;
    chaos.app = await TrackedProcess.spawn({
      label: `chaos app ${name}`,
      command: process.execPath,
      args: [
        "--enable-source-maps",
        APP_MAIN,
        "--db",
        chaos.node.dbPath(CHAOS_DB),
        "--port",
        String(chaos.appPort),
        "--journal-mode",
        this.options.journalMode ?? "delete",
      ],
    });
    await chaos.app.waitForLine(/chaos app listening/, 15_000);
  }

  async #leaseConfig(chaos: ChaosNode): Promise<Record<string, unknown>> {
    if (this.options.lease === "static") {
      const primary = this.nodes[0];
      if (primary === chaos) {
        return { type: "static", candidate: true, hostname: chaos.name };
      }
      chaos.toPrimary = await FaultProxy.start({
        label: `${chaos.name}→${primary.name}`,
        target: { host: "127.0.0.1", port: primary.node.httpPort },
        lifetimeMs: 60 * 60_000,
      });
      return {
        type: "static",
        candidate: false,
        hostname: primary.name,
        "advertise-url": `http://${chaos.toPrimary.address}`,
      };
    }
    const etcd = this.etcd!;
    const etcdUrl = new URL(etcd.endpoints[0]);
    chaos.toEtcd = await FaultProxy.start({
      label: `${chaos.name}→etcd`,
      target: { host: etcdUrl.hostname, port: Number(etcdUrl.port) },
      lifetimeMs: 60 * 60_000,
    });
    // The advertised URL must be known before the node starts, so the node's API gets a port of ours
    // (config http.addr) and the inbound proxy forwards to it.
    chaos.apiPort = await freeLoopbackPort();
    chaos.inbound = await FaultProxy.start({
      label: `→${chaos.name}`,
      target: { host: "127.0.0.1", port: chaos.apiPort },
      lifetimeMs: 60 * 60_000,
    });
    return {
      type: "etcd",
      candidate: true,
      hostname: chaos.name,
      "advertise-url": `http://${chaos.inbound.address}`,
      ttl: this.options.ttl ?? "2s",
      etcd: { endpoints: [`http://${chaos.toEtcd.address}`], key: "chaos" },
    };
  }

  /**
   * Stops everything this cluster started, in reverse order; never throws. With CHAOS_LOG_DIR set,
   * every node's log (all of its runs) is written there first as `<name>.log`: whole from
   * bench/chaos.ts (it keeps all output then), each run's last 256 KiB from a test.
   */
  async cleanup(): Promise<void> {
    const logDir = process.env.CHAOS_LOG_DIR;
    if (logDir !== undefined && logDir !== "") {
      try {
        fs.mkdirSync(logDir, { recursive: true });
        for (const chaos of this.nodes) {
          if (chaos.node !== undefined)
            fs.writeFileSync(path.join(logDir, `${chaos.name}.log`), chaos.node.logs());
        }
      } catch {
        // Logs are a diagnostic: never fail the cleanup over them.
      }
    }
    for (const chaos of [...this.nodes].reverse()) {
      if (chaos.frozen) continuePid(chaos);
      await chaos.app?.stop(3_000).catch(() => undefined);
      await chaos.node?.cleanup().catch(() => undefined);
      await chaos.disk?.cleanup().catch(() => undefined);
      for (const proxy of chaos.pathProxies) await proxy.close().catch(() => undefined);
      try {
        chaos.tmpfs.unmount();
      } catch {
        // The exit hook unmounts it lazily.
      }
      removeTempDir(chaos.baseDir);
    }
    await this.etcd?.stop().catch(() => undefined);
  }
}

/** SIGCONT to a frozen node (a stopped process ignores SIGTERM until continued). */
export function continuePid(chaos: ChaosNode): void {
  if (chaos.node?.running) process.kill(chaos.node.pid, "SIGCONT");
  chaos.frozen = false;
}
