// In kernel-locks mode the node's own locks (export barrier, import exclusive, snapshot read, HALT
// hold) are real OFD locks held by its lock helper: one that is never released blocks every local
// SQLite writer for good ("database is locked"), where table mode would only leave a table entry.
// Here a real `litefs mount` in that mode gets requests whose clients go away early, and afterwards
// the helper must hold nothing on the database (read from /proc/locks) and a plain write must work.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { after, before, test } from "node:test";

import { sqlite } from "../node/node-kit.js";
import { LitefsNode } from "../support/litefs-node.js";

const DB = "app.db";
/** How long a release may take to reach the helper (it is asynchronous in kernel mode). */
const RELEASE_BOUND_MS = 10_000;

let node: LitefsNode;

before(async () => {
  node = await LitefsNode.start({ config: { fuse: { "kernel-locks": true } } });
  await sqlite(
    node.dbPath(DB),
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a');",
  );
});

after(async () => {
  await node?.cleanup();
});

/** The `/proc/locks` lines of OFD locks on `file` (matched by device and inode). */
function ofdLocksOn(file: string): string[] {
  const st = fs.statSync(file);
  const major = (st.dev >> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${st.ino}`;
  return fs
    .readFileSync("/proc/locks", "utf8")
    .split("\n")
    .filter((line) => line.includes("OFDLCK") && line.split(/\s+/).includes(id));
}

/**
 * Waits until a write through the mount succeeds with no OFD lock left on the database (the node's
 * helper is its only OFD user). A cut-off request may still be on its way and take its locks for a
 * moment: a failed write is retried until the bound, so only a lock that stays fails this.
 */
async function writeEventually(what: string): Promise<void> {
  const deadline = Date.now() + RELEASE_BOUND_MS;
  let failure = "";
  for (;;) {
    const held = ofdLocksOn(node.dbPath(DB));
    if (held.length === 0) {
      try {
        await sqlite(node.dbPath(DB), `INSERT INTO t (v) VALUES ('after ${what}');`);
        return;
      } catch (err) {
        failure = (err as Error).message;
      }
    } else failure = `the node still holds locks on ${DB}:\n${held.join("\n")}`;
    if (Date.now() > deadline) assert.fail(`after ${what}: ${failure}\n${node.logs().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sends `head` (and `body`) on a raw connection and closes it at once, without reading an answer. */
async function sendAndHangUp(head: string, body?: Buffer): Promise<void> {
  const socket = net.connect(node.httpPort, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => undefined);
  socket.write(head);
  if (body !== undefined) socket.write(body);
  socket.destroy();
  await new Promise((resolve) => socket.once("close", resolve));
}

test("exports whose client hangs up at once leave no lock behind", async () => {
  for (let i = 0; i < 20; i++) {
    await sendAndHangUp(`GET /export?name=${DB} HTTP/1.1\r\nHost: node\r\n\r\n`);
  }
  await writeEventually("20 exports cut off");
});

test("imports whose client hangs up once the body is sent leave no lock behind", async () => {
  const copy = fs.readFileSync(node.dbPath(DB)); // a whole database: the import takes its locks
  for (let i = 0; i < 5; i++) {
    await sendAndHangUp(
      `POST /import?name=${DB} HTTP/1.1\r\nHost: node\r\nContent-Length: ${copy.length}\r\n\r\n`,
      copy,
    );
  }
  // Each import ends logged: done, or cut off (the reset may have come before the whole body).
  const outcomes = (): number =>
    (
      node.logs().match(/"msg":"database imported"|"msg":"API request ended early[^\n]*"path":"\/import"/g) ??
      []
    ).length;
  const deadline = Date.now() + RELEASE_BOUND_MS;
  while (outcomes() < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(outcomes(), 5, node.logs().slice(-3000));
  assert.match(node.logs(), /database imported/, "an import took its locks (else this tests nothing)");
  await writeEventually("5 imports cut off");
});

test("a HALT lock granted after its client hung up is released, not left to expire", async () => {
  const first = await fetch(`${node.httpUrl}/halt?db=${DB}`, { method: "POST" });
  assert.equal(first.status, 200, await first.clone().text());
  const { id } = (await first.json()) as { id: string };
  // Waits behind the first halt; its client is gone by the time it is granted.
  await sendAndHangUp(`POST /halt?db=${DB}&wait=20000 HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\n\r\n`);
  await new Promise((resolve) => setTimeout(resolve, 200)); // the node has the waiting request
  const released = await fetch(`${node.httpUrl}/halt?db=${DB}&halt=${id}`, { method: "DELETE" });
  assert.deepEqual(await released.json(), { released: true });
  await writeEventually("a HALT lock granted to a client that hung up");
  const granted = node.logs().match(/"msg":"HALT lock acquired"/g) ?? [];
  assert.equal(granted.length, 2, "the second halt was granted (else this tests nothing)");
});
