// `litefs ltx …` as users run it: bin/litefs, exit codes, and output formats.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { litefs } from "./cli-run.js";
import { readVector, tempDir, VECTOR_NAMES, vectorPath, vectorsDir } from "./ltx-fixtures.js";

test("verify: ok for the vector directory; names each bad file and counts", (t) => {
  const good = litefs("ltx", "verify", vectorsDir);
  assert.deepEqual([good.status, good.stdout, good.stderr], [0, "ok\n", ""]);
  const canonical = litefs("ltx", "verify", "--canonical", vectorsDir);
  assert.deepEqual([canonical.status, canonical.stdout], [0, "ok\n"]);

  const dir = tempDir(t);
  const bad = path.join(dir, "0000000000000002-0000000000000002.ltx");
  const bytes = readVector(VECTOR_NAMES[1]);
  bytes[bytes.length - 1] ^= 1;
  fs.writeFileSync(bad, bytes);
  fs.copyFileSync(vectorPath(VECTOR_NAMES[0]), path.join(dir, VECTOR_NAMES[0]));
  fs.writeFileSync(path.join(dir, "short.ltx"), bytes.subarray(0, 40));
  const result = litefs("ltx", "verify", dir, path.join(dir, "missing.ltx"));
  assert.equal(result.status, 1);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 4, result.stdout);
  assert.match(
    lines[0],
    /^.*0000000000000002-0000000000000002\.ltx: offset 198: file checksum is .* \[rule: file checksum\] \(ELTXCHECKSUM\)$/,
  );
  assert.match(lines[1], /short\.ltx: offset 40: .*\(ELTXTRUNCATED\)$/);
  assert.match(lines[2], /missing\.ltx: .*ENOENT/);
  assert.equal(lines[3], "1 ok, 3 invalid");
});

test("list: a row per file, as a table or TSV", () => {
  const tsv = litefs("ltx", "list", "--tsv", vectorPath(VECTOR_NAMES[1]), vectorPath(VECTOR_NAMES[6]));
  assert.equal(tsv.status, 0, tsv.stderr);
  const [head, row, lz4] = tsv.stdout
    .trimEnd()
    .split("\n")
    .map((l) => l.split("\t"));
  assert.deepEqual(head, [
    "file",
    "format",
    "min_txid",
    "max_txid",
    "commit",
    "pages",
    "pre_apply",
    "post_apply",
    "timestamp",
    "wal_offset",
    "wal_size",
    "wal_salt1",
    "wal_salt2",
  ]);
  assert.deepEqual(row.slice(1), [
    "v3", "0000000000000002", "0000000000000002", "3", "2", "a17215b615a8a47b", "d3e43abaed51b58a",
    "2023-11-14T22:13:21.234Z", "32", "1056", "01020304", "05060708",
  ]); // prettier-ignore
  assert.equal(lz4[1], "v1-lz4");
  const table = litefs("ltx", "list", vectorsDir);
  assert.equal(table.status, 0);
  assert.equal(table.stdout.trim().split("\n").length, 1 + VECTOR_NAMES.length);
  assert.match(table.stdout, /^FILE +FORMAT +MIN_TXID/);
});

test("dump: header, folded hexdump per page, trailer", () => {
  const result = litefs("ltx", "dump", vectorPath(VECTOR_NAMES[1]));
  assert.equal(result.status, 0, result.stderr);
  const out = result.stdout;
  assert.match(out, /format: v3\n/);
  assert.match(out, /node ID: +1122334455667788\n/);
  assert.match(
    out,
    /page 2 \(frame at offset 100\):\n {2}00000000 {2}ab ab ab ab ab ab ab ab {2}ab ab ab ab ab ab ab ab {2}\|\.{16}\|\n {2}\*\n {2}000001f0 /,
  );
  assert.match(out, /post-apply checksum: d3e43abaed51b58a\n/);
  assert.match(out, /2 pages, 206 bytes, verified\n$/);
});

test("checksum and apply: positions, refusals, usage", (t) => {
  const dir = tempDir(t);
  const db = path.join(dir, "db");
  const step = (name: string): string => {
    const r = litefs("ltx", "apply", "--db", db, vectorPath(name));
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  assert.equal(step(VECTOR_NAMES[0]), "0000000000000001/a17215b615a8a47b");
  assert.equal(litefs("ltx", "checksum", db).stdout, "a17215b615a8a47b\n");
  const refused = litefs("ltx", "apply", "--db", db, vectorPath(VECTOR_NAMES[2]));
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    /0000000000000003-0000000000000003\.ltx: pre-apply checksum d3e43abaed51b58a, the database's checksum is a17215b615a8a47b .*\(ELTXAPPLY\)/,
  );
  assert.equal(litefs("ltx", "checksum", db).stdout, "a17215b615a8a47b\n");

  const notDb = path.join(dir, "not-a-db");
  fs.writeFileSync(notDb, Buffer.alloc(1000, 1));
  const bad = litefs("ltx", "checksum", notDb);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not-a-db: /);

  assert.equal(litefs("ltx", "apply", vectorPath(VECTOR_NAMES[0])).status, 2);
  assert.equal(litefs("ltx", "encode-db", "-o", path.join(dir, "x.ltx"), db, "--format", "v2").status, 2);
  assert.equal(litefs("ltx", "nope").status, 2);
  assert.equal(litefs("ltx", "verify", "--bogus", "x").status, 2);
});

test("every subcommand has --help", () => {
  for (const name of ["verify", "list", "dump", "checksum", "apply", "encode-db"]) {
    const r = litefs("ltx", name, "--help");
    assert.equal(r.status, 0, name);
    assert.match(r.stdout, new RegExp(`^litefs ltx ${name} `), name);
  }
  const top = litefs("ltx", "--help");
  assert.equal(top.status, 0);
  assert.match(top.stdout, /encode-db -o OUT DB/);
});
