// A cluster whose primary is chosen by a lease on a real etcd: an etcd of 1 or 3 members
// (test/support/etcd.ts) and N `litefs mount` processes (test/support/litefs-node.ts), every one a
// candidate with its own hostname and advertise URL, all on one etcd key prefix. Optionally a fault
// proxy between each node and each etcd member (so a test can cut one node off from etcd and nobody
// else), a fault proxy in front of each node's API that the node advertises (so a test can break the
// replication streams to one node), and a LiteFS proxy (`proxy.addr`) on each node in front of an app
// the test runs.
//
// The helpers ask the nodes themselves (`GET /status`) who is primary; they never assume an order.
// cleanup() stops every node (by its pid, through LitefsNode), every proxy and etcd, also after a
// failed start.
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

import { checksumDatabaseFile } from "../../src/ltx/checksum.js";
import { EtcdCluster } from "./etcd.js";
import { FaultProxy } from "./fault-proxy.js";
import { freeLoopbackPort } from "./free-port.js";
import { LitefsNode } from "./litefs-node.js";
import { parsePos } from "./pos.js";

export type ConfigSections = Record<string, Record<string, unknown>>;

export interface LeasedClusterOptions {
  /** Number of nodes, all candidates (default 3). */
  nodes?: number;
  /** etcd members (default 1). */
  etcdMembers?: 1 | 3;
  /** `lease.ttl` (default "2s"). */
  ttl?: string;
  /** `lease.lock-delay` (default "0s": failover bounded by the TTL alone). */
  lockDelay?: string;
  /** Put a FaultProxy between every node and every etcd member (default false). */
  etcdFaultProxies?: boolean;
  /**
   * Put a FaultProxy in front of every node's API and make it the node's `lease.advertise-url`, so
   * everything the others send that node (replication streams, handoff requests) goes through it
   * (default false). Tests still reach the node directly through `node.httpUrl`.
   */
  apiFaultProxies?: boolean;
  /**
   * A LiteFS proxy on every node: `target(i)` is the app's "host:port" behind node i, `db` the
   * database whose position the proxy tracks. The proxy's port is chosen here (`LeasedNode.proxyPort`).
   */
  proxy?: { target: (index: number) => string; db: string };
  /** Sections merged into every node's config (one level deep, after the lease section is built). */
  config?: ConfigSections;
  /** Start the nodes one after the other, waiting for a primary after the first (default true). */
  firstIsPrimary?: boolean;
}

/** The part of `GET /status` these helpers read; the rest is passed through. */
export interface NodeStatus {
  role: string;
  nodeId?: string;
  epoch?: string | number | null;
  [key: string]: unknown;
}

export interface LeasedNode {
  readonly index: number;
  /** `lease.hostname` (also what `.primary` shows on the others): "node-<index>". */
  readonly name: string;
  readonly node: LitefsNode;
  /** One proxy per etcd member, in member order (empty without `etcdFaultProxies`). */
  readonly etcdProxies: readonly FaultProxy[];
  /** The LiteFS proxy's port, when the cluster has proxies. */
  readonly proxyPort: number | null;
  /** The proxy in front of the node's API that the others reach it through (`apiFaultProxies`). */
  readonly apiProxy: FaultProxy | null;
}

export const LEASE_KEY_PREFIX = "litefs-test";

export class LeasedCluster {
  readonly etcd: EtcdCluster;
  readonly nodes: LeasedNode[] = [];
  readonly #options: LeasedClusterOptions;
  readonly #key: string;

  private constructor(etcd: EtcdCluster, options: LeasedClusterOptions) {
    this.etcd = etcd;
    this.#options = options;
    this.#key = `${LEASE_KEY_PREFIX}/${crypto.randomBytes(6).toString("hex")}`;
  }

