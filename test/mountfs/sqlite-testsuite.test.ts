// SQLite's own TCL tests through the mount: scripts/sqlite-testsuite.sh runs a reduced list of test
// files with the working directory on a fresh mounted primary and, at the same time, on a plain
// directory; every file must give the same number of errors out of the same number of tests on both.
// (bench/ and people run the long list with --full; differences there are explained in the notes.)
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { runCommand } from "../support/litefs-cli.js";
import { REPO_ROOT } from "../support/paths.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

/**
 * Fast files (~30 s in all) covering reads, writes, VACUUM, autovacuum, WAL hooks and checkpoints,
 * shared cache, locking and busy handling, schema changes and big rows — the script's default list.
 * Files such as trans, journal1, lock2 or pager1 are not here because no LiteFS mount can pass them
 * (they write Tcl helper scripts or raw file copies into the working directory, use subdirectories or
 * locking_mode=EXCLUSIVE); scripts/sqlite-testsuite.sh --full runs them and says why each differs.
 */
const REDUCED_LIST = [
  "select1",
  "insert",
  "delete",
  "update",
  "vacuum",
  "vacuum2",
  "autovacuum",
  "walhook",
  "wal7",
  "wal9",
  "walpersist",
  "walshared",
  "pager3",
  "lock7",
  "busy",
  "shared",
  "schema",
  "alter",
  "sync2",
  "bigrow",
];

test("SQLite's TCL test files give the same results on the mount as on a plain directory", async (t) => {
  const logs = makeTempDir("sqlite-testsuite-logs");
  t.after(() => removeTempDir(logs));
  const result = await runCommand(
    "bash",
    [
      path.join(REPO_ROOT, "scripts", "sqlite-testsuite.sh"),
      "--tsv",
      "--fs",
      "litefs",
      "--timeout",
      "240",
      "--logs",
      logs,
      ...REDUCED_LIST,
    ],
    { timeoutMs: 600_000 },
  );
  const output = result.stdout + result.stderr;
  const rows = result.stdout
    .split("\n")
    .filter((line) => line.startsWith("RESULT\t"))
    .map((line) => {
      const [, file, plainErrors, plainTests, plainStatus, fsErrors, fsTests, fsStatus] = line.split("\t");
      return {
        file,
        plain: `${plainStatus} ${plainErrors}/${plainTests}`,
        mount: `${fsStatus} ${fsErrors}/${fsTests}`,
      };
    });
  assert.deepEqual(
    rows.map((row) => row.file),
    REDUCED_LIST,
    `the script did not report every file (exit ${result.code})\n${output}`,
  );
  for (const row of rows) {
    assert.ok(
      !row.plain.startsWith("aborted") && !row.plain.startsWith("timeout"),
      `${row.file} fails on a plain dir`,
    );
  }
  assert.deepEqual(
    rows.map((row) => `${row.file}: ${row.mount}`),
    rows.map((row) => `${row.file}: ${row.plain}`),
    `per-file results differ between the mount and a plain directory\n${output}`,
  );
  assert.equal(result.code, 0, output);
});
