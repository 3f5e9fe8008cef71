// The README's main job: a local LiteFS cluster on this machine, on the embedded defaults (static
// lease, no external service). Three `litefs mount` nodes — one primary, two replicas — each with its
// own mount, data directory, node API and proxy, and the example guestbook app behind each proxy.
// Writing through any node's URL shows up on every node: a replica's proxy forwards the write to the
// primary, and the read that follows waits until the replica has the transaction.
//
//   node dist/scripts/demo.js [--base-port N] [--self-check]
//
// Prints the three URLs and runs until Ctrl-C (SIGINT/SIGTERM), then stops every node, which unmounts.
// --self-check writes through each node, checks that every node shows every entry, and exits (0 = ok);
// the test suite runs the demo that way.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const cli = path.join(root, "dist", "src", "cli", "main.js");
const guestbook = path.join(root, "dist", "examples", "guestbook", "main.js");
const DB = "guestbook.db";

interface DemoNode {
  name: string;
  apiPort: number;
  proxyPort: number;
  appPort: number;
  fuseDir: string;
  child?: ChildProcess;
  logs: string[];
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function nodeConfig(node: DemoNode, dataDir: string, primary: DemoNode): string {
  const isPrimary = node === primary;
  return [
    `fuse: { dir: "${node.fuseDir}" }`,
    `data: { dir: "${dataDir}" }`,
    `http: { addr: "127.0.0.1:${node.apiPort}" }`,
    `proxy: { addr: "127.0.0.1:${node.proxyPort}", target: "127.0.0.1:${node.appPort}", db: "${DB}" }`,
    "lease:",
    "  type: static",
    `  candidate: ${isPrimary}`,
    `  hostname: "${primary.name}"`,
    `  advertise-url: "http://127.0.0.1:${primary.apiPort}"`,
    "log: { format: text }",
    "",
  ].join("\n");
}

async function startNode(node: DemoNode, base: string, primary: DemoNode): Promise<void> {
  const dir = path.join(base, node.name);
  fs.mkdirSync(node.fuseDir, { recursive: true });
  const config = path.join(dir, "litefs.yml");
  fs.writeFileSync(config, nodeConfig(node, path.join(dir, "data"), primary));
  const app = [
    process.execPath,
    guestbook,
    "--db",
    path.join(node.fuseDir, DB),
    "--port",
    String(node.appPort),
  ];
  app.push("--name", node.name, ...(node === primary ? ["--journal-mode", "wal"] : ["--readonly"]));
  const child = spawn(process.execPath, [cli, "mount", "--config", config, "--", ...app], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  node.child = child;
  const logFile = fs.createWriteStream(path.join(dir, "litefs.log"));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${node.name} did not start:\n${node.logs.join("")}`)),
      60_000,
    );
    const onData = (chunk: Buffer): void => {
      logFile.write(chunk);
      node.logs.push(chunk.toString());
      if (node.logs.join("").includes("guestbook: listening")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${node.name} exited with ${code}:\n${node.logs.join("")}`));
    });
  });
}

async function stopNode(node: DemoNode): Promise<void> {
  const child = node.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

async function request(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(10_000) });
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
    const txid = res.headers.get("litefs-txid");
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
      await new Promise((r) => setTimeout(r, 100));
    }
    const has = written.filter((m) => seen.includes(m)).length;
    say(`  ${node.name} lists ${has} of the ${written.length} new entries`);
    if (has !== written.length) ok = false;
  }
  return ok;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { "base-port": { type: "string" }, "self-check": { type: "boolean" } },
    strict: true,
  });
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
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const node of [...nodes].reverse()) await stopNode(node);
    fs.rmSync(base, { recursive: true, force: true });
  };
  const done = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      say("\nstopping the cluster…");
      void stopAll().then(resolve);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  try {
    say(`LiteFS-TS local cluster (static lease) in ${base}`);
    for (const node of nodes) {
      await startNode(node, base, primary);
      say(`  ${node.name} ${node === primary ? "(primary)" : "(replica)"} up: mount ${node.fuseDir}`);
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
