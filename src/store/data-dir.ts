// The data directory's layout (as LiteFS lays it out, plus our `checksums` file):
//
//   <data>/clusterid                       cluster id (cluster-id.ts)
//   <data>/quarantine/<name>/<when>/       a replica's diverged transactions, kept (quarantine.ts)
//   <data>/dbs/<name>/database             the database file SQLite sees through the mount
//   <data>/dbs/<name>/journal|wal|shm      its rollback journal, WAL and wal-index, while they exist
//   <data>/dbs/<name>/ltx/%016x-%016x.ltx  one LTX file per committed transaction (subject to retention)
//   <data>/dbs/<name>/checksums            page checksums + position, for a restart without rereading
//
// Only paths here: no I/O except creating directories.

import fs from "node:fs";
import path from "node:path";

import { formatFileName } from "../ltx/file-name.js";

/** The files of one database that SQLite opens (through the mount) and the store keeps. */
export type DatabaseFileKind = "database" | "journal" | "wal" | "shm";
export const DATABASE_FILE_KINDS: readonly DatabaseFileKind[] = ["database", "journal", "wal", "shm"];

export class DataDir {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get dbsDir(): string {
    return path.join(this.root, "dbs");
  }

  /** Where a replica keeps the transactions of a diverged history (quarantine.ts). */
  get quarantineDir(): string {
    return path.join(this.root, "quarantine");
  }

  get clusterIdFile(): string {
    return path.join(this.root, "clusterid");
  }

  /** Creates `<data>/dbs` if missing. */
  ensure(): void {
    fs.mkdirSync(this.dbsDir, { recursive: true });
  }

  database(name: string): DatabaseDir {
    return new DatabaseDir(path.join(this.dbsDir, name));
  }

  /** Names of the database directories present (unsorted entries filtered to directories). */
  listDatabaseNames(): string[] {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.dbsDir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }
}

export class DatabaseDir {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  get ltxDir(): string {
    return path.join(this.dir, "ltx");
  }

  get checksumsFile(): string {
    return path.join(this.dir, "checksums");
  }

  file(kind: DatabaseFileKind): string {
    return path.join(this.dir, kind);
  }

  ltxFile(minTxid: bigint, maxTxid: bigint): string {
    return path.join(this.ltxDir, formatFileName(minTxid, maxTxid));
  }

  /** Creates the database's directory and its `ltx` directory. */
  ensure(): void {
    fs.mkdirSync(this.ltxDir, { recursive: true });
  }
}
