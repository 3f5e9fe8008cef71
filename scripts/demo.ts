// The README's main job: a local LiteFS cluster on this machine. Three `litefs mount` nodes, each with
// its own mount, data directory, node API and proxy, and the example guestbook app behind each proxy.
// Writing through any node's URL shows up on every node: a replica's proxy forwards the write to the
// primary, and the read that follows waits until the replica has the transaction.
//
//   node dist/scripts/demo.js [--lease static|etcd] [--base-port N] [--self-check]
//
// --lease static (default): the embedded defaults, no external service; node-1 is the primary.
// --lease etcd: the demo starts its own etcd (one member, data in the demo's temp dir, loopback ports
//   base+91/base+92), all three nodes are candidates with a 2 s lease, and whoever holds it is primary.
//   Kill one node's litefs process (its pid is printed) and another takes over within seconds; writes
//   through the surviving URLs keep working. The demo prints every change of primary as it sees it.
// Ports: node APIs base+1..3, apps base+41..43, proxies base+81..83 (base 20200 by default).
// Prints the URLs and runs until Ctrl-C (SIGINT/SIGTERM), then stops every node (and etcd), unmounts
// whatever a killed node left mounted, and removes its temp dir.
// --self-check writes through each node, checks that every node shows every entry, and exits (0 = ok);
// the test suite runs the demo that way.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const cli = path.join(root, "dist", "src", "cli", "main.js");
const guestbook = path.join(root, "dist", "examples", "guestbook", "main.js");
const ETCD_BINARY = "/usr/bin/etcd";
const DB = "guestbook.db";

type LeaseMode = "static" | "etcd";

interface DemoNode {
  name: string;
  apiPort: number;
  proxyPort: number;
  appPort: number;
  fuseDir: string;
  child?: ChildProcess;
  logs: string[];
}

interface Etcd {
  clientUrl: string;
  child: ChildProcess;
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function leaseConfig(node: DemoNode, primary: DemoNode, mode: LeaseMode, etcd: Etcd | null): string[] {
  if (mode === "etcd") {
    return [
      "lease:",
      "  type: etcd",
      "  candidate: true",
      `  hostname: "${node.name}"`,
      `  advertise-url: "http://127.0.0.1:${node.apiPort}"`,
      '  ttl: "2s"',
      '  lock-delay: "0s"',
      `  etcd: { endpoints: ["${etcd?.clientUrl}"], key: "litefs-demo" }`,
    ];
  }
  return [
    "lease:",
    "  type: static",
    `  candidate: ${node === primary}`,
    `  hostname: "${primary.name}"`,
    `  advertise-url: "http://127.0.0.1:${primary.apiPort}"`,
  ];
}

function nodeConfig(node: DemoNode, dataDir: string, lease: string[]): string {
  return [
    `fuse: { dir: "${node.fuseDir}" }`,
    `data: { dir: "${dataDir}" }`,
    `http: { addr: "127.0.0.1:${node.apiPort}" }`,
    `proxy: { addr: "127.0.0.1:${node.proxyPort}", target: "127.0.0.1:${node.appPort}", db: "${DB}" }`,
    ...lease,
    "log: { format: text }",
    "",
  ].join("\n");
}

/** Starts etcd on loopback ports derived from the base port, data under `base`; waits until it serves. */
async function startEtcd(base: string, basePort: number): Promise<Etcd> {
  if (!fs.existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} is missing: apt-get install etcd-server`);
  const clientUrl = `http://127.0.0.1:${basePort + 91}`;
  const peerUrl = `http://127.0.0.1:${basePort + 92}`;
  const dir = path.join(base, "etcd");
  const child = spawn(
    ETCD_BINARY,
    [
      "--name=demo",
      `--data-dir=${dir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=demo=${peerUrl}`,
      "--initial-cluster-state=new",
      "--heartbeat-interval=50",
      "--election-timeout=500",
      "--logger=zap",
      "--log-level=warn",
    ],
    { stdio: ["ignore", "ignore", fs.openSync(path.join(base, "etcd.log"), "w")], detached: true },
  );
  const etcd = { clientUrl, child };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited while starting (see ${base}/etcd.log; is port ${basePort + 91} free?)`);
    }
    try {
      const res = await fetch(`${clientUrl}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: Buffer.from("demo").toString("base64") }),
        signal: AbortSignal.timeout(1000),
      });
      await res.text();
      if (res.status === 200) return etcd;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopProcess(child);
      throw new Error(`etcd did not answer within 20 s (see ${base}/etcd.log)`);
    }
    await sleep(100);
  }
}

