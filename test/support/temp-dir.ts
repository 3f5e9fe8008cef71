// Unique temporary directories for tests, and their removal — never through a live mount.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountPointsUnder, unmountSync } from "./mounts.js";

/** Creates a fresh directory `<tmpdir>/litefs-<label>-XXXXXX` and returns its path. */
export function makeTempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `litefs-${label}-`));
}

/**
 * Removes `dir` recursively. Any mount still under it is unmounted first (lazily if busy); if one cannot
 * be unmounted the removal is refused with an error, because deleting through a mount would reach into
 * the file system behind it.
 */
export function removeTempDir(dir: string): void {
  for (const mountPoint of mountPointsUnder(dir)) unmountSync(mountPoint);
  const left = mountPointsUnder(dir);
  if (left.length > 0) {
    throw new Error(`removeTempDir: ${dir} still has mounts under it (${left.join(", ")}); not removing`);
  }
  // A file can appear while the tree is removed (an in-process store closed just before may still have a
  // spare LTX file being created on the thread pool): each retry lists the tree again.
  for (let attempt = 1; ; attempt++) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOTEMPTY" || attempt === 5) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20 * attempt);
    }
  }
}
