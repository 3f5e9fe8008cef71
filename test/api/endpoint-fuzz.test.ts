// Every route of a running node's HTTP API, on a real primary and a real replica (`litefs mount`
// processes), fed hostile requests over raw sockets: bad and unknown methods, bad, huge and repeated
// query parameters, odd database names (`../x`, NUL, 10 KB, `-wal`), bodies that are garbage, truncated,
// huge, slow, stalled or cut off, wrong content types, header floods, malformed HTTP, early
// disconnects — hand-picked ones, then a seeded random batch (LITEFS_TEST_SEED replays one).
//
// Each must get an answer within a bound: a 4xx with a JSON body {"error", "code"} saying what was wrong
// (never a 5xx for client garbage — except a replica's 503 ENOTPRIMARY for primary-only routes), or a
// 2xx when the request was in fact acceptable. Afterwards nothing changed (each node's data directory
// hashes the same, positions are the same), no request was logged as a server failure, and the nodes
// keep serving: a normal write on the primary replicates to the replica.
//
// Routes are read from the sources (every "METHOD /path" literal in src/api and src/node), so routes
// added later (halt, tx, handoff, promote…) are fuzzed too.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { Cluster, logRecords, waitForSync } from "../replication/cluster.js";
import { changedPaths, hashTree } from "../support/file-hashes.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { REPO_ROOT } from "../support/paths.js";
import { Prng, testSeed } from "../support/prng.js";
import { sqlite } from "../node/node-kit.js";

const DB = "app.db";
/** Longest a hostile request may wait for its answer (the stalled-body cases wait for the 10 s guard). */
const ANSWER_BOUND_MS = 20_000;
const RANDOM_REQUESTS_PER_NODE = 250;

/** What came back on a raw connection. */
interface RawAnswer {
  /** 0 when the connection closed without an answer. */
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The request text, shortened, for assertion messages. */
  readonly request: string;
}

/** How to send one request: its head, then body pieces (with pauses), then stay open or close. */
interface RawPlan {
  readonly head: string;
  readonly body?: readonly (Buffer | string)[];
  /** Milliseconds between body pieces. */
  readonly pauseMs?: number;
  /** After sending: "wait" for the answer (default), or "close" at once (an early disconnect). */
  readonly then?: "wait" | "close";
  /** Read nothing until the whole body was sent (a client that writes before it reads). */
  readonly readLate?: boolean;
}

