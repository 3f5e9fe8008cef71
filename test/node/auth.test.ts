// The node API with `http.auth-token` (taken from an environment variable, as in production): every
// route refuses a request without the token or with a wrong one (401, a JSON body naming the problem,
// `WWW-Authenticate`) and nothing changes — no database, no position, no upload left behind; the right
// token works; the CLI sends the token from LITEFS_AUTH_TOKEN or from the config; a replica with the
// right token replicates, one with a wrong token is refused and gets nothing.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import Database from "better-sqlite3";

import { httpRequest } from "../proxy/proxy-test-kit.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import { LitefsNode, writeLitefsConfig } from "../support/litefs-node.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { requestTolerant, sqlite } from "./node-kit.js";

const TOKEN = "s3cret-token-0123456789";
const WRONG = "s3cret-token-0123456780";
const DB = "app.db";

/** Everything under the data directory (names and sizes): must not change on a refused request. */
function dataSnapshot(dataDir: string): string {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs
      .readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name !== "checksums")
        out.push(`${path.relative(dataDir, full)} ${fs.statSync(full).size}`);
    }
  };
  walk(dataDir);
  return out.join("\n");
}

describe("node API authentication (http.auth-token)", () => {
  let node: LitefsNode;
  const scratch = makeTempDir("auth");
  const upload = path.join(scratch, "upload.db");
  const replicas: LitefsNode[] = [];

  before(async () => {
    node = await LitefsNode.start({
      config: { http: { "auth-token": "${NODE_TOKEN}" } },
      env: { ...process.env, NODE_TOKEN: TOKEN },
    });
    await sqlite(node.dbPath(DB), "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept');");
    // An upload of a few MiB, so that a refused import is still sending when it is refused.
    const db = new Database(upload);
    db.exec("CREATE TABLE big (b BLOB)");
    const insert = db.prepare("INSERT INTO big VALUES (randomblob(65536))");
    for (let i = 0; i < 64; i++) insert.run();
    db.close();
  });
  after(async () => {
    for (const replica of replicas) await replica.cleanup();
    await node.cleanup();
    removeTempDir(scratch);
  });

  test("without the token or with a wrong one, every route answers 401 and nothing changes", async () => {
    const before = dataSnapshot(node.dataDir);
    const posBefore = node.readPos(DB);
    const body = fs.readFileSync(upload);
    const requests: { method: string; path: string; body?: Buffer; code?: string }[] = [
      { method: "GET", path: "/info" },
      { method: "GET", path: "/pos" },
      { method: "GET", path: "/status" },
      { method: "GET", path: "/metrics" },
      { method: "GET", path: "/events" },
      { method: "GET", path: `/export?name=${DB}` },
      { method: "POST", path: `/import?name=${DB}`, body },
      { method: "POST", path: "/import?name=new.db", body },
      { method: "POST", path: "/stream", body: Buffer.from("LFSREQ"), code: "ESTREAMAUTH" },
      { method: "GET", path: "/no-such-route" },
    ];
    const credentials: (string | undefined)[] = [
      undefined,
      `Bearer ${WRONG}`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Basic ${Buffer.from(`litefs:${TOKEN}`).toString("base64")}`,
      "Bearer",
    ];
    // A keep-alive client (whose connection stays open while the refused body is dropped) and one
    // that sends Connection: close (closed after the answer).
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    after(() => keepAlive.destroy());
    for (const r of requests) {
      for (const [i, authorization] of credentials.entries()) {
        const what = `${r.method} ${r.path} with ${authorization ?? "no Authorization"}`;
        const answer = await requestTolerant(node.httpUrl + r.path, {
          method: r.method,
          headers: authorization === undefined ? {} : { Authorization: authorization },
          body: r.body,
          agent: i % 2 === 0 ? keepAlive : false,
        }).catch((err: unknown) => {
          throw new Error(`${what}: ${(err as Error).message}`);
        });
        assert.equal(answer.status, 401, `${what}: ${answer.body}`);
        assert.equal(answer.headers["www-authenticate"], 'Bearer realm="litefs"', what);
        const json = JSON.parse(answer.body) as { error: string; code: string };
        assert.equal(json.code, r.code ?? "EAUTH", what);
        assert.match(json.error, /unauthorized: .*Authorization: Bearer/, what);
        assert.doesNotMatch(answer.body, new RegExp(TOKEN), "the answer must not echo the token");
      }
    }
    assert.deepEqual(node.readPos(DB), posBefore);
    assert.equal(fs.existsSync(node.storeDir("new.db")), false);
    assert.equal(dataSnapshot(node.dataDir), before, "the data directory changed");
    assert.match(node.lastRunLogs(), /node API request refused: unauthorized/);
  });

  test("with the token every route works", async () => {
    const headers = { Authorization: `Bearer ${TOKEN}` };
    const info = await httpRequest(`${node.httpUrl}/info`, { headers });
    assert.equal(info.status, 200);
    assert.equal((JSON.parse(info.body) as { isPrimary: boolean }).isPrimary, true);
    assert.equal((await httpRequest(`${node.httpUrl}/metrics`, { headers })).status, 200);
    const exported = await httpRequest(`${node.httpUrl}/export?name=${DB}`, { headers });
    assert.equal(exported.status, 200);
    assert.equal(
      exported.headers["litefs-pos"],
      `${node.readPos(DB).txid.toString(16).padStart(16, "0")}/${node.readPos(DB).checksum}`,
    );
    const missing = await httpRequest(`${node.httpUrl}/no-such-route`, { headers });
    assert.equal(missing.status, 404, "an authenticated request to no route is a plain 404");
  });

  test("the CLI sends the token from LITEFS_AUTH_TOKEN or the config, and fails clearly without it", async () => {
    const env = { ...process.env, LITEFS_AUTH_TOKEN: "" };
    const refused = await runLitefsCli(["import", "--url", node.httpUrl, "--name", "cli.db", upload], {
      env,
    });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /refused the import \(401\): unauthorized/);
    const wrong = await runLitefsCli(["import", "--url", node.httpUrl, "--name", "cli.db", upload], {
      env: { ...process.env, LITEFS_AUTH_TOKEN: WRONG },
    });
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /\(401\): unauthorized: wrong bearer token/);
    assert.equal(fs.existsSync(node.storeDir("cli.db")), false);

    const imported = await runLitefsCli(["import", "--url", node.httpUrl, "--name", "cli.db", upload], {
      env: { ...process.env, LITEFS_AUTH_TOKEN: TOKEN },
    });
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /^imported cli\.db at 0000000000000001\//);
    assert.ok(fs.readFileSync(node.dbPath("cli.db")).equals(fs.readFileSync(upload)));

    // From a config file: the node's own config holds "${NODE_TOKEN}", expanded from the environment.
    const clientConfig = path.join(scratch, "client.yml");
    writeLitefsConfig(clientConfig, { http: { addr: `127.0.0.1:${node.httpPort}`, "auth-token": TOKEN } });
    const exportedFile = path.join(scratch, "exported.db");
    const exported = await runLitefsCli(
      ["export", "--config", clientConfig, "--name", "cli.db", exportedFile],
      {
        env,
      },
    );
    assert.equal(exported.code, 0, exported.stderr);
    assert.ok(fs.readFileSync(exportedFile).equals(fs.readFileSync(upload)));

    const status = await runLitefsCli(["status", "--config", clientConfig, "--json"], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { role: string }).role, "primary");
    const statusRefused = await runLitefsCli(["status", "--url", node.httpUrl], { env });
    assert.equal(statusRefused.code, 1);
    assert.match(statusRefused.stderr, /HTTP 401/);
  });

  test("a replica with the token replicates; one with a wrong token is refused and gets nothing", async () => {
    const replicaConfig = (token: string): Record<string, Record<string, unknown>> => ({
      http: { "auth-token": token },
      lease: { type: "static", candidate: false, hostname: "test-primary", "advertise-url": node.httpUrl },
    });
    const good = await LitefsNode.start({ config: replicaConfig(TOKEN) });
    replicas.push(good);
    const bad = await LitefsNode.start({ config: replicaConfig(WRONG) });
    replicas.push(bad);

    const want = node.readPos(DB);
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(good.posPath(DB)) || good.readPos(DB).txid !== want.txid) {
      assert.ok(Date.now() < deadline, `the replica did not catch up:\n${good.lastRunLogs().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(good.readPos(DB), want);

    while (!/ESTREAMAUTH/.test(bad.lastRunLogs())) {
      assert.ok(Date.now() < deadline, `no refusal logged:\n${bad.lastRunLogs().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(fs.existsSync(bad.storeDir(DB)), false, "the refused replica got the database");
  });
});
