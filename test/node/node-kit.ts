// Pieces shared by the tests of a running node's HTTP surfaces: scraping `/metrics` into samples,
// reading `/events` as it streams, running the sqlite3 shell through the mount without blocking the
// event loop, and a `litefs mount` node with the guestbook app behind its proxy.

import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";

import { httpRequest, type HttpAnswer } from "../proxy/proxy-test-kit.js";
import { freeLoopbackPort } from "../support/free-port.js";
import { runCommand } from "../support/litefs-cli.js";
import { LitefsNode, type LitefsNodeOptions } from "../support/litefs-node.js";
import { REPO_ROOT, SQLITE3_CLI } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

export const GUESTBOOK_MAIN = path.join(REPO_ROOT, "dist", "examples", "guestbook", "main.js");
export const GUESTBOOK_DB = "guestbook.db";

/** Runs the sqlite3 shell on `dbPath` (through the mount); throws with its stderr on failure. */
export async function sqlite(dbPath: string, sql: string): Promise<string> {
  const result = await runCommand(SQLITE3_CLI, ["-bail", "-batch", dbPath], {
    input: sql,
    timeoutMs: 30_000,
  });
  if (result.code !== 0 || result.stderr !== "") {
    throw new Error(`sqlite3 ${dbPath} failed (${result.code}): ${result.stderr}\nsql: ${sql}`);
  }
  return result.stdout;
}

/** The samples of a Prometheus text exposition: `name{labels}` → value. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    assert.ok(space > 0, `exposition line without a value: ${line}`);
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** GET /metrics of a node API; asserts 200 and the exposition content type. */
export async function scrape(apiUrl: string, token?: string): Promise<Map<string, number>> {
  const answer = await httpRequest(`${apiUrl}/metrics`, { headers: bearer(token) });
  assert.equal(answer.status, 200, answer.body);
  assert.match(String(answer.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  return parseExposition(answer.body);
}

/** The value of one series; `absent` when it is not there, else fails naming the series. */
export function sample(samples: Map<string, number>, series: string, absent?: number): number {
  const value = samples.get(series) ?? absent;
  assert.ok(value !== undefined, `no series ${series} in:\n${[...samples.keys()].join("\n")}`);
  return value;
}

export function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

/** A `GET /events` response read line by line as it streams. */
export class EventsReader {
  readonly status: number;
  /** Parsed NDJSON lines received so far. */
  readonly events: Record<string, unknown>[] = [];
  /** Resolves with how the response ended: "end" (cleanly) or "aborted" (cut). */
  readonly ended: Promise<"end" | "aborted">;
  readonly #req: http.ClientRequest;
  readonly #res: http.IncomingMessage;
  #waiters: (() => void)[] = [];

  private constructor(req: http.ClientRequest, res: http.IncomingMessage) {
    this.#req = req;
    this.#res = res;
    this.status = res.statusCode ?? 0;
    let partial = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        this.events.push(JSON.parse(partial.slice(0, nl)) as Record<string, unknown>);
        partial = partial.slice(nl + 1);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.ended = new Promise((resolve) => {
      res.once("end", () => resolve("end"));
      res.once("aborted", () => resolve("aborted"));
      res.once("error", () => resolve("aborted"));
    });
  }

  static open(apiUrl: string, token?: string): Promise<EventsReader> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${apiUrl}/events`, { headers: bearer(token), agent: false }, (res) =>
        resolve(new EventsReader(req, res)),
      );
      req.on("error", reject);
    });
  }

  /** Waits until at least `count` events arrived (fails after `timeoutMs` showing what did). */
  async waitForCount(count: number, timeoutMs = 10_000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.events.length} of ${count} events within ${timeoutMs} ms: ${JSON.stringify(this.events)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events;
  }

  close(): void {
    this.#res.destroy();
    this.#req.destroy();
  }
}

export interface GuestbookNodeOptions {
  /** Config sections merged over the generated ones (lease, http…). */
  readonly config?: Record<string, Record<string, unknown>>;
  /** proxy.addr host (default 127.0.0.1). */
  readonly proxyHost?: string;
  /** Extra guestbook arguments (e.g. ["--readonly"] on a replica). */
  readonly appArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly nodeOptions?: Omit<LitefsNodeOptions, "config" | "args" | "env">;
}

/** A `litefs mount` node running the guestbook (`-- node main.js …`) behind its proxy. */
export interface GuestbookNode {
  readonly node: LitefsNode;
  /** The proxy's base URL. */
  readonly proxyUrl: string;
  readonly proxyPort: number;
  readonly appPort: number;
  /** Stops the node (and so the app), unmounts, removes its directory. */
  cleanup(): Promise<void>;
}

export async function startGuestbookNode(opts: GuestbookNodeOptions = {}): Promise<GuestbookNode> {
  const proxyHost = opts.proxyHost ?? "127.0.0.1";
  const proxyPort = await freeLoopbackPort();
  const appPort = await freeLoopbackPort();
  const config = { ...(opts.config ?? {}) };
  config.proxy = {
    addr: `${proxyHost}:${proxyPort}`,
    target: `127.0.0.1:${appPort}`,
    db: GUESTBOOK_DB,
    ...(config.proxy ?? {}),
  };
  // Our own base dir, so that the app's database path inside the mount is known before the start.
  const baseDir = makeTempDir("guestbook-node");
  let node: LitefsNode;
  try {
    node = await LitefsNode.start({
      ...opts.nodeOptions,
      baseDir,
      config,
      env: opts.env,
      args: [
        "--",
        process.execPath,
        GUESTBOOK_MAIN,
        "--db",
        path.join(baseDir, "fuse", GUESTBOOK_DB),
        "--port",
        String(appPort),
        ...(opts.appArgs ?? []),
      ],
    });
  } catch (err) {
    removeTempDir(baseDir);
    throw err;
  }
  return {
    node,
    proxyUrl: `http://${proxyHost}:${proxyPort}`,
    proxyPort,
    appPort,
    cleanup: async () => {
      try {
        await node.cleanup();
      } finally {
        removeTempDir(baseDir);
      }
    },
  };
}

/** Polls `url` until it answers 200 (the app behind the proxy is up). */
export async function waitForOk(url: string, timeoutMs = 20_000): Promise<HttpAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const answer = await httpRequest(url);
      if (answer.status === 200) return answer;
      last = `${answer.status} ${answer.body.trim()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * An HTTP request whose answer counts even when the server closes the connection while the body is
 * still going out (a refusal before the upload ended): write errors after the answer are ignored.
 */
export function requestTolerant(
  url: string,
  opts: { method: string; headers?: Record<string, string>; body?: Buffer; agent?: http.Agent | false },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(url, { method: opts.method, headers: opts.headers, agent: opts.agent ?? false });
    req.on("response", (res) => {
      answered = true;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    req.end(opts.body);
  });
}