async function startNode(
  node: DemoNode,
  base: string,
  primary: DemoNode,
  mode: LeaseMode,
  etcd: Etcd | null,
): Promise<void> {
  const dir = path.join(base, node.name);
  fs.mkdirSync(node.fuseDir, { recursive: true });
  const config = path.join(dir, "litefs.yml");
  fs.writeFileSync(config, nodeConfig(node, path.join(dir, "data"), leaseConfig(node, primary, mode, etcd)));
  const app = [
    process.execPath,
    guestbook,
    "--db",
    path.join(node.fuseDir, DB),
    "--port",
    String(node.appPort),
    "--name",
    node.name,
  ];
  // With a static lease the roles are fixed; on etcd any node may be primary, and the guestbook
  // reopens its connection when a write is refused as read-only (it was opened on a replica).
  if (mode === "etcd" || node === primary) app.push("--journal-mode", "wal");
  else app.push("--readonly");
  // Its own process group: a node killed with SIGKILL leaves its app behind, which the demo then ends.
  const child = spawn(process.execPath, [cli, "mount", "--config", config, "--", ...app], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  node.child = child;
  const logFile = fs.createWriteStream(path.join(dir, "litefs.log"));
  const onData = (chunk: Buffer): void => {
    logFile.write(chunk);
    node.logs.push(chunk.toString());
    if (node.logs.length > 2000) node.logs.splice(0, 1000);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${node.name} did not start:\n${node.logs.join("")}`)),
      60_000,
    );
    const check = setInterval(() => {
      if (node.logs.join("").includes("guestbook: listening")) {
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      }
    }, 20);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      clearInterval(check);
      reject(new Error(`${node.name} exited with ${code ?? signal}:\n${node.logs.join("")}`));
    });
  });
}

/** SIGTERM (SIGKILL after 10 s) to the process's group; resolves once the process is gone. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  const group = -child.pid;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    signalGroup(group, "SIGTERM");
    const timer = setTimeout(() => signalGroup(group, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  // Whatever the process left behind (a killed node's app) — unless a process now holds its pid: the
  // kernel reuses a pid only once no group of that id has members, so our group is empty and a group
  // of that id is someone else's (a detached process leads its own, as a FUSE crash guard's watcher does).
  if (fs.existsSync(`/proc/${child.pid}`)) return;
  signalGroup(group, "SIGKILL");
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(group, signal);
  } catch {
    // the group is gone already
  }
}

/**
 * A node's mounts after it stopped: its FUSE mount, and with kernel locks (the default) the lock-file
 * mount under its data directory (`<data>/locks`, src/mountfs/lock-file-system.ts).
 */
function releaseNodeMounts(node: DemoNode): void {
  releaseMount(node.fuseDir);
  releaseMount(path.join(path.dirname(node.fuseDir), "data", "locks"));
}

/** Lazily unmounts `dir` if it is still mounted (a node killed with SIGKILL cannot unmount itself). */
function releaseMount(dir: string): void {
  const mounted = fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === dir);
  if (!mounted) return;
  try {
    execFileSync("fusermount3", ["-u", "-z", dir], { stdio: "ignore" });
  } catch {
    execFileSync("umount", ["-l", dir], { stdio: "ignore" });
  }
}

async function request(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(10_000) });
}

/** The node whose API says it is primary, or null (none answers so). */
async function findPrimary(nodes: readonly DemoNode[]): Promise<DemoNode | null> {
  for (const node of nodes) {
    try {
      const res = await request(`http://127.0.0.1:${node.apiPort}/status`);
      const status = (await res.json()) as { role?: string };
      if (status.role === "primary") return node;
    } catch {
      // down or starting
    }
  }
  return null;
}

/** Writes one entry through every node's proxy and checks every node lists all of them. */
async function selfCheck(nodes: DemoNode[]): Promise<boolean> {
  const written: string[] = [];
  for (const node of nodes) {
    const message = `written through ${node.name} at ${new Date().toISOString()}`;
    const res = await request(`http://127.0.0.1:${node.proxyPort}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "demo", message }),
    });
    if (res.status >= 400) throw new Error(`POST through ${node.name}: ${res.status} ${await res.text()}`);
    // Litefs-Txid is the position after the write: TXID/checksum.
    const txid = res.headers.get("litefs-txid")?.split("/")[0];
    say(`  POST via ${node.name}: ${res.status}, committed as TXID ${txid}`);
    written.push(message);
  }
  let ok = true;
  for (const node of nodes) {
    // A read without the writer's TXID may briefly lag; wait for replication with a bounded poll.
    let seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await request(`http://127.0.0.1:${node.proxyPort}/entries`);
      seen = ((await res.json()) as { message: string }[]).map((e) => e.message);
      if (written.every((m) => seen.includes(m))) break;
      await sleep(100);
    }
    const has = written.filter((m) => seen.includes(m)).length;
    say(`  ${node.name} lists ${has} of the ${written.length} new entries`);
    if (has !== written.length) ok = false;
  }
  return ok;
}

