// Real etcd servers for tests: one member or a 3-member cluster on free loopback ports with fresh data
// directories, started from Debian's /usr/bin/etcd (etcd-server 3.4) and stopped by pid. Tests never use
// a system etcd (Debian may run one on 2379): every test starts and stops its own.
import * as fs from "node:fs";
import * as path from "node:path";
import { freeLoopbackPort } from "./free-port.js";
import { makeTempDir } from "./temp-dir.js";
import { TrackedProcess } from "./tracked-process.js";

export const ETCD_BINARY = "/usr/bin/etcd";

/** Ports a system etcd may hold; never handed to a test cluster. */
const RESERVED_PORTS = new Set([2379, 2380]);

export interface EtcdClusterOptions {
  /** 1 or 3 (default 1). */
  members?: 1 | 3;
  /** Names the temp dir and processes. */
  label?: string;
  /** Raft heartbeat (ms, default 50) and election timeout (ms, default 500): short for fast failover. */
  heartbeatMs?: number;
  electionTimeoutMs?: number;
  /** How long to wait for the cluster to become healthy (default 15 s). */
  startTimeoutMs?: number;
}

export interface EtcdMember {
  name: string;
  clientURL: string;
  peerURL: string;
  dataDir: string;
  process: TrackedProcess;
}

export class EtcdCluster {
  readonly members: EtcdMember[];
  readonly #rootDir: string;
  #stopped = false;

  private constructor(members: EtcdMember[], rootDir: string) {
    this.members = members;
    this.#rootDir = rootDir;
  }

  /** Starts the members and waits until every one answers a linearizable read. */
  static async start(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    if (!fs.existsSync(ETCD_BINARY))
      throw new Error(`${ETCD_BINARY} is missing: apt-get install etcd-server`);
    const count = options.members ?? 1;
    const label = options.label ?? "etcd";
    const rootDir = makeTempDir(label);
    const planned: Array<{ name: string; clientPort: number; peerPort: number }> = [];
    const taken = new Set<number>();
    for (let i = 0; i < count; i++) {
      planned.push({ name: `m${i}`, clientPort: await freshPort(taken), peerPort: await freshPort(taken) });
    }
    const initialCluster = planned.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
    const members: EtcdMember[] = [];
    const cluster = new EtcdCluster(members, rootDir);
    try {
      for (const plan of planned) {
        const dataDir = path.join(rootDir, plan.name);
        const clientURL = `http://127.0.0.1:${plan.clientPort}`;
        const peerURL = `http://127.0.0.1:${plan.peerPort}`;
        const process = await TrackedProcess.spawn({
          label: `etcd ${label}/${plan.name}`,
          command: ETCD_BINARY,
          args: [
            `--name=${plan.name}`,
            `--data-dir=${dataDir}`,
            `--listen-client-urls=${clientURL}`,
            `--advertise-client-urls=${clientURL}`,
            `--listen-peer-urls=${peerURL}`,
            `--initial-advertise-peer-urls=${peerURL}`,
            `--initial-cluster=${initialCluster}`,
            "--initial-cluster-state=new",
            `--initial-cluster-token=${path.basename(rootDir)}`,
            `--heartbeat-interval=${options.heartbeatMs ?? 50}`,
            `--election-timeout=${options.electionTimeoutMs ?? 500}`,
            "--logger=zap",
            "--log-level=warn",
          ],
        });
        members.push({ name: plan.name, clientURL, peerURL, dataDir, process });
      }
      await cluster.waitHealthy(options.startTimeoutMs ?? 15_000);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Client URLs of the members that were started (including killed ones). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientURL);
  }

  /** Waits until every running member serves a linearizable range (i.e. the cluster has a leader). */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const member of this.members) {
      if (member.process.status !== undefined) continue;
      let lastError = "";
      while (true) {
        if (member.process.status !== undefined) {
          throw new Error(`etcd member ${member.name} exited while starting\n${member.process.describe()}`);
        }
        try {
          const response = await fetch(`${member.clientURL}/v3/kv/range`, {
            method: "POST",
            body: JSON.stringify({ key: Buffer.from("health").toString("base64") }),
            signal: AbortSignal.timeout(1000),
          });
          if (response.status === 200) {
            await response.text();
            break;
          }
          lastError = `HTTP ${response.status} ${await response.text()}`;
        } catch (error) {
          lastError = (error as Error).message;
        }
        if (Date.now() > deadline) {
          throw new Error(
            `etcd member ${member.name} not healthy within ${timeoutMs} ms: ${lastError}\n${member.process.describe()}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** Kills one member with SIGKILL (a crash) and waits until it is gone. */
  async killMember(index: number): Promise<EtcdMember> {
    const member = this.members[index];
    if (member === undefined) throw new Error(`no etcd member ${index}`);
    member.process.killGroup();
    await member.process.exit;
    return member;
  }

  /** Index of the member that is the raft leader now (asks each running member). */
  async leaderIndex(): Promise<number> {
    for (let i = 0; i < this.members.length; i++) {
      const member = this.members[i];
      if (member.process.status !== undefined) continue;
      const response = await fetch(`${member.clientURL}/v3/maintenance/status`, {
        method: "POST",
        body: "{}",
        signal: AbortSignal.timeout(2000),
      });
      const status = (await response.json()) as { header?: { member_id?: string }; leader?: string };
      if (status.leader !== undefined && status.leader === status.header?.member_id) return i;
    }
    throw new Error("no etcd member reports itself as leader");
  }

  /** Stops every member (SIGTERM, then SIGKILL after 5 s) and removes the data directories. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.members.map((m) => m.process.stop(5_000)));
    fs.rmSync(this.#rootDir, { recursive: true, force: true });
  }
}

async function freshPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freeLoopbackPort();
    if (!RESERVED_PORTS.has(port) && !taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error("could not find a free loopback port for etcd");
}