/** Sends `plan` on a fresh connection to `port` and reads the answer (a stream's headers suffice). */
async function rawRequest(port: number, plan: RawPlan): Promise<RawAnswer> {
  const shown = plan.head.split("\r\n")[0].slice(0, 160);
  const socket = net.connect(port, "127.0.0.1");
  let received = Buffer.alloc(0);
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${ANSWER_BOUND_MS} ms to ${shown}`));
    }, ANSWER_BOUND_MS);
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(received, shown));
    };
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (answerComplete(received)) finish();
    });
    socket.on("close", finish);
    socket.on("error", () => undefined); // a reset shows up as a close; the answer so far counts
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if (plan.readLate === true) socket.pause();
  socket.write(plan.head);
  let written: Promise<void> = Promise.resolve();
  for (const piece of plan.body ?? []) {
    if (plan.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, plan.pauseMs));
    if (socket.destroyed) break;
    written = new Promise((resolve) => socket.write(piece, () => resolve()));
  }
  if (plan.readLate === true) {
    await written; // every byte handed to the kernel (a write error resolves it too)
    socket.resume();
  }
  if (plan.then === "close") {
    socket.destroy();
    return { status: 0, headers: {}, body: "", request: shown };
  }
  return answer;
}

function headEnd(bytes: Buffer): number {
  return bytes.indexOf("\r\n\r\n");
}

/** True once the head and the declared body are in (or the head of a stream with no length). */
function answerComplete(bytes: Buffer): boolean {
  const end = headEnd(bytes);
  if (end < 0) return false;
  const head = bytes.subarray(0, end).toString("latin1");
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length === null) return /^HTTP\/1\.1 2/.test(head); // a stream (events): its head is enough
  return bytes.length - (end + 4) >= Number(length[1]);
}

function parseAnswer(bytes: Buffer, request: string): RawAnswer {
  const end = headEnd(bytes);
  if (end < 0) return { status: 0, headers: {}, body: bytes.toString("latin1"), request };
  const [statusLine, ...lines] = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  // Only this answer's body: a request that smuggled a second one gets a second answer after it.
  const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  const body = bytes.subarray(end + 4, length === undefined ? undefined : end + 4 + length);
  return { status, headers, body: body.toString("utf8"), request };
}

/** A request head (`Connection: close`, so every answer ends its connection). */
function head(method: string, target: string, headers: Record<string, string | number> = {}): string {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: node", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

/** A head with a body of `body` (Content-Length). */
function withBody(method: string, target: string, body: Buffer | string, headers = {}): RawPlan {
  return {
    head: head(method, target, { ...headers, "Content-Length": Buffer.byteLength(body) }),
    body: [body],
  };
}

/** Every "METHOD /path" route literal in the node's sources. */
function routesFromSources(): string[] {
  const routes = new Set<string>();
  for (const dir of ["src/api", "src/node"]) {
    for (const file of fs.readdirSync(path.join(REPO_ROOT, dir))) {
      if (!file.endsWith(".ts")) continue;
      const text = fs.readFileSync(path.join(REPO_ROOT, dir, file), "utf8");
      for (const match of text.matchAll(/"(GET|HEAD|POST|PUT|DELETE|PATCH) (\/[A-Za-z0-9/_-]*)"/g)) {
        routes.add(`${match[1]} ${match[2]}`);
      }
    }
  }
  return [...routes].sort();
}

/** Routes only a primary serves: a replica's 503 ENOTPRIMARY is the right answer there. */
const PRIMARY_ONLY_PATHS = new Set(["/stream", "/import", "/halt", "/halt/renew", "/tx", "/handoff"]);

/**
 * The verdict on one answer: in time (the caller's bound), no 5xx (but a replica's 503 ENOTPRIMARY on
 * a primary-only route), and every refusal carries a JSON body with `error` and `code`.
 */
function checkAnswer(
  answer: RawAnswer,
  opts: { replica: boolean; want4xx?: boolean; method?: string },
): void {
  const what = `${answer.request} → ${answer.status} ${answer.body.slice(0, 300)}`;
  assert.notEqual(answer.status, 0, `no answer (connection closed): ${what}`);
  const body = (): { error?: unknown; code?: unknown } => {
    try {
      return JSON.parse(answer.body) as { error?: unknown; code?: unknown };
    } catch {
      return {};
    }
  };
  if (answer.status >= 500) {
    const { code } = body();
    const path = answer.request.split(" ")[1]?.split("?")[0] ?? "";
    assert.ok(
      opts.replica && answer.status === 503 && code === "ENOTPRIMARY" && PRIMARY_ONLY_PATHS.has(path),
      `a 5xx for a client's request: ${what}`,
    );
    return;
  }
  if (opts.want4xx === true) assert.ok(answer.status >= 400, `want a 4xx: ${what}`);
  if (answer.status >= 400 && opts.method !== "HEAD") {
    const { error, code } = body();
    assert.equal(typeof error, "string", `a refusal without an error text: ${what}`);
    assert.ok((error as string).length > 5, what);
    assert.match(String(code), /^E[A-Z0-9_]+$/, `a refusal without a code: ${what}`);
  }
}

