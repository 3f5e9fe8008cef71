// File attributes the mount reports: backing files' real size and times with the mount's mode (0666 on
// a primary, 0444 on a replica), and fixed attributes for the virtual files (`-pos`, `-lock`, `.lag`,
// `.primary`, the root).

import type fs from "node:fs";

import type { FileAttributes } from "../fuse/file-system.js";
import { LAG_NODE_ID, type MountFileKind, PRIMARY_NODE_ID, ROOT_NODE_ID } from "./node-table.js";
import type { NodeRole } from "./replica-access.js";

export const FILE_MODE = 0o100666;
export const READ_ONLY_MODE = 0o100444;
export const ROOT_MODE = 0o040777;
export const SYMLINK_MODE = 0o120777;
/** `%016x/%016x\n`. */
export const POS_SIZE = 34;

/** The mode a database file of `kind` shows on a node of `role`. */
export function modeOf(kind: MountFileKind, role: NodeRole = "primary"): number {
  return kind === "pos" || (role === "replica" && kind !== "lock") ? READ_ONLY_MODE : FILE_MODE;
}

/** `.lag`'s content: milliseconds behind the primary as `%+010d\n`. */
export function formatLag(lagMs: number): string {
  const lag = Math.round(lagMs);
  return `${lag < 0 ? "-" : "+"}${String(Math.abs(lag)).padStart(9, "0")}\n`;
}

export class MountAttributes {
  readonly #startMs = Date.now();
  readonly #uid = process.getuid?.() ?? 0;
  readonly #gid = process.getgid?.() ?? 0;

  root(): FileAttributes {
    return this.#virtual(ROOT_NODE_ID, ROOT_MODE, 0, 2);
  }

  lag(text: string): FileAttributes {
    return this.#virtual(LAG_NODE_ID, READ_ONLY_MODE, text.length, 1);
  }

  primary(text: string): FileAttributes {
    return this.#virtual(PRIMARY_NODE_ID, READ_ONLY_MODE, Buffer.byteLength(text), 1);
  }

  /** `-pos` (34 bytes, read-only) or `-lock` (empty). */
  virtualFile(ino: number, kind: "pos" | "lock"): FileAttributes {
    return kind === "pos"
      ? this.#virtual(ino, READ_ONLY_MODE, POS_SIZE, 1)
      : this.#virtual(ino, FILE_MODE, 0, 1);
  }

  /** A symbolic link whose target is `targetBytes` long (`<db>-lock` in kernel-locks mode). */
  symlink(ino: number, targetBytes: number): FileAttributes {
    return this.#virtual(ino, SYMLINK_MODE, targetBytes, 1);
  }

  /** A backing file's attributes (`st` undefined: the file is gone — an empty file). */
  backed(ino: number, st: fs.Stats | undefined, mode = FILE_MODE): FileAttributes {
    if (st === undefined) return this.#virtual(ino, mode, 0, 1);
    return {
      ino,
      size: st.size,
      blocks: st.blocks,
      atimeMs: st.atimeMs,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      mode,
      nlink: 1,
      uid: this.#uid,
      gid: this.#gid,
      rdev: 0,
      blksize: 4096,
    };
  }

  #virtual(ino: number, mode: number, size: number, nlink: number): FileAttributes {
    const t = this.#startMs;
    return {
      ino,
      size,
      blocks: Math.ceil(size / 512),
      atimeMs: t,
      mtimeMs: t,
      ctimeMs: t,
      mode,
      nlink,
      uid: this.#uid,
      gid: this.#gid,
      rdev: 0,
      blksize: 4096,
    };
  }
}
