// The passthrough file system's node table: which underlying file each FUSE node id stands for, and
// how many lookup references the kernel holds on it.
//
// - A node is identified by the underlying (st_dev, st_ino): two names of one file are one node, and
//   a file looked up again after the kernel forgot it gets a fresh node id. Node ids are never reused
//   (a counter), so every generation is 0.
// - `lookups` counts the Entry replies the kernel received for the node (LOOKUP, CREATE, MKNOD,
//   MKDIR, accepted READDIRPLUS entries) minus what FORGET returned. At 0 the node is dropped. The
//   root (node 1) is never dropped.
// - Each node remembers the path it was last reached by. Renames through the mount move that path (and
//   the paths of everything below a renamed directory); a node whose name was unlinked or replaced
//   keeps serving requests through its open file handles, while path-based requests on it fail with
//   ENOENT — and its (dev, ino) no longer maps to it, so a new file that reuses the inode number gets a
//   node of its own.

import type * as fs from "node:fs";
import { FUSE_ROOT_ID, FuseError } from "../src/fuse/index.js";

export interface PassthroughNode {
  readonly nodeId: number;
  readonly key: string;
  /** Absolute path in the underlying directory; null once unlinked. */
  path: string | null;
  lookups: number;
  /** Open file descriptors (file handles) of this node: how an unlinked node is still reached. */
  readonly handles: Set<number>;
}

function keyOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

export class InodeTable {
  readonly #byId = new Map<number, PassthroughNode>();
  readonly #byKey = new Map<string, PassthroughNode>();
  #nextId = FUSE_ROOT_ID + 1;

  constructor(rootPath: string, rootStat: fs.Stats) {
    const root: PassthroughNode = {
      nodeId: FUSE_ROOT_ID,
      key: keyOf(rootStat),
      path: rootPath,
      lookups: 1,
      handles: new Set(),
    };
    this.#byId.set(root.nodeId, root);
    this.#byKey.set(root.key, root);
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The node, or ESTALE when the kernel names a node this table never gave out or already dropped. */
  get(nodeId: number): PassthroughNode {
    const n = this.#byId.get(nodeId);
    if (n === undefined) throw new FuseError("ESTALE", `unknown node ${nodeId}`);
    return n;
  }

  /** The node's current path, or ENOENT when its name was removed. */
  pathOf(nodeId: number): string {
    const p = this.get(nodeId).path;
    if (p === null) throw new FuseError("ENOENT", `node ${nodeId} was unlinked`);
    return p;
  }

  /**
   * How to reach the node: its path, or once unlinked one of its open descriptors (fstat of an open,
   * unlinked file arrives as a GETATTR without a file handle). ENOENT when neither is left.
   */
  locate(nodeId: number): { path: string } | { fd: number } {
    const n = this.get(nodeId);
    if (n.path !== null) return { path: n.path };
    for (const fd of n.handles) return { fd };
    throw new FuseError("ENOENT", `node ${nodeId} was unlinked and has no open handle`);
  }

  /** The node of the file at `path` (stat `st`), created if new; takes one lookup reference. */
  reference(path: string, st: fs.Stats): PassthroughNode {
    const key = keyOf(st);
    let n = this.#byKey.get(key);
    if (n === undefined) {
      n = { nodeId: this.#nextId++, key, path, lookups: 0, handles: new Set() };
      this.#byId.set(n.nodeId, n);
      this.#byKey.set(key, n);
    }
    n.path = path;
    n.lookups++;
    return n;
  }

  /** The node currently mapped to the file `st`, without taking a reference. */
  find(st: fs.Stats): PassthroughNode | undefined {
    return this.#byKey.get(keyOf(st));
  }

  /** FORGET: the kernel dropped `count` references. */
  forget(nodeId: number, count: number): void {
    const n = this.#byId.get(nodeId);
    if (n === undefined || n.nodeId === FUSE_ROOT_ID) return;
    if (count > n.lookups)
      throw new Error(`FORGET of ${count} on node ${nodeId} holding ${n.lookups} lookups`);
    n.lookups -= count;
    if (n.lookups > 0) return;
    this.#byId.delete(nodeId);
    if (this.#byKey.get(n.key) === n) this.#byKey.delete(n.key);
  }

  /** The name of file `st` was removed; if it was its last name, detach the node from path and key. */
  unlinked(st: fs.Stats): void {
    const n = this.#byKey.get(keyOf(st));
    if (n === undefined || n.nodeId === FUSE_ROOT_ID) return;
    if (st.isDirectory() || st.nlink <= 1) {
      n.path = null;
      this.#byKey.delete(n.key);
    }
  }

  /** A rename moved `from` to `to`: the moved node and every node below it follow. */
  renamed(from: string, to: string): void {
    const prefix = from + "/";
    for (const n of this.#byId.values()) {
      if (n.path === from) n.path = to;
      else if (n.path !== null && n.path.startsWith(prefix)) n.path = to + n.path.slice(from.length);
    }
  }
}
