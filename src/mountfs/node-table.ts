// Node ids of the mount's files. The root is flat: every file is `<db><suffix>` or one of the mount's
// own dot files. A node id stands for one incarnation of (database name, file kind): when a file is
// created or removed through the mount its name gets a fresh id, so that the kernel never mixes the
// cached pages or attributes of a deleted journal with those of the next one. Ids are never reused
// (generation is always 0); an old id keeps pointing at its (database, kind).

import { companionOf, isDatabaseName } from "../store/database-name.js";

/** A file of a database as the mount shows it. */
export type MountFileKind = "database" | "journal" | "wal" | "shm" | "pos" | "lock";

export const SUFFIX_OF_KIND: Readonly<Record<MountFileKind, string>> = {
  database: "",
  journal: "-journal",
  wal: "-wal",
  shm: "-shm",
  pos: "-pos",
  lock: "-lock",
};

const KIND_OF_SUFFIX: Readonly<Record<string, MountFileKind>> = {
  "-journal": "journal",
  "-wal": "wal",
  "-shm": "shm",
  "-pos": "pos",
  "-lock": "lock",
};

export const ROOT_NODE_ID = 1;
export const LAG_NODE_ID = 2;
export const LAG_FILE_NAME = ".lag";
/** `.primary`: on a replica, the primary's hostname and a newline. */
export const PRIMARY_NODE_ID = 3;
export const PRIMARY_FILE_NAME = ".primary";
const FIRST_DYNAMIC_ID = 16;

export interface DatabaseNode {
  readonly nodeId: number;
  readonly db: string;
  readonly kind: MountFileKind;
}

/** What a name at the root refers to, before asking whether it exists. */
export type ParsedName =
  | { readonly type: "lag" }
  | { readonly type: "primary" }
  | { readonly type: "file"; readonly db: string; readonly kind: MountFileKind }
  | { readonly type: "invalid" };

export function parseMountName(name: string): ParsedName {
  if (name === LAG_FILE_NAME) return { type: "lag" };
  if (name === PRIMARY_FILE_NAME) return { type: "primary" };
  const companion = companionOf(name);
  if (companion !== null && isDatabaseName(companion.db)) {
    return { type: "file", db: companion.db, kind: KIND_OF_SUFFIX[companion.suffix] };
  }
  if (isDatabaseName(name)) return { type: "file", db: name, kind: "database" };
  return { type: "invalid" };
}

export class NodeTable {
  #next = FIRST_DYNAMIC_ID;
  readonly #current = new Map<string, DatabaseNode>();
  readonly #byId = new Map<number, DatabaseNode>();
  /** Kernel references per node id: +1 per Entry handed out, −n per FORGET. */
  readonly #lookups = new Map<number, number>();

  /** The current node of (db, kind), allocated on first use. */
  nodeOf(db: string, kind: MountFileKind): DatabaseNode {
    return this.#current.get(key(db, kind)) ?? this.renew(db, kind);
  }

  /** The current node of (db, kind), or undefined when none was handed out yet. */
  current(db: string, kind: MountFileKind): DatabaseNode | undefined {
    return this.#current.get(key(db, kind));
  }

  /** Gives (db, kind) a fresh node id (the file was created or removed) and returns it. */
  renew(db: string, kind: MountFileKind): DatabaseNode {
    const node: DatabaseNode = { nodeId: this.#next++, db, kind };
    this.#current.set(key(db, kind), node);
    this.#byId.set(node.nodeId, node);
    return node;
  }

  /** The node with this id, or undefined (root, .lag, .primary, or unknown). */
  byId(nodeId: number): DatabaseNode | undefined {
    return this.#byId.get(nodeId);
  }

  /** Counts one kernel reference to `nodeId` (an Entry returned by LOOKUP, CREATE or READDIRPLUS). */
  looked(nodeId: number): void {
    this.#lookups.set(nodeId, (this.#lookups.get(nodeId) ?? 0) + 1);
  }

  /** The kernel dropped `count` references; an id that is no longer current and unreferenced is dropped. */
  forget(nodeId: number, count: number): void {
    const left = (this.#lookups.get(nodeId) ?? 0) - count;
    if (left > 0) {
      this.#lookups.set(nodeId, left);
      return;
    }
    this.#lookups.delete(nodeId);
    const node = this.#byId.get(nodeId);
    if (node !== undefined && this.#current.get(key(node.db, node.kind)) !== node) this.#byId.delete(nodeId);
  }
}

function key(db: string, kind: MountFileKind): string {
  return `${kind}\0${db}`;
}