/** The hand-picked hostile requests for a node; each wants a 4xx (or 503 on a replica). */
function handPicked(routes: readonly string[], sqliteHead: Buffer): { name: string; plan: RawPlan }[] {
  const cases: { name: string; plan: RawPlan }[] = [];
  const paths = [...new Set(routes.map((route) => route.split(" ")[1]))];
  const add = (name: string, plan: RawPlan): void => {
    cases.push({ name, plan });
  };
  for (const p of paths) {
    const served = new Set(routes.filter((r) => r.endsWith(` ${p}`)).map((r) => r.split(" ")[0]));
    for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST", "GET"]) {
      if (!served.has(method)) add(`${method} ${p}`, { head: head(method, p) });
    }
    add(`FOO ${p} (unknown method)`, { head: head("FOO", p) });
    add(`CONNECT ${p}`, { head: head("CONNECT", "node:80") });
  }
  const names = [
    "../x",
    "..%2Fx",
    "a/b",
    "%00",
    "app.db%00",
    "x".repeat(10_000),
    "app.db-wal",
    "app.db-journal",
    "app.db-pos",
    ".primary",
    "",
    "%zz",
  ];
  for (const name of names) {
    const shown = name.length > 20 ? `${name.length}-char name` : JSON.stringify(name);
    add(`export name ${shown}`, { head: head("GET", `/export?name=${name}`) });
    add(`import name ${shown}`, withBody("POST", `/import?name=${name}`, sqliteHead));
  }
  add("export without name", { head: head("GET", "/export") });
  add("export of a missing database", { head: head("GET", "/export?name=nope.db") });
  add("export with two names", { head: head("GET", `/export?name=${DB}&name=other.db`) });
  add("export with an unknown parameter", { head: head("GET", `/export?name=${DB}&format=zip`) });
  add("info with a parameter", { head: head("GET", "/info?verbose=1") });
  add("pos with a huge parameter", { head: head("GET", `/pos?x=${"y".repeat(12_000)}`) });
  add("a URL over 16 KiB", { head: head("GET", `/info?x=${"y".repeat(20_000)}`) });
  add("a URL that does not parse", { head: head("GET", "//") });
  add("a raw NUL in the path", { head: head("GET", "/in\u0000fo") });
  add("a header flood (20 KiB)", {
    head: head(
      "GET",
      "/info",
      Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`X-Junk-${i}`, "z".repeat(100)])),
    ),
  });
  add("a header without a colon", { head: "GET /info HTTP/1.1\r\nHost: node\r\nno colon here\r\n\r\n" });
  add("two different Content-Lengths", {
    head: head("POST", `/import?name=new.db`, { "Content-Length": 5, "content-length": 7 }),
    body: ["abcde"],
  });
  add("Content-Length with Transfer-Encoding", {
    head: head("POST", `/import?name=new.db`, { "Content-Length": 5, "Transfer-Encoding": "chunked" }),
    body: ["0\r\n\r\n"],
  });
  add("a bad chunk size", {
    head: head("POST", `/import?name=new.db`, { "Transfer-Encoding": "chunked" }),
    body: ["zz\r\nabc\r\n0\r\n\r\n"],
  });
  add("HTTP/9.9", { head: "GET /info HTTP/9.9\r\nHost: node\r\n\r\n" });
  add("garbage instead of HTTP", {
    head: "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003\r\n\r\n",
  });
  // Import bodies.
  add("import of garbage", withBody("POST", "/import?name=new.db", Buffer.alloc(8192, 0x5a)));
  add(
    "import of a truncated database",
    withBody("POST", "/import?name=new.db", sqliteHead.subarray(0, 3000)),
  );
  add("import of an empty body", withBody("POST", "/import?name=new.db", ""));
  add(
    "import as JSON",
    withBody("POST", "/import?name=new.db", sqliteHead, { "Content-Type": "application/json" }),
  );
  add(
    "import as a form",
    withBody("POST", "/import?name=new.db", "a=b", { "Content-Type": "multipart/form-data; boundary=x" }),
  );
  add("import declaring 1 TB", {
    head: head("POST", "/import?name=new.db", { "Content-Length": 1e12 }),
    body: [Buffer.alloc(65536)],
  });
  add("import of chunked garbage", {
    head: head("POST", "/import?name=new.db", { "Transfer-Encoding": "chunked" }),
    body: ["4\r\nabcd\r\n", "3\r\nefg\r\n", "0\r\n\r\n"],
  });
  add("import of a slow body (garbage, 20 pieces 100 ms apart)", {
    head: head("POST", "/import?name=new.db", { "Content-Length": 20 * 512 }),
    body: Array.from({ length: 20 }, () => Buffer.alloc(512, 0x33)),
    pauseMs: 100,
  });
  add("import of a body that stalls (half sent, then nothing)", {
    head: head("POST", "/import?name=new.db", { "Content-Length": sqliteHead.length }),
    body: [sqliteHead.subarray(0, sqliteHead.length / 2)],
  });
  add("import declared longer than sent, then nothing (chunked)", {
    head: head("POST", "/import?name=new.db", { "Transfer-Encoding": "chunked" }),
    body: ["1000\r\n" + "q".repeat(100)],
  });
  // Stream request bodies.
  add("stream request of garbage", withBody("POST", "/stream", Buffer.alloc(4096, 0xee)));
  add("stream request of an empty body", withBody("POST", "/stream", ""));
  add(
    "stream request of JSON",
    withBody("POST", "/stream", '{"dbs":[]}', { "Content-Type": "application/json" }),
  );
  add("stream request of 2 MiB", withBody("POST", "/stream", Buffer.alloc(2 << 20, 1)));
  // Over the 8 MiB limit: 413, also for a client that reads only after sending everything.
  add("stream request of 9 MiB", withBody("POST", "/stream", Buffer.alloc(9 << 20, 2)));
  add("stream request of 9 MiB, chunked", {
    head: head("POST", "/stream", { "Transfer-Encoding": "chunked" }),
    body: [`${(9 << 20).toString(16)}\r\n`, Buffer.alloc(9 << 20, 3), "\r\n0\r\n\r\n"],
  });
  add("stream request of 40 MiB, read only after sending it all", {
    ...withBody("POST", "/stream", Buffer.alloc(40 << 20, 4)),
    readLate: true,
  });
  add("stream request declaring 1 TB", {
    head: head("POST", "/stream", { "Content-Length": 1e12 }),
    body: [Buffer.alloc(65536)],
  });
  return cases;
}

