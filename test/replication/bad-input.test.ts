// A replica fed bad input: a fake primary (an HTTP server in this test) answers each of the replica's
// connections with something wrong — garbage, an LTX file that does not follow the replica's position,
// a snapshot with one flipped byte, a stream cut off in the middle of a file, a frame with a bad CRC, a
// primary of another cluster. Each time the replica logs a clear error, applies nothing (no database,
// no LTX file, no temporary file left), and reconnects; then a good stream is applied. And a replica of
// another cluster is refused by a real primary.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, describe, test } from "node:test";

import Database from "better-sqlite3";

import { StreamFrameEncoder } from "../../src/api/stream-encoder.js";
import type { WireFrame } from "../../src/api/stream-frame.js";
import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import { LtxEncoder } from "../../src/ltx/encoder.js";
import { freeLoopbackPort } from "../support/free-port.js";
import { LitefsNode } from "../support/litefs-node.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { Cluster, replicaConfig, waitForRecords } from "./cluster.js";

const CLUSTER = "LFSC00000000000000AA";
const FAKE_NODE = 0x1234n;

/** A real SQLite database file (rows 1..50) and a snapshot LTX file of it. */
function snapshotOfRealDatabase(dir: string): { ltx: Uint8Array; post: bigint; pageSize: number } {
  const file = path.join(dir, "source.db");
  const db = new Database(file);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const insert = db.prepare("INSERT INTO t VALUES (?, ?)");
  for (let i = 1; i <= 50; i++) insert.run(i, "x".repeat(100 + i));
  db.close();
  const bytes = fs.readFileSync(file);
  const pageSize = bytes.readUInt16BE(16);
  const post = checksumDatabaseBytes(bytes, pageSize);
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((chunk) => chunks.push(chunk));
  encoder.writeHeader({
    flags: 0,
    pageSize,
    commit: bytes.length / pageSize,
    minTxid: 1n,
    maxTxid: 7n,
    timestamp: Date.now(),
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: FAKE_NODE,
  });
  for (let pgno = 1; pgno <= bytes.length / pageSize; pgno++) {
    encoder.writePage(pgno, bytes.subarray((pgno - 1) * pageSize, pgno * pageSize));
  }
  encoder.finish(post);
  return { ltx: Buffer.concat(chunks), post, pageSize };
}

function encode(frames: WireFrame[], ltx?: { bytes: Uint8Array; upTo?: number }): Buffer {
  const encoder = new StreamFrameEncoder({ chunkBytes: 4096 });
  const parts: Uint8Array[] = [];
  for (const frame of frames) {
    parts.push(...encoder.encode(frame));
    if (frame.type === "ltx-begin" && ltx !== undefined) {
      parts.push(...encoder.ltxData(ltx.bytes.subarray(0, ltx.upTo ?? ltx.bytes.length)));
      if (ltx.upTo === undefined) parts.push(...encoder.ltxEnd());
    }
  }
  return Buffer.concat(parts);
}

