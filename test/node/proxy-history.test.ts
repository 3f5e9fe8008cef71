// RecentPositions (src/node/proxy-history.ts): the checksum each TXID has in a node's own history, for
// the proxy's position tokens. Over a real store: recent commits from memory, older ones (and after a
// restart) from the LTX files on disk, nothing for TXIDs beyond the position or without a file. A
// commit that does not continue the recorded history (a snapshot, a history replaced from another
// primary) starts the record over, so that a replaced branch's checksums are never answered.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";

import Database from "better-sqlite3";

import { formatFileName } from "../../src/ltx/file-name.js";
import type { Pos } from "../../src/ltx/pos.js";
import { RecentPositions } from "../../src/node/proxy-history.js";
import type { CommitEvent } from "../../src/store/commit-event.js";
import { importDatabaseFile } from "../../src/store/database-import.js";
import { Store } from "../../src/store/store.js";

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-proxy-history-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Commits one transaction to `name` (an import: one single-TXID LTX file); returns the position after. */
async function commit(store: Store, dir: string, name: string, rows: number): Promise<Pos> {
  const file = path.join(dir, `upload-${name}-${rows}.db`);
  const db = new Database(file);
  db.exec("CREATE TABLE t (x INTEGER)");
  for (let i = 0; i < rows; i++) db.prepare("INSERT INTO t VALUES (?)").run(i);
  db.close();
  const target = store.db(name) ?? store.createDatabase(name);
  await importDatabaseFile(target, file);
  return target.pos;
}

function openStore(t: { after(fn: () => void): void }): { store: Store; dir: string } {
  const dir = tempDir(t);
  const store = Store.open({ dataDir: path.join(dir, "data"), noSync: true });
  t.after(() => store.close());
  return { store, dir };
}

describe("RecentPositions", () => {
  test("answers each TXID's checksum from memory, then from the LTX files; nothing beyond", async (t) => {
    const { store, dir } = openStore(t);
    const recent = new RecentPositions(store, 2);
    const unsubscribe = store.subscribe((event) => recent.record(event));
    t.after(unsubscribe);
    const positions: Pos[] = [];
    for (let rows = 1; rows <= 4; rows++) positions.push(await commit(store, dir, "a.db", rows));
    assert.deepEqual(
      positions.map((p) => p.txid),
      [1n, 2n, 3n, 4n],
    );
    assert.equal(new Set(positions.map((p) => p.checksum)).size, 4, "every commit changed the checksum");
    for (const pos of positions) assert.equal(recent.checksumAt("a.db", pos.txid), pos.checksum);
    assert.equal(recent.checksumAt("a.db", 5n), undefined, "beyond the position");
    assert.equal(recent.checksumAt("a.db", 0n), undefined);
    assert.equal(recent.checksumAt("nope.db", 1n), undefined);

    // A restart knows only the files; one removed (retention) is no longer known.
    const fresh = new RecentPositions(store);
    for (const pos of positions) assert.equal(fresh.checksumAt("a.db", pos.txid), pos.checksum);
    fs.rmSync(path.join(store.db("a.db")!.dir.ltxDir, formatFileName(1n, 1n)));
    assert.equal(fresh.checksumAt("a.db", 1n), undefined);
    // Memory still has the last two commits (TXIDs 3, 4); TXID 2 comes from its file.
    fs.rmSync(path.join(store.db("a.db")!.dir.ltxDir, formatFileName(3n, 3n)));
    assert.equal(recent.checksumAt("a.db", 3n), positions[2].checksum);
    assert.equal(recent.checksumAt("a.db", 2n), positions[1].checksum);
  });

  test("a commit that does not continue the record (a snapshot, another branch) starts it over", async (t) => {
    const { store, dir } = openStore(t);
    const positions: Pos[] = [];
    for (let rows = 1; rows <= 3; rows++) positions.push(await commit(store, dir, "b.db", rows));
    const ltxDir = store.db("b.db")!.dir.ltxDir;
    // Record the chain as the store emitted it, then take the files away: only memory can answer.
    const recent = new RecentPositions(store);
    const event = (prevPos: Pos, pos: Pos, minTxid: bigint): CommitEvent => ({
      db: "b.db",
      pos,
      prevPos,
      pageSize: 4096,
      commit: 2,
      pageCount: 2,
      ltxPath: path.join(ltxDir, formatFileName(minTxid, pos.txid)),
      ltxBytes: 0,
      timestamp: 0,
      source: "replication",
    });
    recent.record(event({ txid: 0n, checksum: 0n }, positions[0], 1n));
    recent.record(event(positions[0], positions[1], 2n));
    recent.record(event(positions[1], positions[2], 3n));
    for (const name of fs.readdirSync(ltxDir)) fs.rmSync(path.join(ltxDir, name));
    assert.equal(recent.checksumAt("b.db", 1n), positions[0].checksum);
    assert.equal(recent.checksumAt("b.db", 2n), positions[1].checksum);

    // The store moves on to TXID 4 by a snapshot (1–4): TXIDs 1–3 are no longer known.
    const snapshotted = await commit(store, dir, "b.db", 9);
    recent.record(event(positions[2], snapshotted, 1n));
    fs.rmSync(path.join(ltxDir, formatFileName(4n, 4n)), { force: true });
    assert.equal(recent.checksumAt("b.db", 4n), snapshotted.checksum, "the position itself");
    for (const txid of [1n, 2n, 3n]) assert.equal(recent.checksumAt("b.db", txid), undefined);
  });
});