/** One seeded random request. */
function randomPlan(rng: Prng, routes: readonly string[]): RawPlan {
  const paths = [...new Set(routes.map((r) => r.split(" ")[1])), "/", "/x", "/info/", "/import/../info"];
  const method = rng.pick(["GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]);
  const pathName = rng.chance(0.9) ? rng.pick(paths) : "/" + encodeURIComponent(rng.string(rng.int(1, 40)));
  const params: string[] = [];
  for (let i = rng.int(0, 4); i > 0; i--) {
    const key = rng.pick([
      "name",
      "name",
      "db",
      "halt",
      "txid",
      "wait",
      "x",
      encodeURIComponent(rng.string(rng.int(1, 8))),
    ]);
    // Never a real database for `db`: `POST /halt?db=app.db` is a valid request that holds the HALT lock.
    const value = rng.pick([
      key === "name" ? DB : "nope.db",
      "new.db",
      "../etc/passwd",
      "%00",
      "db-wal",
      ".hidden",
      encodeURIComponent(randomBytes(rng, rng.int(0, 64)).toString("latin1")),
      "n".repeat(rng.int(200, 4000)),
    ]);
    params.push(`${key}=${value}`);
  }
  const target = pathName + (params.length > 0 ? "?" + params.join("&") : "");
  const headers: Record<string, string | number> = {};
  if (rng.chance(0.3)) {
    headers["Content-Type"] = rng.pick([
      "application/json",
      "text/plain",
      "application/vnd.sqlite3",
      "application/octet-stream",
      "multipart/form-data; boundary=zz",
      "x/" + rng.string(10),
    ]);
  }
  for (let i = rng.int(0, 3); i > 0; i--)
    headers[`X-${rng.string(6, "abcdefgh")}`] = rng.string(rng.int(0, 200));
  if (rng.chance(0.1)) headers.Authorization = `Bearer ${rng.string(20)}`;
  const bodyKind =
    method === "GET" || method === "HEAD"
      ? rng.pick(["none", "none", "bytes"])
      : rng.pick(["none", "bytes", "chunked", "cut"]);
  const body = randomBytes(rng, rng.int(0, 70_000));
  switch (bodyKind) {
    case "bytes":
      return { head: head(method, target, { ...headers, "Content-Length": body.length }), body: [body] };
    case "chunked":
      return {
        head: head(method, target, { ...headers, "Transfer-Encoding": "chunked" }),
        body: [`${body.length.toString(16)}\r\n`, body, "\r\n0\r\n\r\n"],
      };
    case "cut":
      return {
        head: head(method, target, { ...headers, "Content-Length": body.length + 1000 }),
        body: [body],
        then: "close",
      };
    default:
      return { head: head(method, target, headers) };
  }
}

function randomBytes(rng: Prng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextUint32() & 0xff;
  return out;
}

/** Runs `plans` with at most `parallel` at a time; resolves with every answer in order. */
async function runAll(port: number, plans: readonly RawPlan[], parallel: number): Promise<RawAnswer[]> {
  const answers: RawAnswer[] = new Array<RawAnswer>(plans.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < plans.length; i = next++) answers[i] = await rawRequest(port, plans[i]);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return answers;
}

interface NodeState {
  readonly files: Map<string, string>;
  readonly pos: string;
}

async function stateOf(node: LitefsNode): Promise<NodeState> {
  const res = await fetch(`${node.httpUrl}/pos`);
  return { files: hashTree(node.dataDir), pos: await res.text() };
}

/**
 * Asserts that `node` is back in state `before`. A refused upload's temporary file is removed just
 * after its answer went out (and a stalled one only after the 10 s body idle timeout), so this looks
 * again for up to 15 s before it fails.
 */
async function assertUnchanged(node: LitefsNode, before: NodeState, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const now = await stateOf(node);
    const changed = changedPaths(before.files, now.files);
    if ((changed.length === 0 && now.pos === before.pos) || Date.now() > deadline) {
      assert.deepEqual(changed, [], `${what}: the data directory changed`);
      assert.equal(now.pos, before.pos, `${what}: positions changed`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("hostile requests to every node API route", () => {
  let cluster: Cluster;
  let nodes: { label: string; node: LitefsNode; replica: boolean }[];
  const routes = routesFromSources();
  const seed = testSeed();
  let sqliteHead: Buffer;

  before(async () => {
    cluster = await Cluster.start({ replicas: 1 });
    const primary = cluster.primary;
    await sqlite(
      primary.dbPath(DB),
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');",
    );
    await waitForSync(primary, cluster.replicas, [DB]);
    // A real database's first pages: valid-looking, but a truncated upload.
    sqliteHead = fs.readFileSync(path.join(primary.storeDir(DB), "database")).subarray(0, 4096);
    nodes = [
      { label: "primary", node: primary, replica: false },
      { label: "replica", node: cluster.replicas[0], replica: true },
    ];
  });
  after(async () => {
    await cluster?.cleanup();
  });

  test(`routes under test come from the sources (${routes.length})`, () => {
    for (const route of [
      "GET /info",
      "GET /pos",
      "GET /status",
      "POST /stream",
      "POST /import",
      "GET /export",
      "GET /metrics",
      "GET /events",
    ]) {
      assert.ok(routes.includes(route), `${route} not found in the sources: ${routes.join(", ")}`);
    }
  });

  test("hand-picked hostile requests get a clear 4xx and change nothing", async () => {
    for (const { label, node, replica } of nodes) {
      const before = await stateOf(node);
      const cases = handPicked(routes, sqliteHead);
      const answers = await runAll(
        node.httpPort,
        cases.map((c) => c.plan),
        6,
      );
      answers.forEach((answer, i) => {
        checkAnswer(answer, { replica, want4xx: true, method: cases[i].plan.head.split(" ")[0] });
      });
      const statuses = new Map<number, number>();
      for (const answer of answers) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      console.log(
        `${label}: ${cases.length} hand-picked requests, statuses ${JSON.stringify([...statuses])}`,
      );
      await assertUnchanged(node, before, label);
    }
  });

  test("stalled and slow requests are bounded; early disconnects leave the node serving", async () => {
    for (const { node } of nodes) {
      const started = Date.now();
      const stalled = rawRequest(node.httpPort, {
        head: head("POST", "/import?name=new.db", { "Content-Length": 100_000 }),
        body: [Buffer.alloc(1000)],
      });
      const slowHeaders = rawRequest(node.httpPort, { head: "GET /info HTTP/1.1\r\nHost: node\r\nX-Slow: " });
      // Early disconnects: mid-upload, mid-headers, right after an export started, an events stream.
      for (const plan of [
        {
          head: head("POST", "/import?name=new.db", { "Content-Length": 1 << 20 }),
          body: [Buffer.alloc(300_000)],
          then: "close" as const,
        },
        { head: "GET /info HTTP/1.1\r\nHo", then: "close" as const },
        { head: head("GET", `/export?name=${DB}`), then: "close" as const },
        { head: head("GET", "/events"), then: "close" as const },
        { head: head("POST", "/stream", { "Content-Length": 5000 }), body: ["abc"], then: "close" as const },
      ]) {
        await rawRequest(node.httpPort, plan);
      }
      const [stalledAnswer, slowAnswer] = await Promise.all([stalled, slowHeaders]);
      const elapsed = Date.now() - started;
      // The import body guard (10 s) or a replica's immediate 503; the headers timeout (10 s) for both.
      assert.ok(stalledAnswer.status === 408 || stalledAnswer.status === 503, JSON.stringify(stalledAnswer));
      assert.equal(slowAnswer.status, 408, JSON.stringify(slowAnswer));
      assert.ok(elapsed < ANSWER_BOUND_MS, `${elapsed} ms`);
      const info = await fetch(`${node.httpUrl}/info`);
      assert.equal(info.status, 200);
    }
  });

  test(`seeded random requests (seed ${seed}, ${RANDOM_REQUESTS_PER_NODE} per node) get no 5xx`, async () => {
    const rng = new Prng(seed);
    for (const { label, node, replica } of nodes) {
      const before = await stateOf(node);
      const plans = Array.from({ length: RANDOM_REQUESTS_PER_NODE }, () => randomPlan(rng, routes));
      const answers = await runAll(node.httpPort, plans, 4);
      const statuses = new Map<number, number>();
      answers.forEach((answer, i) => {
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (plans[i].then === "close") return;
        checkAnswer(answer, { replica, method: plans[i].head.split(" ")[0] });
      });
      console.log(
        `${label}: seed ${seed}, statuses ${JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]))}`,
      );
      await assertUnchanged(node, before, `${label} (seed ${seed})`);
    }
  });

  test("afterwards: no request failed on the server, both nodes run, a write replicates", async () => {
    for (const { label, node } of nodes) {
      assert.ok(node.running, `${label} is not running:\n${node.logs().slice(-3000)}`);
      const failures = logRecords(node, "API request failed");
      assert.deepEqual(failures, [], `${label} logged server failures`);
    }
    await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t (v) VALUES ('after the fuzz');");
    await waitForSync(cluster.primary, cluster.replicas, [DB]);
    const rows = await sqlite(cluster.replicas[0].dbPath(DB), "SELECT v FROM t ORDER BY id DESC LIMIT 1;");
    assert.equal(rows.trim(), "after the fuzz");
  });
});
