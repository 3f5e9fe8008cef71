// Which names can be databases. The mount is flat: a database `X` shows beside its companions
// `X-journal`, `X-wal`, `X-shm`, `X-pos` and `X-lock`, and names starting with '.' are the mount's own
// (`.primary`, `.lag`). A database name therefore must not end in a companion suffix or start with '.',
// and every companion name must still fit in NAME_MAX.

import { StoreError } from "./store-error.js";

/** Companion suffixes, longest first so that `companionOf` matches "-journal" before anything shorter. */
export const COMPANION_SUFFIXES = ["-journal", "-wal", "-shm", "-pos", "-lock"] as const;
export type CompanionSuffix = (typeof COMPANION_SUFFIXES)[number];

/** Longest name a file system entry may have (Linux NAME_MAX). */
const NAME_MAX = 255;
const LONGEST_SUFFIX = 8; // "-journal"

/** Why `name` cannot be a database, or null if it can. */
export function databaseNameProblem(name: string): string | null {
  if (name.length === 0) return "empty name";
  if (name.length > NAME_MAX - LONGEST_SUFFIX) return `longer than ${NAME_MAX - LONGEST_SUFFIX} bytes`;
  if (Buffer.byteLength(name) > NAME_MAX - LONGEST_SUFFIX)
    return `longer than ${NAME_MAX - LONGEST_SUFFIX} bytes`;
  if (name.includes("/") || name.includes("\0")) return "contains '/' or NUL";
  if (name.startsWith(".")) return "starts with '.' (reserved for the mount's own files)";
  for (const suffix of COMPANION_SUFFIXES) {
    if (name.endsWith(suffix))
      return `ends in "${suffix}" (reserved for SQLite's and LiteFS's companion files)`;
  }
  return null;
}

export function isDatabaseName(name: string): boolean {
  return databaseNameProblem(name) === null;
}

/** Throws EDBNAME when `name` cannot be a database. */
export function assertDatabaseName(name: string): void {
  const problem = databaseNameProblem(name);
  if (problem !== null) throw new StoreError("EDBNAME", `invalid database name: ${problem}`, { db: name });
}

/** Splits `X-wal` into `{db: "X", suffix: "-wal"}`; null when `name` has no companion suffix. */
export function companionOf(name: string): { db: string; suffix: CompanionSuffix } | null {
  for (const suffix of COMPANION_SUFFIXES) {
    if (name.length > suffix.length && name.endsWith(suffix)) {
      return { db: name.slice(0, -suffix.length), suffix };
    }
  }
  return null;
}