/** Prints each change of primary and each node exit until `signal` aborts (etcd mode). */
async function watchCluster(nodes: readonly DemoNode[], signal: AbortSignal): Promise<void> {
  let last: string | null | undefined;
  while (!signal.aborted) {
    const primary = (await findPrimary(nodes.filter((n) => isRunning(n))))?.name ?? null;
    if (!signal.aborted && primary !== last) {
      if (last !== undefined) say(primary === null ? "no primary right now" : `primary is now ${primary}`);
      last = primary;
    }
    await sleep(250);
  }
}

function isRunning(node: DemoNode): boolean {
  return node.child !== undefined && node.child.exitCode === null && node.child.signalCode === null;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      "base-port": { type: "string" },
      "self-check": { type: "boolean" },
      lease: { type: "string", default: "static" },
    },
    strict: true,
  });
  const mode = values.lease;
  if (mode !== "static" && mode !== "etcd") throw new Error(`--lease must be static or etcd, not "${mode}"`);
  const basePort = Number(values["base-port"] ?? "20200");
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-demo-"));
  const nodes: DemoNode[] = [1, 2, 3].map((i) => ({
    name: `node-${i}`,
    apiPort: basePort + i,
    proxyPort: basePort + 80 + i,
    appPort: basePort + 40 + i,
    fuseDir: path.join(base, `node-${i}`, "litefs"),
    logs: [],
  }));
  const primary = nodes[0];
  let etcd: Etcd | null = null;
  const watching = new AbortController();
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      watching.abort();
      for (const node of [...nodes].reverse()) {
        if (node.child !== undefined) await stopProcess(node.child);
        releaseNodeMounts(node);
      }
      if (etcd !== null) await stopProcess(etcd.child);
      fs.rmSync(base, { recursive: true, force: true });
    })());
  const done = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      say("\nstopping the cluster…");
      void stopAll().then(resolve);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  try {
    say(`LiteFS-TS local cluster (${mode} lease) in ${base}`);
    if (mode === "etcd") {
      etcd = await startEtcd(base, basePort);
      say(`  etcd up: ${etcd.clientUrl} (pid ${etcd.child.pid}), lease key prefix "litefs-demo", TTL 2s`);
    }
    for (const node of nodes) {
      await startNode(node, base, primary, mode, etcd);
      const role = mode === "static" ? (node === primary ? "(primary)" : "(replica)") : "(candidate)";
      say(`  ${node.name} ${role} up: mount ${node.fuseDir}, litefs pid ${node.child?.pid}`);
      node.child?.once("exit", (code, signal) => {
        if (stopping !== undefined) return;
        say(
          `${node.name}'s litefs exited (${signal ?? `code ${code}`}); its app is stopped, its mount released`,
        );
        if (node.child?.pid !== undefined) signalGroup(-node.child.pid, "SIGKILL");
        releaseNodeMounts(node);
      });
    }
    if (mode === "etcd") {
      const deadline = Date.now() + 30_000;
      let holder: DemoNode | null = null;
      while ((holder = await findPrimary(nodes)) === null && Date.now() < deadline) await sleep(100);
      say(`  primary: ${holder?.name ?? "none yet"}`);
    }
    say("\nThe guestbook on every node (write through any of them):");
    for (const node of nodes) say(`  http://127.0.0.1:${node.proxyPort}/   ${node.name}`);
    say(`Node APIs: ${nodes.map((n) => `http://127.0.0.1:${n.apiPort}/status`).join("  ")}`);
    say(`Logs: ${base}/node-N/litefs.log`);
    if (values["self-check"]) {
      say("\nself-check:");
      const ok = await selfCheck(nodes);
      say(ok ? "self-check ok: every write is on every node" : "self-check FAILED");
      await stopAll();
      return ok ? 0 : 1;
    }
    if (mode === "etcd") {
      say("\nTry a failover: kill -9 the primary's litefs pid; another node takes the lease within");
      say("a few seconds and writes through the other URLs keep working.");
      void watchCluster(nodes, watching.signal);
    }
    say("\nCtrl-C stops every node and removes the mounts.");
    await done;
    return 0;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
