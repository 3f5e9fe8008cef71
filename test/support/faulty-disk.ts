// A "faulty disk" for tests: a real directory mounted through a FUSE process (faulty-disk-cli) that
// delays requests and answers errnos on demand — the slow disk, the disk that fills up at exactly
// the write a test chooses, the disk that starts failing fsync. Point a node's data directory at
// `mountDir`; change the faults while it runs with setRules()/fillUp()/clearRules().
//
// The server runs as its own process group; stop()/crash()/cleanup() end it and always unmount.
import * as net from "node:net";
import * as path from "node:path";
import type { DiskFaultRule, DiskFaultStats } from "./faulty-file-system.js";
import { SPACE_TAKING_OPS } from "./faulty-file-system.js";
import { MountProcess } from "./mount-process.js";
import { SUPPORT_DIST_DIR } from "./paths.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";
import type { ExitStatus } from "./tracked-process.js";

export type { DiskFaultOp, DiskFaultRule, DiskFaultStats } from "./faulty-file-system.js";
export { DISK_FAULT_OPS, SPACE_TAKING_OPS } from "./faulty-file-system.js";

export interface FaultyDiskOptions {
  /** The real directory behind the mount (it keeps the files after unmount). */
  sourceDir: string;
  /** An empty directory to mount on. */
  mountDir: string;
  /** Seed of the generator behind rules with a probability; default 1. */
  seed?: number;
  /** Kernel name/attribute cache time; default 0, so every lookup and getattr reaches the rules. */
  cacheMs?: number;
  /** Bypass the page cache, so every read reaches the rules; default false. */
  directIo?: boolean;
  /** Rules in force from the first request on. */
  rules?: readonly DiskFaultRule[];
}

const CONTROL_TIMEOUT_MS = 5_000;

export class FaultyDiskError extends Error {
  override readonly name = "FaultyDiskError";
  readonly code = "FAULTY_DISK_CONTROL";
}

export class FaultyDisk {
  readonly sourceDir: string;
  readonly mountDir: string;
  readonly process: MountProcess;
  readonly #controlDir: string;
  readonly #controlPath: string;

  private constructor(options: FaultyDiskOptions, process: MountProcess, controlDir: string) {
    this.sourceDir = options.sourceDir;
    this.mountDir = options.mountDir;
    this.process = process;
    this.#controlDir = controlDir;
    this.#controlPath = path.join(controlDir, "control.sock");
  }

  /** Mounts the faulty disk; resolves once the mount and its control socket are ready. */
  static async start(options: FaultyDiskOptions): Promise<FaultyDisk> {
    const controlDir = makeTempDir("faulty-disk-control");
    const args = [
      "--enable-source-maps",
      path.join(SUPPORT_DIST_DIR, "faulty-disk-cli.js"),
      "--source",
      options.sourceDir,
      "--mount",
      options.mountDir,
      "--control",
      path.join(controlDir, "control.sock"),
      "--seed",
      String(options.seed ?? 1),
      "--cache-ms",
      String(options.cacheMs ?? 0),
      "--rules",
      JSON.stringify(options.rules ?? []),
    ];
    if (options.directIo === true) args.push("--direct-io");
    try {
      const mount = await MountProcess.start({
        label: "faulty disk",
        command: process.execPath,
        args,
        mountDir: options.mountDir,
        ready: /^faulty disk mounted /,
      });
      return new FaultyDisk(options, mount, controlDir);
    } catch (err) {
      removeTempDir(controlDir);
      throw err;
    }
  }

  /** Replaces the rules; the first rule matching a request decides it. */
  async setRules(rules: readonly DiskFaultRule[]): Promise<void> {
    await this.#command({ cmd: "set", rules });
  }

  /** No faults from now on. */
  async clearRules(): Promise<void> {
    await this.#command({ cmd: "clear" });
  }

  /**
   * The disk is full from now on: every request that needs data blocks (write, fallocate, mkdir — see
   * SPACE_TAKING_OPS), optionally only under paths matching `pathPattern`, answers ENOSPC. Replaces the
   * rules.
   */
  async fillUp(pathPattern?: string): Promise<void> {
    await this.setRules([{ ops: SPACE_TAKING_OPS, error: "ENOSPC", pathPattern }]);
  }

  async stats(): Promise<DiskFaultStats> {
    return ((await this.#command({ cmd: "stats" })) as { stats: DiskFaultStats }).stats;
  }

  /** SIGTERM (the server unmounts), SIGKILL after `graceMs`; always unmounted afterwards. */
  async stop(graceMs = 5_000): Promise<ExitStatus> {
    try {
      return await this.process.stop(graceMs);
    } finally {
      removeTempDir(this.#controlDir);
    }
  }

  /** SIGKILL now (a disk that vanished), then a lazy unmount of the dead mount. */
  async crash(): Promise<ExitStatus> {
    try {
      return await this.process.crash();
    } finally {
      removeTempDir(this.#controlDir);
    }
  }

  /** For `t.after`: stops it if it runs and always unmounts. Never throws. */
  async cleanup(): Promise<void> {
    await this.process.cleanup();
    try {
      removeTempDir(this.#controlDir);
    } catch {
      // Best effort: nothing is mounted there.
    }
  }

  /** Sends one command line and resolves with the reply; rejects on {"ok":false} or a timeout. */
  #command(request: object): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.#controlPath);
      let buffered = "";
      const fail = (message: string): void => {
        socket.destroy();
        reject(new FaultyDiskError(`faulty disk control: ${message}`));
      };
      socket.setTimeout(CONTROL_TIMEOUT_MS, () => fail(`no reply within ${CONTROL_TIMEOUT_MS} ms`));
      socket.on("error", (err) => fail(err.message));
      socket.setEncoding("utf8");
      socket.on("data", (text: string) => {
        buffered += text;
        const end = buffered.indexOf("\n");
        if (end < 0) return;
        socket.destroy();
        const reply = JSON.parse(buffered.slice(0, end)) as Record<string, unknown>;
        if (reply.ok === true) resolve(reply);
        else fail(String(reply.error));
      });
      socket.write(JSON.stringify(request) + "\n");
    });
  }
}