  /**
   * Starts etcd and the nodes. Node 0 starts first and, unless `firstIsPrimary` is false, is waited
   * for as primary before the others start (so a test knows where it begins; roles move later).
   */
  static async start(options: LeasedClusterOptions = {}): Promise<LeasedCluster> {
    const etcd = await EtcdCluster.start({ members: options.etcdMembers ?? 1, label: "leased-etcd" });
    const cluster = new LeasedCluster(etcd, options);
    try {
      const count = options.nodes ?? 3;
      for (let i = 0; i < count; i++) {
        await cluster.#startNode(i);
        if (i === 0 && options.firstIsPrimary !== false) {
          await cluster.waitForPrimary({ timeoutMs: 30_000 });
        }
      }
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  /** The etcd key prefix of this cluster's lease. */
  get leaseKey(): string {
    return this.#key;
  }

  async #startNode(index: number): Promise<void> {
    const name = `node-${index}`;
    const etcdProxies: FaultProxy[] = [];
    if (this.#options.etcdFaultProxies === true) {
      for (const [m, member] of this.etcd.members.entries()) {
        const url = new URL(member.clientURL);
        etcdProxies.push(
          await FaultProxy.start({
            label: `${name} → etcd m${m}`,
            target: { host: url.hostname, port: Number(url.port) },
          }),
        );
      }
    }
    const endpoints =
      etcdProxies.length > 0 ? etcdProxies.map((p) => `http://${p.address}`) : this.etcd.endpoints;
    const proxyPort = this.#options.proxy === undefined ? null : await freeLoopbackPort();
    const httpPort = this.#options.apiFaultProxies === true ? await freeLoopbackPort() : undefined;
    const apiProxy =
      httpPort === undefined
        ? null
        : await FaultProxy.start({ label: `→ ${name} API`, target: { host: "127.0.0.1", port: httpPort } });
    const config: ConfigSections = {
      ...(this.#options.config ?? {}),
      lease: {
        type: "etcd",
        candidate: true,
        hostname: name,
        ttl: this.#options.ttl ?? "2s",
        "lock-delay": this.#options.lockDelay ?? "0s",
        etcd: { endpoints, key: this.#key },
        ...(apiProxy === null ? {} : { "advertise-url": `http://${apiProxy.address}` }),
        ...(this.#options.config?.lease ?? {}),
      },
    };
    if (this.#options.proxy !== undefined && proxyPort !== null) {
      config.proxy = {
        addr: `127.0.0.1:${proxyPort}`,
        target: this.#options.proxy.target(index),
        db: this.#options.proxy.db,
        ...(this.#options.config?.proxy ?? {}),
      };
    }
    try {
      // Without apiFaultProxies, advertise-url stays litefs-node.ts's default: this node's own API URL.
      const node = await LitefsNode.start({ config, httpPort });
      this.nodes.push({ index, name, node, etcdProxies, proxyPort, apiProxy });
    } catch (err) {
      await Promise.all(etcdProxies.map((p) => p.close()));
      await apiProxy?.close();
      throw err;
    }
  }

  /** The nodes whose process runs. */
  running(): LeasedNode[] {
    return this.nodes.filter((n) => n.node.running);
  }

  /** `GET /status` of one node, or null when it does not answer (dead, stopping, unmounted). */
  async status(node: LeasedNode, timeoutMs = 2_000): Promise<NodeStatus | null> {
    if (!node.node.running) return null;
    try {
      const res = await fetch(`${node.node.httpUrl}/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) {
        await res.body?.cancel();
        return null;
      }
      return (await res.json()) as NodeStatus;
    } catch {
      return null;
    }
  }

  /** The running nodes that say they are primary, now. */
  async primaries(): Promise<LeasedNode[]> {
    const nodes = this.running();
    const statuses = await Promise.all(nodes.map((n) => this.status(n)));
    return nodes.filter((_, i) => statuses[i]?.role === "primary");
  }

  /** The one primary; fails when no node or more than one says it is primary. */
  async primary(): Promise<LeasedNode> {
    const primaries = await this.primaries();
    assert.equal(
      primaries.length,
      1,
      `expected exactly one primary, got [${primaries.map((p) => p.name).join(", ")}]`,
    );
    return primaries[0];
  }

  /** The running nodes other than `node`. */
  others(node: LeasedNode): LeasedNode[] {
    return this.running().filter((n) => n !== node);
  }

  /**
   * Waits until exactly one running node says it is primary (and it is not `not`), then returns it.
   * Two answers "primary" at once are tolerated while waiting (a deposed primary may not have told
   * us yet): the wait only ends on a single one.
   */
  async waitForPrimary(opts: { not?: LeasedNode; timeoutMs?: number } = {}): Promise<LeasedNode> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let last: string[] = [];
    for (;;) {
      const primaries = await this.primaries();
      if (primaries.length === 1 && primaries[0] !== opts.not) return primaries[0];
      last = primaries.map((p) => p.name);
      if (Date.now() > deadline) {
        throw new Error(
          `no single primary${opts.not === undefined ? "" : ` other than ${opts.not.name}`} within ` +
            `${timeoutMs} ms (primaries now: [${last.join(", ")}])\n${this.logs()}`,
        );
      }
      await sleep(25);
    }
  }

  /**
   * Waits until the primary's `GET /status` lists every other running node among its connected
   * replicas (a handoff needs its target connected); returns how long that took.
   */
  async waitForReplicasConnected(primary: LeasedNode, timeoutMs = 30_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const others = this.others(primary);
      const ids = await Promise.all(others.map(async (n) => (await this.status(n))?.nodeId));
      const status = await this.status(primary);
      const connected = new Set(
        ((status?.replicas ?? []) as Array<{ nodeId?: string }>).map((r) => r.nodeId),
      );
      if (ids.every((id) => id !== undefined && connected.has(id))) return Date.now() - started;
      if (Date.now() - started > timeoutMs) {
        throw new Error(
          `replicas of ${primary.name} not all connected within ${timeoutMs} ms: want ` +
            `[${ids.join(", ")}], connected [${[...connected].join(", ")}]\n${this.logs()}`,
        );
      }
      await sleep(25);
    }
  }

  /**
   * Waits until every running node has the same position for every database in `dbs`, then checks
   * that the database files, as each node's mount shows them, are byte-identical and that their
   * rolling checksum is the one in the position. Call it with no writer running; the databases must
   * be in a rollback-journal mode (in WAL mode the file alone is not the database).
   */
  async waitConverged(dbs: readonly string[], timeoutMs = 30_000): Promise<void> {
    const nodes = this.running();
    assert.ok(nodes.length > 0, "waitConverged: no node runs");
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const differ: string[] = [];
      for (const db of dbs) {
        const positions = nodes.map((n) => readPosOrNull(n.node, db));
        if (positions.some((p) => p === null) || new Set(positions).size !== 1) {
          differ.push(`${db}: ${nodes.map((n, i) => `${n.name}=${positions[i]?.trim()}`).join(" ")}`);
        }
      }
      if (differ.length === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`not converged within ${timeoutMs} ms:\n${differ.join("\n")}\n${this.logs()}`);
      }
      await sleep(50);
    }
    for (const db of dbs) {
      const pos = parsePos(readPosOrNull(nodes[0].node, db) ?? "", `${nodes[0].name} ${db}-pos`);
      const first = fs.readFileSync(nodes[0].node.dbPath(db));
      for (const n of nodes) {
        const bytes = fs.readFileSync(n.node.dbPath(db));
        if (!bytes.equals(first)) {
          // Tell a stale view through the mount (kernel cache) from different data on disk.
          const backing = (x: LeasedNode): Buffer =>
            fs.readFileSync(path.join(x.node.storeDir(db), "database"));
          const onDisk = backing(n).equals(backing(nodes[0])) ? "the same" : "different too";
          const detail: string[] = [];
          for (const x of [nodes[0], n]) {
            const file = path.join(x.node.storeDir(db), "database");
            detail.push(
              `${x.name}: pos ${readPosOrNull(x.node, db)?.trim()}, mount view checksum ` +
                `${hex64(await checksumDatabaseFile(x.node.dbPath(db)))}, backing file checksum ` +
                `${hex64(await checksumDatabaseFile(file))} (${fs.statSync(file).size} bytes)`,
            );
          }
          assert.fail(
            `${db}: ${n.name}'s database differs from ${nodes[0].name}'s through the mounts (${bytes.length} ` +
              `vs ${first.length} bytes, first difference at byte ${firstDifference(bytes, first)}); the ` +
              `backing files are ${onDisk}\n${detail.join("\n")}\n${this.logs()}`,
          );
        }
        const checksum = hex64(await checksumDatabaseFile(n.node.dbPath(db)));
        assert.equal(checksum, pos.checksum, `${db}: ${n.name}'s rolling checksum vs its position`);
      }
    }
  }

  /** SIGKILL the node's process group now (a crash); the dead mount is unmounted. */
  async kill9(node: LeasedNode): Promise<void> {
    await node.node.crash();
  }

  /**
   * Freezes the node's process (SIGSTOP) now; the returned `thaw` continues it (SIGCONT), and runs
   * after `t` if the test did not (a frozen node must not outlive its test).
   */
  freeze(node: LeasedNode, t: { after: (fn: () => unknown) => void }): () => void {
    const pid = node.node.pid;
    process.kill(pid, "SIGSTOP");
    let frozen = true;
    const thaw = (): void => {
      if (!frozen) return;
      frozen = false;
      if (node.node.running) process.kill(pid, "SIGCONT");
    };
    t.after(thaw);
    return thaw;
  }

  /** Starts a stopped or crashed node again on the same config and data. */
  async restart(node: LeasedNode): Promise<void> {
    await node.node.restart();
  }

  /** Cuts the node off from every etcd member ("paused": silent; "dropped": connections reset). */
  cutFromEtcd(node: LeasedNode, mode: "paused" | "dropped" = "paused"): void {
    assert.ok(node.etcdProxies.length > 0, "cutFromEtcd needs etcdFaultProxies: true");
    for (const proxy of node.etcdProxies) {
      if (mode === "paused") proxy.pause();
      else proxy.drop();
    }
  }

  /** Reconnects the node to etcd. */
  healEtcd(node: LeasedNode): void {
    for (const proxy of node.etcdProxies) proxy.heal();
  }

  /** The tail of every node's logs, for assertion messages. */
  logs(tailChars = 4000): string {
    return this.nodes
      .map((n) => `==== ${n.name} (${n.node.httpUrl}) ====\n${n.node.logs().slice(-tailChars)}`)
      .join("\n");
  }

  /**
   * Stops every node, proxy and etcd member; safe to call more than once and after a failed start.
   * With LITEFS_TEST_KEEP_DATA=<folder> set, each node's data directory is copied there first (for a
   * post-mortem of a failed run: LTX files, epochs, quarantine).
   */
  async cleanup(): Promise<void> {
    const keep = process.env.LITEFS_TEST_KEEP_DATA;
    for (const n of this.nodes) {
      if (n.node.running) await n.node.stop().catch(() => undefined);
      if (keep !== undefined && keep !== "" && fs.existsSync(n.node.dataDir)) {
        const dest = path.join(keep, `${path.basename(n.node.baseDir)}-${n.name}`);
        fs.cpSync(n.node.dataDir, dest, { recursive: true });
      }
    }
    for (const n of this.nodes) await n.node.cleanup().catch(() => undefined);
    for (const n of this.nodes) await Promise.all(n.etcdProxies.map((p) => p.close()));
    for (const n of this.nodes) await n.apiProxy?.close();
    await this.etcd.stop();
  }
}

/** `<db>-pos` through the node's mount, or null when it cannot be read (missing, node down). */
export function readPosOrNull(node: LitefsNode, db: string): string | null {
  try {
    return fs.readFileSync(node.posPath(db), "utf8");
  } catch {
    return null;
  }
}

function hex64(n: bigint): string {
  return n.toString(16).padStart(16, "0");
}

/** Offset of the first byte where `a` and `b` differ (the shorter length when one is a prefix). */
function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
