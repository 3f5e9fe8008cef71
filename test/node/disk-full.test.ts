// Disk full during commits through a real node: the primary's `data.dir` is a small tmpfs
// (test/support/small-disk.ts) that a ballast file fills while the sqlite3 shell commits through the
// mount, in DELETE and in WAL mode. Then:
//   - the transactions that hit the full disk fail (SQLITE_FULL / disk I/O error), those before did not;
//   - no partial LTX file is left (only whole `.ltx` files, and the store's empty spare files);
//   - the database passes integrity_check, every acknowledged row is there, and the LTX chain replayed
//     on an empty file gives the database, whose checksum is the position's;
//   - once the ballast is removed the node recovers by itself — no restart: the next write commits and
//     replicates, and the replica has every acknowledged row.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { Cluster, waitForSync } from "../replication/cluster.js";
import { mountSupport, SmallTmpfs } from "../support/small-disk.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { sqlite } from "./node-kit.js";

const DISK_BYTES = 24 << 20;
const ROWS_BEFORE = 5;
const ROWS_PER_LEVEL = 3;

const support = mountSupport();

describe("a node whose data directory fills up during commits", { skip: !support.supported }, () => {
  let disk: SmallTmpfs;
  let cluster: Cluster;
  let scratch: string;

  before(async () => {
    disk = SmallTmpfs.mount(DISK_BYTES);
    scratch = makeTempDir("disk-full-scratch");
    cluster = await Cluster.start({ replicas: 1, primaryConfig: { data: { dir: disk.dir } } });
  });
  after(async () => {
    await cluster?.cleanup();
    disk?.unmount();
    if (scratch !== undefined) removeTempDir(scratch);
  });

  for (const mode of ["DELETE", "WAL"] as const) {
    test(`${mode}: commits fail cleanly while full, nothing acknowledged is lost, the node recovers`, async () => {
      const { primary } = cluster;
      const replica = cluster.replicas[0];
      const db = `${mode.toLowerCase()}.db`;
      const dbPath = primary.dbPath(db);
      const ltxDir = path.join(disk.dir, "dbs", db, "ltx");
      await sqlite(dbPath, `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);`);
      const acked: number[] = [];
      for (let id = 1; id <= ROWS_BEFORE; id++) {
        await sqlite(dbPath, `INSERT INTO t VALUES (${id}, randomblob(3000));`);
        acked.push(id);
      }
      await waitForSync(primary, [replica], [db]);

      // The disk full to the last byte, then full but for a little room (4 KiB … 160 KiB), so that the
      // commits fail at different points: the journal or WAL write, the database file growing, the
      // transaction's LTX file.
      const failures: string[] = [];
      let id = ROWS_BEFORE;
      for (const leave of [0, 4096, 12_288, 24_576, 40_960, 65_536, 102_400, 163_840]) {
        disk.releaseBallast();
        disk.fillUp(leave);
        for (let i = 0; i < ROWS_PER_LEVEL; i++) {
          id++;
          try {
            await sqlite(dbPath, `INSERT INTO t VALUES (${id}, randomblob(20000));`);
            acked.push(id);
          } catch (err) {
            failures.push((err as Error).message.split("\n")[0]);
          }
        }
        // While full: never a partial LTX file.
        const leftovers = fs
          .readdirSync(ltxDir)
          .filter((name) => !/^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/.test(name))
          .filter((name) => !(name.startsWith("spare-") && fs.statSync(path.join(ltxDir, name)).size === 0));
        assert.deepEqual(leftovers, [], `partial LTX files left behind (${leave} bytes free)`);
      }
      assert.ok(failures.length > 0, `no commit failed on a full disk (acked ${acked.join(",")})`);
      for (const failure of failures) {
        assert.match(failure, /full|disk I\/O error|I\/O error/i, failure);
      }
      const full = failures.filter((f) => /full/.test(f)).length;
      console.log(
        `${mode}: ${failures.length} of ${id - ROWS_BEFORE} commits failed on the full disk ` +
          `(${full} SQLITE_FULL, ${failures.length - full} SQLITE_IOERR), ${acked.length - ROWS_BEFORE} succeeded`,
      );

      // Space returns. The state the failures left (before any new write): a sound database with
      // every acknowledged row, whose LTX chain is whole.
      disk.releaseBallast();
      const ids = async (file: string): Promise<number[]> =>
        (await sqlite(file, "SELECT id FROM t ORDER BY id;")).trim().split("\n").filter(Boolean).map(Number);
      assert.equal((await sqlite(dbPath, "PRAGMA integrity_check;")).trim(), "ok");
      const present = await ids(dbPath);
      for (const row of acked) assert.ok(present.includes(row), `acknowledged row ${row} lost`);
      if (mode === "WAL") await sqlite(dbPath, "PRAGMA wal_checkpoint(TRUNCATE);");
      await verifyLtxChainMatchesDatabase({
        dbFile: dbPath,
        posFile: primary.posPath(db),
        ltxDir,
        scratchDir: scratch,
      });

      // The node recovers by itself: the next write commits and replicates.
      const next = id + 1;
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await sqlite(dbPath, `INSERT INTO t VALUES (${next}, randomblob(100));`);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`no write works after the disk emptied: ${String(err)}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      acked.push(next);
      await waitForSync(primary, [replica], [db]);
      const onReplica = await ids(replica.dbPath(db));
      for (const row of acked)
        assert.ok(onReplica.includes(row), `acknowledged row ${row} missing on the replica`);
      assert.deepEqual(onReplica, await ids(dbPath), "the replica's rows differ from the primary's");

      if (mode === "WAL") await sqlite(dbPath, "PRAGMA wal_checkpoint(TRUNCATE);");
      await verifyLtxChainMatchesDatabase({
        dbFile: dbPath,
        posFile: primary.posPath(db),
        ltxDir,
        scratchDir: scratch,
      });
    });
  }
});