describe("bad input on the wire", { timeout: 120_000 }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test("every bad stream ends with a clear error, applies nothing, and the replica reconnects", async () => {
    const work = makeTempDir("bad-input");
    cleanups.push(() => removeTempDir(work));
    const { ltx, post } = snapshotOfRealDatabase(work);
    const epoch: WireFrame = { type: "epoch", epoch: 1n, primaryNodeId: FAKE_NODE };
    const snapshotBegin: WireFrame = {
      type: "ltx-begin",
      db: "x.db",
      minTxid: 1n,
      maxTxid: 7n,
      preApplyChecksum: 0n,
      postApplyChecksum: post,
      size: ltx.length,
      snapshot: { reason: "new", verdict: "shared", common: null },
    };
    const flipped = Buffer.from(ltx);
    flipped[Math.floor(flipped.length / 2)] ^= 0x40;
    const badCrc = encode([epoch, { type: "ready" }, { type: "end", reason: "shutdown" }]);
    badCrc[8 + 20 + 3] ^= 0xff; // inside EPOCH's payload: its CRC no longer matches
    const bad: { body: Buffer; code: RegExp; cluster?: string }[] = [
      { body: Buffer.from("this is not a stream at all, just text\n".repeat(4)), code: /ESTREAMFRAME/ },
      {
        body: encode([
          epoch,
          {
            type: "ltx-begin",
            db: "x.db",
            minTxid: 5n,
            maxTxid: 5n,
            preApplyChecksum: post,
            postApplyChecksum: post,
            size: ltx.length,
            snapshot: null,
          },
        ]),
        code: /ESTREAMTXID/,
      },
      {
        body: encode([epoch, snapshotBegin, { type: "end", reason: "shutdown" }], { bytes: flipped }),
        code: /ELTX/,
      },
      {
        body: encode([epoch, snapshotBegin], { bytes: ltx, upTo: ltx.length - 300 }),
        code: /ESTREAMTRUNCATED/,
      },
      { body: badCrc, code: /ESTREAMCHECKSUM/ },
      { body: encode([epoch]), code: /ESTREAMCLUSTER/, cluster: "LFSC00000000000000BB" },
    ];
    let connections = 0;
    let releaseGood: () => void = () => undefined;
    const goodAllowed = new Promise<void>((resolve) => (releaseGood = resolve));
    const server = http.createServer((req, res) => {
      req.resume();
      const i = connections++;
      const headers = { "Content-Type": "application/vnd.litefs.stream", "Litefs-Id": "0000000000001234" };
      if (i < bad.length) {
        res.writeHead(200, { ...headers, "Litefs-Cluster-Id": bad[i].cluster ?? CLUSTER });
        res.end(bad[i].body);
        return;
      }
      void goodAllowed.then(() => {
        res.writeHead(200, { ...headers, "Litefs-Cluster-Id": CLUSTER });
        const encoder = new StreamFrameEncoder();
        const out = [...encoder.encode(epoch), ...encoder.encode(snapshotBegin), ...encoder.ltxData(ltx)];
        out.push(...encoder.ltxEnd(), ...encoder.encode({ type: "ready" }));
        res.write(Buffer.concat(out));
        const timer = setInterval(() => {
          res.write(Buffer.concat(encoder.encode({ type: "heartbeat", timeMs: Date.now(), positions: [] })));
        }, 1000);
        res.on("close", () => clearInterval(timer));
      });
    });
    const port = await freeLoopbackPort();
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );

    const replica = await LitefsNode.start({
      config: {
        lease: {
          type: "static",
          candidate: false,
          hostname: "fake",
          "advertise-url": `http://127.0.0.1:${port}`,
        },
      },
    });
    cleanups.push(() => replica.cleanup());
    const errors = await waitForRecords(
      replica,
      "replication stream ended with an error; reconnecting",
      bad.length,
      () => true,
      30_000,
    );
    bad.forEach((b, i) =>
      assert.match(String(errors[i].code), b.code, `attempt ${i + 1}: ${String(errors[i].error)}`),
    );
    assert.equal(fs.existsSync(replica.dbPath("x.db")), false, "nothing was applied");
    const leftovers = fs
      .readdirSync(path.join(replica.dataDir, "dbs"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".ltx") || f.endsWith(".tmp") || f.endsWith("database"));
    assert.deepEqual(leftovers, [], "no LTX file, database or temporary file left behind");
    assert.equal(fs.readFileSync(path.join(replica.dataDir, "clusterid"), "utf8"), CLUSTER + "\n");

    releaseGood();
    await waitForRecords(replica, "snapshot applied", 1);
    const rows = new Database(replica.dbPath("x.db"), { readonly: true });
    try {
      assert.deepEqual(rows.prepare("SELECT count(*) AS n, sum(length(v)) AS len FROM t").get(), {
        n: 50,
        len: 50 * 100 + (50 * 51) / 2,
      });
    } finally {
      rows.close();
    }
    assert.equal(fs.readFileSync(replica.posPath("x.db"), "utf8"), `0000000000000007/${post.toString(16)}\n`);
  });

  test("a replica of another cluster is refused by the primary, with a clear error", async () => {
    const cluster = await Cluster.start({ replicas: 0 });
    cleanups.push(() => cluster.cleanup());
    const db = new Database(cluster.primary.dbPath("c.db")); // the primary is another process
    try {
      db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    } finally {
      db.close();
    }
    const base = makeTempDir("other-cluster");
    fs.mkdirSync(path.join(base, "data"), { recursive: true });
    fs.writeFileSync(path.join(base, "data", "clusterid"), "LFSC0000000000000001\n");
    const stranger = await LitefsNode.start({ baseDir: base, config: replicaConfig(cluster.primary) });
    cleanups.push(async () => {
      await stranger.cleanup();
      removeTempDir(base);
    });
    const [refusal] = await waitForRecords(
      stranger,
      "replication stream ended with an error; reconnecting",
      1,
    );
    assert.equal(refusal.code, "ESTREAMCLUSTER");
    assert.match(String(refusal.error), /refusing to mix clusters/);
    assert.equal(fs.existsSync(stranger.dbPath("c.db")), false);
    // The primary logs after it answered: its line may reach the test after the replica's.
    await waitForRecords(cluster.primary, "replication stream refused", 1);
  });
});
