// Replication with `data.compress: false`: the primary writes and streams v1 LTX files. A v1 page
// that starts `00 01` reads like a v3 frame (its page flags), and until session 19 the replica's stream
// parser guessed v3 and refused the file (ELTXFRAME): replication stopped at the first transaction whose
// lowest page started so — an overflow or freelist page pointing at a page in 65536..131071, in any
// database past 32 MiB of 512-byte pages (256 MiB of 4 KiB ones). Here: a WAL database of 512-byte
// pages holding one blob over ~70,000 overflow pages; a blob write into the overflow page whose next
// page is 65536 (`00 01 00 00`) is a transaction of that page alone.
//
// Then the one layout detection cannot settle (README, Known problems): blob bytes written so that
// the same page is also a whole v3 frame — `00 01` flags, size 23, an LZ4 block giving exactly 512
// bytes, then the six-byte terminator. The replica reads it as v3 and refuses it; since session 20
// it asks for a snapshot after the second refusal and converges (before: refused forever).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { decodeHeader, detectFormat, readLtxFile } from "../../src/ltx/index.js";
import { assertSameDatabase, Cluster, logRecords, waitForRecords, waitForSync } from "./cluster.js";

const DB = "wide.db";

/** Writes the blob, finds the overflow page pointing at page 65536, rewrites 4 bytes in it. */
const PYTHON = `
import json, os, sqlite3, sys
path = sys.argv[1]
con = sqlite3.connect(path, isolation_level=None)
con.execute("PRAGMA page_size = 512")
con.execute("PRAGMA journal_mode = wal")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
blob = os.urandom(70000 * 508)
con.execute("INSERT INTO t VALUES (1, ?)", (blob,))
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
with open(path, "rb") as f:
    data = f.read()
pages = [i for i in range(0, len(data), 512) if data[i:i + 4] == b"\\x00\\x01\\x00\\x00"]
assert len(pages) == 1, pages
offset = blob.find(data[pages[0] + 4:pages[0] + 512])
assert offset >= 0
b = con.blobopen("t", "v", 1)
b.seek(offset + 100)
b.write(b"\\xff\\xfe\\xfd\\xfc")
b.close()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
print(json.dumps({"pgno": pages[0] // 512 + 1, "offset": offset}))
`;

/**
 * Writes, from the start of that page's blob bytes (argv[2]), what makes the page a whole v3 frame
 * too: the v3 reading sees flags 00 01 and size 00 00 00 17 across the page's next-page number
 * (00 01 00 00) and these first two bytes, then the block: 12 literals, a match of 495 bytes at
 * offset 12, 5 final literals (512 bytes), then a terminator.
 */
const PYTHON_V3_FRAME = `
import sqlite3, sys
path, offset = sys.argv[1], int(sys.argv[2])
block = bytes([0xCF]) + b"LiteFS-v3?!!" + bytes([12, 0, 255, 221, 0x50]) + b"abcde"
assert len(block) == 23
con = sqlite3.connect(path, isolation_level=None)
b = con.blobopen("t", "v", 1)
b.seek(offset)
b.write(bytes([0, len(block)]) + block + bytes(6))
b.close()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
`;

/** The newest LTX file of `db` on `node`'s data directory. */
function newestLtx(dir: string): string {
  const newest = fs
    .readdirSync(dir)
    .filter((name) => /^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/.test(name))
    .sort()
    .at(-1)!;
  return path.join(dir, newest);
}

test(
  "uncompressed (v1) replication of a transaction whose only page starts 00 01",
  { timeout: 180_000 },
  async (t) => {
    const cluster = await Cluster.start({
      replicas: 1,
      primaryConfig: { data: { compress: false } },
      replicaConfig: { data: { compress: false } },
    });
    t.after(() => cluster.cleanup());
    const { primary } = cluster;
    const [replica] = cluster.replicas;

    const run = spawnSync("python3", ["-c", PYTHON, primary.dbPath(DB)], {
      encoding: "utf8",
      timeout: 150_000,
    });
    assert.equal(run.status, 0, `${run.stderr}\n${cluster.logs()}`);
    const { pgno } = JSON.parse(run.stdout) as { pgno: number; offset: number };
    assert.equal(pgno, 65535, "the overflow chain runs from page 3 in order");

    // The blob write's transaction is a v1 file of page 65535 alone, which starts 00 01.
    const ltxDir = path.join(primary.storeDir(DB), "ltx");
    const ltx = await readLtxFile(newestLtx(ltxDir), { format: "v1" });
    assert.deepEqual(
      [ltx.format, ltx.pages.map((p) => p.pgno), [...ltx.pages[0].data.subarray(0, 4)]],
      ["v1", [65535], [0, 1, 0, 0]],
    );

    await waitForSync(primary, [replica], [DB], 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    assertSameDatabase(primary, replica, DB, "after the blob write");
    const snapshotsBefore = logRecords(replica, "snapshot applied").length;

    // The page that is a whole v3 frame as well.
    const { offset } = JSON.parse(run.stdout) as { offset: number };
    const craft = spawnSync("python3", ["-c", PYTHON_V3_FRAME, primary.dbPath(DB), String(offset)], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(craft.status, 0, `${craft.stderr}\n${cluster.logs()}`);
    const file = newestLtx(ltxDir);
    const bytes = fs.readFileSync(file);
    const both = await readLtxFile(file, { format: "v1" });
    assert.deepEqual(
      [both.pages.map((p) => p.pgno), [...both.pages[0].data.subarray(0, 6)]],
      [[65535], [0, 1, 0, 0, 0, 23]],
    );
    assert.deepEqual(
      detectFormat(decodeHeader(bytes.subarray(0, 100)), bytes, true),
      { format: "v3", certain: false },
      "the file still reads both ways (if detection settles it now, this phase tests nothing)",
    );
    await waitForSync(primary, [replica], [DB], 90_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const [asked] = await waitForRecords(
      replica,
      "the primary's LTX file was refused again: asking for a snapshot of the database instead",
      1,
    );
    assert.equal(asked.refusals, 2);
    const snapshots = await waitForRecords(replica, "snapshot applied", snapshotsBefore + 1);
    assert.equal(snapshots.at(-1)!.reason, "files-unavailable");
    assertSameDatabase(primary, replica, DB, "after the page that is a v3 frame too");
  },
);
