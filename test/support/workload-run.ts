// Running a generated workload through a client and checking what SQLite returns afterwards.
import { runSqlJob, type SqlClientName, type SqlRow } from "./sql-clients.js";
import type { Workload } from "./workload.js";

/** Runs every script of `workload` on one connection of `client` (its per-connection pragmas first). */
export async function runWorkload(client: SqlClientName, dbPath: string, workload: Workload): Promise<void> {
  await runSqlJob(client, { dbPath, pragmas: workload.pragmas, scripts: workload.scripts });
}

export interface CheckMismatch {
  check: string;
  expected: SqlRow[];
  actual: SqlRow[];
}

/**
 * Runs the workload's checks through `client` and returns the ones whose rows differ from the model
 * (empty when everything matches). Rows are compared as values, column order ignored.
 */
export async function checkWorkload(
  client: SqlClientName,
  dbPath: string,
  workload: Workload,
): Promise<CheckMismatch[]> {
  const { results } = await runSqlJob(client, {
    dbPath,
    pragmas: workload.pragmas.filter((pragma) => !/page_size/i.test(pragma)),
    queries: workload.checks.map((check) => check.sql),
  });
  const mismatches: CheckMismatch[] = [];
  workload.checks.forEach((check, i) => {
    if (!sameRows(check.expected, results[i]))
      mismatches.push({ check: check.name, expected: check.expected, actual: results[i] });
  });
  return mismatches;
}

/** A short description of mismatches for an assertion message (row counts and the first differing row). */
export function describeMismatches(mismatches: readonly CheckMismatch[]): string {
  return mismatches
    .map((m) => {
      const i = m.expected.findIndex(
        (row, k) => !sameRows([row], m.actual[k] === undefined ? [] : [m.actual[k]]),
      );
      const at = i < 0 ? m.expected.length : i;
      return (
        `${m.check}: expected ${m.expected.length} rows, got ${m.actual.length}; first difference at row ${at}: ` +
        `expected ${JSON.stringify(m.expected[at])} got ${JSON.stringify(m.actual[at])}`
      );
    })
    .join("\n");
}

function sameRows(expected: readonly SqlRow[], actual: readonly SqlRow[]): boolean {
  if (expected.length !== actual.length) return false;
  return expected.every((row, i) => sameRow(row, actual[i]));
}

function sameRow(expected: SqlRow, actual: SqlRow): boolean {
  const keys = Object.keys(expected);
  if (keys.length !== Object.keys(actual).length) return false;
  return keys.every((key) => key in actual && actual[key] === expected[key]);
}
