// The example guestbook app as a real process (`node dist/examples/guestbook/main.js`): entries by form
// and JSON, the page and the JSON list, bad input, journal mode, and a read-only database as on a
// replica — both opened read-only and found read-only at startup (an immutable file: SQLite opens it
// read-write and the first write is refused).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";

import Database from "better-sqlite3";

import { REPO_ROOT } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { TrackedProcess } from "../support/tracked-process.js";
import { cookieFrom, httpRequest } from "./proxy-test-kit.js";

const GUESTBOOK_MAIN = path.join(REPO_ROOT, "dist", "examples", "guestbook", "main.js");
const dir = makeTempDir("guestbook");
const processes: TrackedProcess[] = [];

after(async () => {
  for (const p of processes) await p.stop(2000);
  removeTempDir(dir);
});

async function startGuestbook(
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ url: string; proc: TrackedProcess }> {
  const proc = await TrackedProcess.spawn({
    label: "guestbook",
    command: process.execPath,
    args: [GUESTBOOK_MAIN, ...args],
    env: { PATH: process.env.PATH, PORT: "0", ...env },
  });
  processes.push(proc);
  const line = await proc.waitForLine(/^guestbook: listening on /, 10_000);
  const url = /(http:\/\/[\d.]+:\d+)/.exec(line)?.[1];
  assert.ok(url !== undefined, line);
  return { url, proc };
}

interface Entry {
  id: number;
  name: string;
  message: string;
  createdAt: string;
}

describe("examples/guestbook", () => {
  test("form and JSON posts redirect to the page, which lists them newest first, escaped", async () => {
    const dbPath = path.join(dir, "main.db");
    const { url, proc } = await startGuestbook({
      DATABASE_PATH: dbPath,
      JOURNAL_MODE: "wal",
      NODE_NAME: "node-a",
    });
    assert.match(proc.stdout, /writable, journal_mode=wal/);

    const form = await httpRequest(url + "/", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "name=Ada&message=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    });
    assert.equal(form.status, 303);
    assert.equal(form.headers.location, "/");
    assert.equal(cookieFrom(form, "__txid"), undefined, "the app itself knows nothing of TXIDs");
    const first = JSON.parse(form.body) as Entry;
    assert.equal(first.name, "Ada");
    assert.match(first.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const json = await httpRequest(url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "  Grace ", message: "second" }),
    });
    assert.equal(json.status, 303);

    const page = await httpRequest(url + "/");
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.match(page.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.doesNotMatch(page.body, /<script>/);
    assert.match(page.body, /2 entries — served by <code>node-a<\/code>/);
    assert.ok(page.body.indexOf("Grace") < page.body.indexOf("Ada"), "newest first");

    const list = JSON.parse((await httpRequest(url + "/entries")).body) as Entry[];
    assert.deepEqual(
      list.map((e) => [e.name, e.message]),
      [
        ["Grace", "second"],
        ["Ada", "<script>alert(1)</script>"],
      ],
    );
    const db = new Database(dbPath, { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.equal((db.prepare("SELECT count(*) AS n FROM entries").get() as { n: number }).n, 2);
    } finally {
      db.close();
    }
    proc.signal("SIGTERM");
    assert.deepEqual(await proc.exit, { code: 0, signal: null });
  });

  test("bad input: 400 for missing fields or bad JSON, 413 for a huge body, 404 and 405 elsewhere", async () => {
    const { url } = await startGuestbook({}, ["--db", path.join(dir, "bad.db"), "--journal-mode", "delete"]);
    const post = (body: string, type = "application/json"): ReturnType<typeof httpRequest> =>
      httpRequest(url + "/", { method: "POST", headers: { "content-type": type }, body });
    assert.equal((await post(JSON.stringify({ name: "x" }))).status, 400);
    assert.equal((await post(JSON.stringify({ name: "", message: "m" }))).status, 400);
    assert.equal((await post(JSON.stringify({ name: "n".repeat(101), message: "m" }))).status, 400);
    assert.match((await post("{nope")).body, /body is not a JSON object/);
    assert.equal((await post("[1]")).status, 400);
    assert.equal((await post("name=a", "application/x-www-form-urlencoded")).status, 400);
    assert.equal((await post("x".repeat(70 * 1024), "text/plain")).status, 413);
    assert.equal((await httpRequest(url + "/nothing")).status, 404);
    const wrong = await httpRequest(url + "/entries", { method: "DELETE" });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.allow, "GET, HEAD");
    assert.deepEqual(JSON.parse((await httpRequest(url + "/entries")).body), []);
  });

  test("opened read-only (a replica): serves reads, a write gets 500 read-only replica", async () => {
    const dbPath = path.join(dir, "replica.db");
    const seed = new Database(dbPath);
    seed.exec(
      "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL)",
    );
    seed
      .prepare(
        "INSERT INTO entries (name, message, created_at) VALUES ('seed', 'from the primary', '2024-01-01T00:00:00.000Z')",
      )
      .run();
    seed.close();
    const { url, proc } = await startGuestbook({ DATABASE_PATH: dbPath, DATABASE_READONLY: "1" });
    assert.match(proc.stdout, /\(db .*replica\.db, read-only\)/);
    const list = JSON.parse((await httpRequest(url + "/entries")).body) as Entry[];
    assert.deepEqual(
      list.map((e) => e.name),
      ["seed"],
    );
    const write = await httpRequest(url + "/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name":"a","message":"b"}',
    });
    assert.equal(write.status, 500);
    assert.equal(write.body, "read-only replica: this node cannot accept writes\n");
  });

  test("a database found read-only at startup (SQLITE_READONLY): migrations skipped, reads served", async (t) => {
    const dbPath = path.join(dir, "immutable.db");
    fs.writeFileSync(dbPath, ""); // an empty file is an empty database: the migration would create the table
    try {
      execFileSync("chattr", ["+i", dbPath], { stdio: "pipe" });
    } catch (err) {
      t.skip(`chattr +i is not supported here (${(err as Error).message.split("\n")[0]})`);
      return;
    }
    try {
      const { url, proc } = await startGuestbook({ DATABASE_PATH: dbPath, JOURNAL_MODE: "delete" });
      assert.match(proc.stdout, /read-only\)/);
      const page = await httpRequest(url + "/");
      assert.equal(page.status, 200);
      assert.match(page.body, /0 entries \(read-only database/);
      assert.deepEqual(JSON.parse((await httpRequest(url + "/entries")).body), []);
      const write = await httpRequest(url + "/", { method: "POST", body: "name=a&message=b" });
      assert.equal(write.status, 500);
      assert.match(write.body, /^read-only replica/);
      await proc.stop(2000);
    } finally {
      execFileSync("chattr", ["-i", dbPath]);
    }
  });

  test("configuration errors are reported clearly", async () => {
    for (const [env, message] of [
      [{}, /no database: pass --db PATH or set DATABASE_PATH/],
      [{ DATABASE_PATH: path.join(dir, "x.db"), JOURNAL_MODE: "memory" }, /bad journal mode "memory"/],
      [{ DATABASE_PATH: path.join(dir, "x.db"), PORT: "99999" }, /bad port "99999"/],
      [{ DATABASE_PATH: path.join(dir, "missing", "x.db") }, /cannot open .*missing/],
    ] as const) {
      const proc = await TrackedProcess.spawn({
        label: "guestbook",
        command: process.execPath,
        args: [GUESTBOOK_MAIN],
        env: { PATH: process.env.PATH, ...env },
      });
      processes.push(proc);
      assert.equal((await proc.exit).code, 2);
      assert.match(proc.stderr, message);
    }
  });
});
