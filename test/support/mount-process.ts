// A process that serves a FUSE mount (our `litefs mount`, the passthrough example, libfuse's C
// passthrough): started, waited for until the mount is usable, stopped or crashed, and — whatever
// happened — unmounted afterwards.
import { forgetMountOnExit, type ExitStatus, TrackedProcess, unmountOnExit } from "./tracked-process.js";
import { isMounted, unmountSync, waitUntilMounted } from "./mounts.js";

export interface MountProcessOptions {
  label: string;
  command: string;
  args: readonly string[];
  /** The directory the process mounts on. */
  mountDir: string;
  /**
   * How to know the mount is usable: a log line to wait for (then the mount table is checked too),
   * or "mounted" to poll the mount table only (for servers that print nothing).
   */
  ready: RegExp | "mounted";
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const READY_TIMEOUT_MS_DEFAULT = 30_000;

export class MountProcess {
  readonly mountDir: string;
  readonly process: TrackedProcess;
  /** The log line that announced readiness (undefined with `ready: "mounted"`). */
  readonly readyLine: string | undefined;

  private constructor(process: TrackedProcess, mountDir: string, readyLine: string | undefined) {
    this.process = process;
    this.mountDir = mountDir;
    this.readyLine = readyLine;
  }

  /**
   * Starts the server and resolves once the mount is usable. If it is not ready in time (or exits),
   * the process group is killed, the mount point unmounted, and the error carries the process's output.
   */
  static async start(options: MountProcessOptions): Promise<MountProcess> {
    if (isMounted(options.mountDir)) unmountSync(options.mountDir); // a stale mount from a killed server
    unmountOnExit(options.mountDir);
    const tracked = await TrackedProcess.spawn({
      label: options.label,
      command: options.command,
      args: options.args,
      env: options.env,
      cwd: options.cwd,
    });
    const timeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT;
    let readyLine: string | undefined;
    try {
      if (options.ready !== "mounted") readyLine = await tracked.waitForLine(options.ready, timeoutMs);
      await waitUntilMounted(options.mountDir, options.ready === "mounted" ? timeoutMs : 5_000, () =>
        tracked.status === undefined ? undefined : `server exited\n${tracked.describe()}`,
      );
    } catch (err) {
      tracked.killGroup();
      await tracked.exit;
      unmountSync(options.mountDir);
      throw err;
    }
    return new MountProcess(tracked, options.mountDir, readyLine);
  }

  get running(): boolean {
    return this.process.status === undefined;
  }

  /**
   * Graceful stop: SIGTERM (the server unmounts itself), SIGKILL after `graceMs`; the mount point is
   * unmounted afterwards if the server left it mounted. Resolves with the exit status.
   */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    const status = await this.process.stop(graceMs);
    this.#unmount();
    return status;
  }

  /** Crash: SIGKILL to the process group at once, then a (lazy, if busy) unmount of the dead mount. */
  async crash(): Promise<ExitStatus> {
    this.process.killGroup();
    const status = await this.process.exit;
    this.#unmount();
    return status;
  }

  /** For `finally`/`t.after`: stops the server if it still runs, and always unmounts. Never throws. */
  async cleanup(): Promise<void> {
    try {
      await this.process.stop(5_000);
    } finally {
      try {
        this.#unmount();
      } catch {
        // Cleanup must not mask the test's own failure; the exit hook tries once more.
      }
    }
  }

  #unmount(): void {
    unmountSync(this.mountDir);
    forgetMountOnExit(this.mountDir);
  }
}
