// One `litefs mount` node for tests: its config generated in temp dirs (free loopback port), started
// and waited for ("mount ready"), stopped, crashed with SIGKILL, restarted on the same data, and
// always unmounted and removed at cleanup.
import * as fs from "node:fs";
import * as path from "node:path";
import { stringify } from "yaml";
import { freeLoopbackPort } from "./free-port.js";
import { MountProcess } from "./mount-process.js";
import { isMounted, unmountSync } from "./mounts.js";
import { CLI_MAIN, REPO_ROOT } from "./paths.js";
import { parsePos, type Pos } from "./pos.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";
import type { ExitStatus } from "./tracked-process.js";

/** The log line `litefs mount` prints once the mount is usable. */
export const MOUNT_READY_PATTERN = /mount ready/;

export interface LitefsNodeOptions {
  /** Folder for `fuse/`, `data/` and `litefs.yml`; default a new temp dir that cleanup() removes. */
  baseDir?: string;
  /** `data.retention`; default "24h" so that a test's whole LTX chain stays on disk for replay. */
  retention?: string;
  /** Sections merged over the generated config (one level deep: `{data: {compress: false}}`). */
  config?: Record<string, Record<string, unknown>>;
  /** Extra `litefs mount` arguments, e.g. ["--verify"]. */
  args?: readonly string[];
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** The API's port; default a free one. A test that puts a FaultProxy in front of the API picks it first. */
  httpPort?: number;
}

/**
 * The lock mode the environment asks every test node to run in, so that any test can be run against
 * either mode unchanged: `LITEFS_TEST_KERNEL_LOCKS=1` sets `fuse.kernel-locks: true`, `=0` sets it
 * false, unset (or empty) leaves the built-in default.
 */
export function testKernelLocks(): boolean | undefined {
  const value = process.env.LITEFS_TEST_KERNEL_LOCKS ?? "";
  if (value === "") return undefined;
  return value !== "0" && value !== "false";
}

/**
 * Node.js flags for every node process, from `LITEFS_TEST_NODE_FLAGS` (space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the nodes of a bench run (NODE_OPTIONS refuses
 * --cpu-prof). Empty or unset: none.
 */
function nodeFlagsFromEnv(): string[] {
  return (process.env.LITEFS_TEST_NODE_FLAGS ?? "").split(" ").filter((flag) => flag !== "");
}

/**
 * The config object a test node runs with (before `options.config` is merged in, which wins).
 * `fuse.kernel-locks` follows `LITEFS_TEST_KERNEL_LOCKS` (see `testKernelLocks`).
 */
export function litefsNodeConfig(options: {
  fuseDir: string;
  dataDir: string;
  httpPort: number;
  retention: string;
}): Record<string, Record<string, unknown>> {
  const kernelLocks = testKernelLocks();
  return {
    fuse:
      kernelLocks === undefined
        ? { dir: options.fuseDir }
        : { dir: options.fuseDir, "kernel-locks": kernelLocks },
    data: { dir: options.dataDir, retention: options.retention },
    http: { addr: `127.0.0.1:${options.httpPort}` },
    lease: {
      type: "static",
      candidate: true,
      hostname: "test-primary",
      "advertise-url": `http://127.0.0.1:${options.httpPort}`,
    },
    // Debug: tests read the per-transaction "commit" records (a debug line since it cost the
    // request thread ~30 µs per transaction), and a failure's log says more.
    log: { format: "json", debug: true },
  };
}

/** Writes `config` as YAML to `file`. */
export function writeLitefsConfig(file: string, config: Record<string, unknown>): void {
  fs.writeFileSync(file, stringify(config));
}

export class LitefsNode {
  readonly baseDir: string;
  readonly fuseDir: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly httpPort: number;
  #ownsBaseDir: boolean;
  #options: LitefsNodeOptions;
  #mount: MountProcess | undefined;
  #pastLogs: string[] = [];

  private constructor(baseDir: string, ownsBaseDir: boolean, httpPort: number, options: LitefsNodeOptions) {
    this.baseDir = baseDir;
    this.#ownsBaseDir = ownsBaseDir;
    this.fuseDir = path.join(baseDir, "fuse");
    this.dataDir = path.join(baseDir, "data");
    this.configPath = path.join(baseDir, "litefs.yml");
    this.httpPort = httpPort;
    this.#options = options;
  }

