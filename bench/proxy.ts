// The proxy's cost, side by side in one run: the same requests straight to the app and through the
// proxy, and a write on a replica (forwarded to the primary's proxy) against the same write sent
// straight to the app and through the primary's proxy.
//
//   node dist/bench/proxy.js [--requests N] [--concurrency N] [--writes N] [--rounds N] [--json FILE]
//
// Processes: the guestbook app (WAL, database on /dev/shm so that disk noise does not drown the
// proxy's cost), a "primary" proxy and a "replica" proxy (this same file with --serve-proxy), and the
// load generator here — each in its own process, on 2 cores they compete for CPU as they would on a
// small machine. Reads, N requests with C in flight on keep-alive connections (requests/s and latency
// percentiles): GET /entries (the newest 100 entries, ~10 KiB of JSON: a realistic page) and GET
// /missing (the app's tiny 404: what the proxy adds to the cheapest possible request). Writes: POST /
// one at a time (latency without queueing). Every target is measured in each of R rounds, interleaved,
// and the median round (by rate) is reported.

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import type { ProxyNodeView } from "../src/proxy/index.js";
import { ProxyServer } from "../src/proxy/index.js";
import { REPO_ROOT } from "../test/support/paths.js";
import { proxyConfig } from "../test/proxy/proxy-test-kit.js";

const GUESTBOOK_MAIN = path.join(REPO_ROOT, "dist", "examples", "guestbook", "main.js");
const THIS_FILE = fileURLToPath(import.meta.url);

interface Sample {
  readonly ratePerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time the proxy processes spent per request (user + system), from /proc: robust to load noise. */
  proxyCpuUsPerRequest?: number;
}

/** CPU time (user + system) a process has used so far, in microseconds (Linux /proc). */
function processCpuUs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  const ticksPerSecond = 100; // USER_HZ on Linux
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}

// ---- child role: one proxy in front of the app -------------------------------------------------

async function serveProxy(
  role: "primary" | "replica",
  target: string,
  primaryUrl: string | undefined,
): Promise<void> {
  // A node view as cheap as the real one (in-memory positions); a replica that is never behind.
  const view: ProxyNodeView = {
    isPrimary: () => role === "primary",
    primaryProxyURL: () => primaryUrl,
    primaryHostname: () => "primary",
    txid: () => 1n,
    position: () => ({ txid: 1n, checksum: 1n }),
    checksumAt: (_db, txid) => (txid === 1n ? 1n : undefined),
    waitForTxid: () => Promise.resolve(),
    lagMs: () => 0,
  };
  const proxy = new ProxyServer({
    config: proxyConfig(target),
    view,
  });
  await proxy.listen();
  process.stdout.write(`proxy: listening on ${proxy.url}\n`);
  process.once("SIGTERM", () => void proxy.close().then(() => process.exit(0)));
}

// ---- parent: processes ---------------------------------------------------------------------------

function startChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "inherit"] });
  const stdout = child.stdout;
  return new Promise((resolve, reject) => {
    let out = "";
    stdout.setEncoding("utf8");
    stdout.on("data", (chunk: string) => {
      out += chunk;
      const match = ready.exec(out);
      if (match !== null) resolve({ child, url: match[1] });
    });
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${out}`)));
  });
}

// ---- parent: load ----------------------------------------------------------------------------------

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function once(agent: http.Agent, url: URL, method: string, body: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        agent,
        headers:
          body === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.once("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 500) reject(new Error(`${method} ${url.href}: HTTP ${status}`));
          else resolve(Number(process.hrtime.bigint() - started) / 1e6);
        });
      },
    );
    req.once("error", reject);
    req.end(body);
  });
}

async function load(
  baseUrl: string,
  path: string,
  method: string,
  total: number,
  concurrency: number,
  body: () => string | undefined,
): Promise<Sample> {
  const url = new URL(path, baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = new Float64Array(total);
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      latencies[i] = await once(agent, url, method, body());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  latencies.sort();
  return {
    ratePerSecond: total / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

function median(samples: Sample[]): Sample {
  const sorted = [...samples].sort((a, b) => a.ratePerSecond - b.ratePerSecond);
  return sorted[Math.floor(sorted.length / 2)];
}

interface Target {
  readonly label: string;
  readonly url: string;
}

interface Scenario {
  readonly title: string;
  readonly path: string;
  readonly method: "GET" | "POST";
  readonly count: number;
  readonly concurrency: number;
  readonly targets: readonly Target[];
}

function printScenario(scenario: Scenario, samples: readonly Sample[]): void {
  const f = (x: number, digits = 0): string => x.toFixed(digits);
  const base = samples[0];
  console.log(`\n${scenario.title}`);
  console.log(
    `  ${"target".padEnd(46)} ${"req/s".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}` +
      `   rate vs direct   p50 added   proxy CPU/req`,
  );
  for (const [i, target] of scenario.targets.entries()) {
    const s = samples[i];
    const addedUs = (s.p50Ms - base.p50Ms) * 1000;
    const added = i === 0 ? "" : `${addedUs >= 0 ? "+" : "−"}${f(Math.abs(addedUs))} µs`;
    const cpu = s.proxyCpuUsPerRequest === undefined || i === 0 ? "" : `${f(s.proxyCpuUsPerRequest)} µs`;
    console.log(
      `  ${target.label.padEnd(46)} ${f(s.ratePerSecond).padStart(7)} ${f(s.p50Ms, 2).padStart(8)} ` +
        `${f(s.p99Ms, 2).padStart(8)}   ${f(s.ratePerSecond / base.ratePerSecond, 2).padStart(14)}   ${added.padEnd(9)}   ${cpu.padStart(13)}`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "serve-proxy": { type: "string" },
      target: { type: "string" },
      "primary-url": { type: "string" },
      requests: { type: "string", default: "10000" },
      concurrency: { type: "string", default: "32" },
      writes: { type: "string", default: "1000" },
      rounds: { type: "string", default: "3" },
      json: { type: "string" },
    },
  });
  if (values["serve-proxy"] !== undefined) {
    await serveProxy(values["serve-proxy"] as "primary" | "replica", values.target!, values["primary-url"]);
    return;
  }
  const requests = Number(values.requests);
  const concurrency = Number(values.concurrency);
  const writes = Number(values.writes);
  const rounds = Number(values.rounds);

  const shm = fs.existsSync("/dev/shm") ? "/dev/shm" : undefined;
  const dir = fs.mkdtempSync(
    path.join(shm ?? fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "litefs-bench-proxy-"),
  );
  const children: ChildProcess[] = [];
  try {
    const app = await startChild(
      [GUESTBOOK_MAIN],
      { ...process.env, DATABASE_PATH: path.join(dir, "guestbook.db"), PORT: "0", JOURNAL_MODE: "wal" },
      /listening on (http:\/\/\S+)/,
    );
    children.push(app.child);
    const target = new URL(app.url).host;
    const primary = await startChild(
      [THIS_FILE, "--serve-proxy", "primary", "--target", target],
      process.env,
      /listening on (\S+)/,
    );
    children.push(primary.child);
    const replica = await startChild(
      [THIS_FILE, "--serve-proxy", "replica", "--target", target, "--primary-url", primary.url],
      process.env,
      /listening on (\S+)/,
    );
    children.push(replica.child);
    const proxyPids = [primary.child.pid!, replica.child.pid!];

    let n = 0;
    const entry = (): string => JSON.stringify({ name: "bench", message: `entry ${n++} ${"x".repeat(40)}` });
    // A full page of entries before reads are measured (the list shows the newest 100).
    await load(app.url, "/", "POST", 100, 1, entry);

    const reads: Target[] = [
      { label: "direct to the app", url: app.url },
      { label: "through the primary's proxy", url: primary.url },
      { label: "through a replica's proxy (local read)", url: replica.url },
    ];
    const scenarios: Scenario[] = [
      {
        title: `reads: GET /entries (~10 KiB JSON), ${requests} requests, ${concurrency} in flight`,
        path: "/entries",
        method: "GET",
        count: requests,
        concurrency,
        targets: reads,
      },
      {
        title: `reads: GET /missing (tiny 404), ${requests} requests, ${concurrency} in flight`,
        path: "/missing",
        method: "GET",
        count: requests,
        concurrency,
        targets: reads,
      },
      {
        title: `writes: POST / (one INSERT, WAL on ${shm ?? "disk"}), ${writes} one at a time`,
        path: "/",
        method: "POST",
        count: writes,
        concurrency: 1,
        targets: [
          { label: "direct to the app", url: app.url },
          { label: "through the primary's proxy", url: primary.url },
          { label: "forwarded: replica's proxy → primary's proxy", url: replica.url },
        ],
      },
    ];
    const body = (s: Scenario): (() => string | undefined) => (s.method === "POST" ? entry : () => undefined);
    // Warm-up: JIT, connection pools, SQLite's page cache.
    for (const s of scenarios) {
      for (const t of s.targets)
        await load(t.url, s.path, s.method, Math.min(1000, s.count), s.concurrency, body(s));
    }
    const samples = scenarios.map((s) => s.targets.map((): Sample[] => []));
    for (let round = 0; round < rounds; round++) {
      for (const [si, s] of scenarios.entries()) {
        for (const [ti, t] of s.targets.entries()) {
          const cpuBefore = proxyPids.reduce((sum, pid) => sum + processCpuUs(pid), 0);
          const sample = await load(t.url, s.path, s.method, s.count, s.concurrency, body(s));
          const cpuAfter = proxyPids.reduce((sum, pid) => sum + processCpuUs(pid), 0);
          sample.proxyCpuUsPerRequest = (cpuAfter - cpuBefore) / s.count;
          samples[si][ti].push(sample);
        }
      }
    }
    const results = samples.map((perTarget) => perTarget.map(median));
    console.log(
      `proxy benchmark: median of ${rounds} rounds; node ${process.version}; ` +
        `proxy CPU/req = user+system time of both proxy processes per request`,
    );
    for (const [si, s] of scenarios.entries()) printScenario(s, results[si]);
    if (values.json !== undefined) {
      const json = scenarios.map((s, si) => ({
        title: s.title,
        results: Object.fromEntries(s.targets.map((t, ti) => [t.label, results[si][ti]])),
      }));
      fs.writeFileSync(values.json, JSON.stringify({ rounds, scenarios: json }, null, 2) + "\n");
    }
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(
      children.map((c) =>
        c.exitCode === null
          ? new Promise<void>((resolve) => c.once("exit", () => resolve()))
          : Promise.resolve(),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
