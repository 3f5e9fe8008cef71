// Small real file systems that run out of space, for disk-full tests without any fault injection:
// the kernel answers ENOSPC itself, at whichever write crosses the limit.
//
//   SmallTmpfs  a tmpfs of a given size (page-granular). resize() grows or shrinks it in place
//               (mount -o remount), so "space returns" needs no unmount.
//   LoopDisk    an ext4 file system in an image file, mounted through a loop device: a real block
//               file system (journal, block allocation, fsync) rather than memory.
//
// Both can be filled to a chosen level with a ballast file and emptied again. Both need root. Their
// mounts are registered with the test process's exit hook, and unmount() is idempotent; a loop
// device mounted with `-o loop` detaches itself on unmount (autoclear).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { isMounted, unmountSync } from "./mounts.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";
import { forgetMountOnExit, unmountOnExit } from "./tracked-process.js";

const BALLAST_NAME = ".ballast";
const PAGE_BYTES = 4096;

/** Free bytes an unprivileged writer could still use in the file system holding `dir`. */
export function availableBytes(dir: string): number {
  const stats = fs.statfsSync(dir);
  return stats.bavail * stats.bsize;
}

/** Whether mounting works here (root, and `mount` present); the reason when not. */
export function mountSupport(): { supported: true } | { supported: false; reason: string } {
  if (process.getuid?.() !== 0) return { supported: false, reason: "mounting needs root" };
  try {
    execFileSync("mount", ["--version"], { stdio: "ignore" });
  } catch {
    return { supported: false, reason: "mount is not installed" };
  }
  return { supported: true };
}

/** A file system mounted on a fresh temporary directory; the base of both kinds. */
abstract class SmallDisk {
  /** The mount point: the directory to use as a data dir. */
  readonly dir: string;
  readonly #holder: string;
  #mounted = true;

  protected constructor(holder: string, dir: string) {
    this.#holder = holder;
    this.dir = dir;
  }

  get mounted(): boolean {
    return this.#mounted;
  }

  availableBytes(): number {
    return availableBytes(this.dir);
  }

  /**
   * Writes a ballast file until at most `leaveBytes` remain free (0: until ENOSPC). Returns the
   * ballast's size. Calling it again grows the ballast.
   */
  fillUp(leaveBytes = 0): number {
    const ballast = path.join(this.dir, BALLAST_NAME);
    const fd = fs.openSync(ballast, "a");
    const chunk = Buffer.alloc(64 * 1024, 0xa5);
    try {
      for (let free = this.availableBytes(); free > leaveBytes; free = this.availableBytes()) {
        const n = Math.min(chunk.length, Math.max(PAGE_BYTES, free - leaveBytes));
        try {
          fs.writeSync(fd, chunk, 0, n);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return fs.statSync(ballast).size;
  }

  /** Deletes the ballast file: the space fillUp took is free again. */
  releaseBallast(): void {
    fs.rmSync(path.join(this.dir, BALLAST_NAME), { force: true });
  }

  /** Unmounts (lazily if busy) and removes the temporary directories. Idempotent. */
  unmount(): void {
    if (!this.#mounted) return;
    if (isMounted(this.dir)) unmountSync(this.dir);
    forgetMountOnExit(this.dir);
    this.#mounted = false;
    removeTempDir(this.#holder);
  }

  protected static prepare(label: string): { holder: string; dir: string } {
    const support = mountSupport();
    if (!support.supported) throw new Error(`${label}: ${support.reason}`);
    const holder = makeTempDir(label);
    const dir = path.join(holder, "mnt");
    fs.mkdirSync(dir);
    unmountOnExit(dir);
    return { holder, dir };
  }
}

export class SmallTmpfs extends SmallDisk {
  #sizeBytes: number;

  private constructor(holder: string, dir: string, sizeBytes: number) {
    super(holder, dir);
    this.#sizeBytes = sizeBytes;
  }

  /** Mounts a tmpfs of `sizeBytes` (rounded up to whole pages, at least one) on a fresh directory. */
  static mount(sizeBytes: number): SmallTmpfs {
    const size = pageRound(sizeBytes);
    const { holder, dir } = SmallDisk.prepare("tmpfs");
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "small-tmpfs", dir], {
        stdio: "pipe",
      });
    } catch (err) {
      removeTempDir(holder);
      throw new Error(`mount tmpfs of ${size} bytes: ${stderrOf(err)}`, { cause: err });
    }
    return new SmallTmpfs(holder, dir, size);
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Changes the size in place. Shrinking below what is used fails (EINVAL) and changes nothing. */
  resize(sizeBytes: number): void {
    const size = pageRound(sizeBytes);
    try {
      execFileSync("mount", ["-o", `remount,size=${size}`, this.dir], { stdio: "pipe" });
    } catch (err) {
      throw new Error(`resize tmpfs ${this.dir} to ${size} bytes: ${stderrOf(err)}`, { cause: err });
    }
    this.#sizeBytes = size;
  }
}

export class LoopDisk extends SmallDisk {
  /** Makes an ext4 image of `sizeBytes` (at least 2 MiB) and mounts it through a loop device. */
  static mount(sizeBytes: number): LoopDisk {
    if (sizeBytes < 2 << 20) throw new RangeError(`LoopDisk: ${sizeBytes} bytes is below the 2 MiB minimum`);
    const { holder, dir } = SmallDisk.prepare("loopdisk");
    const image = path.join(holder, "disk.img");
    try {
      fs.closeSync(fs.openSync(image, "w"));
      fs.truncateSync(image, sizeBytes);
      // No reserved blocks (-m 0), so root's writes see the same ENOSPC point as everyone's.
      execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", image], { stdio: "pipe" });
      execFileSync("mount", ["-t", "ext4", "-o", "loop", image, dir], { stdio: "pipe" });
    } catch (err) {
      removeTempDir(holder);
      throw new Error(`loop disk of ${sizeBytes} bytes: ${stderrOf(err)}`, { cause: err });
    }
    return new LoopDisk(holder, dir);
  }
}

function pageRound(bytes: number): number {
  if (!(Number.isInteger(bytes) && bytes > 0))
    throw new RangeError(`size ${bytes} is not a positive integer`);
  return Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
}

function stderrOf(err: unknown): string {
  const stderr = (err as { stderr?: Buffer | string }).stderr;
  return stderr === undefined ? (err as Error).message : stderr.toString().trim() || (err as Error).message;
}