  /** Generates the config, starts the node and waits until the mount is ready. */
  static async start(options: LitefsNodeOptions = {}): Promise<LitefsNode> {
    const ownsBaseDir = options.baseDir === undefined;
    const baseDir = options.baseDir ?? makeTempDir("node");
    const node = new LitefsNode(
      baseDir,
      ownsBaseDir,
      options.httpPort ?? (await freeLoopbackPort()),
      options,
    );
    fs.mkdirSync(node.fuseDir, { recursive: true });
    const config = litefsNodeConfig({
      fuseDir: node.fuseDir,
      dataDir: node.dataDir,
      httpPort: node.httpPort,
      retention: options.retention ?? "24h",
    });
    for (const [section, values] of Object.entries(options.config ?? {})) {
      config[section] = { ...(config[section] ?? {}), ...values };
    }
    writeLitefsConfig(node.configPath, config);
    try {
      await node.restart();
    } catch (err) {
      if (ownsBaseDir) removeTempDir(baseDir);
      throw err;
    }
    return node;
  }

  /** The base URL of the node's HTTP API. */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get running(): boolean {
    return this.#mount?.running ?? false;
  }

  /** The running node's pid (throws when not running). */
  get pid(): number {
    if (this.#mount === undefined || !this.#mount.running) throw new Error("LitefsNode: not running");
    return this.#mount.process.pid;
  }

  /** Path of database `name` inside the mount. */
  dbPath(name: string): string {
    return path.join(this.fuseDir, name);
  }

  /** Path of the read-only position file `<name>-pos` inside the mount. */
  posPath(name: string): string {
    return path.join(this.fuseDir, `${name}-pos`);
  }

  /** Folder holding the database's backing files (`database`, `journal`, `wal`, `shm`, `ltx/`). */
  storeDir(name: string): string {
    return path.join(this.dataDir, "dbs", name);
  }

  /** Folder of the database's LTX files. */
  ltxDir(name: string): string {
    return path.join(this.storeDir(name), "ltx");
  }

  /** The position the mount reports for `name` (`<name>-pos`). */
  readPos(name: string): Pos {
    return parsePos(fs.readFileSync(this.posPath(name), "utf8"), this.posPath(name));
  }

  /** Everything the node printed, over all of its runs, for error messages. */
  logs(): string {
    const current =
      this.#mount === undefined ? [] : [this.#mount.process.stderr + this.#mount.process.stdout];
    return [...this.#pastLogs, ...current].join("\n--- (restart) ---\n");
  }

  /** What the node printed in its current (or last) run only. */
  lastRunLogs(): string {
    if (this.#mount === undefined) return this.#pastLogs.at(-1) ?? "";
    return this.#mount.process.stderr + this.#mount.process.stdout;
  }

  /**
   * (Re)starts the node on the same config and data, after a stop or a crash. Extra arguments for this
   * run only (e.g. ["--verify"]) come after the configured ones.
   */
  async restart(extraArgs: readonly string[] = []): Promise<void> {
    if (this.running) throw new Error("LitefsNode.restart: already running");
    this.#retireMount();
    this.#mount = await MountProcess.start({
      label: "litefs mount",
      command: process.execPath,
      args: [
        "--enable-source-maps",
        ...nodeFlagsFromEnv(),
        CLI_MAIN,
        "mount",
        "--config",
        this.configPath,
        ...(this.#options.args ?? []),
        ...extraArgs,
      ],
      mountDir: this.fuseDir,
      ready: MOUNT_READY_PATTERN,
      readyTimeoutMs: this.#options.readyTimeoutMs ?? 30_000,
      env: this.#options.env,
      cwd: REPO_ROOT,
    });
  }

  /** Graceful stop (SIGTERM, then SIGKILL after `graceMs`); unmounted afterwards in any case. */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    if (this.#mount === undefined) throw new Error("LitefsNode.stop: never started");
    const status = await this.#mount.stop(graceMs);
    this.#unmountLockFiles();
    return status;
  }

  /** SIGKILL the node (and its process group) at once, then unmount the dead mount. */
  async crash(): Promise<ExitStatus> {
    if (this.#mount === undefined) throw new Error("LitefsNode.crash: never started");
    const status = await this.#mount.crash();
    this.#unmountLockFiles();
    return status;
  }

  /** Stops the node if running, unmounts, and removes the base dir when this helper created it. */
  async cleanup(): Promise<void> {
    await this.#mount?.cleanup();
    try {
      this.#unmountLockFiles();
    } catch {
      // removeTempDir below unmounts whatever is left under the base directory.
    }
    if (this.#ownsBaseDir) removeTempDir(this.baseDir);
  }

  /** Kernel-locks mode: the lock-file mount a killed node left under its data directory (a dead mount). */
  #unmountLockFiles(): void {
    const lockDir = path.join(this.dataDir, "locks");
    if (isMounted(lockDir)) unmountSync(lockDir);
  }

  #retireMount(): void {
    if (this.#mount === undefined) return;
    this.#pastLogs.push(this.#mount.process.stderr + this.#mount.process.stdout);
    this.#mount = undefined;
  }
}
