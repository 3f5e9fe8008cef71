// Child processes that tests start: each in its own process group (so leftovers it spawned die with
// it), output kept (bounded) for error messages, lines watched for readiness, and a last-resort
// 'exit' hook that kills whatever a failed test left running and unmounts what it left mounted.
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";

import { isMounted, unmountSync } from "./mounts.js";

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface TrackedProcessOptions {
  /** Names the process in errors ("litefs mount", "python writer"). */
  label: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** "pipe" to write to the child's stdin; default "ignore". */
  stdin?: "pipe" | "ignore";
}

/** How much of each output stream a tracked process keeps (its tail); see `keepOutputTail`. */
let outputTailBytesMax = 256 * 1024;

/**
 * Makes processes keep the last `bytes` of each output stream instead of 256 KiB (a bench that writes
 * whole node logs out, `bench/failover.ts --logs`). Applies to output read from now on.
 */
export function keepOutputTail(bytes: number): void {
  outputTailBytesMax = bytes;
}

const liveProcesses = new Set<TrackedProcess>();
const mountsToClean = new Set<string>();
let exitHookInstalled = false;

/** Registers a mount point to unmount (lazily) if the test process exits while it is still mounted. */
export function unmountOnExit(dir: string): void {
  installExitHook();
  mountsToClean.add(dir);
}

/** Removes a mount point from the exit hook's list (after a normal unmount). */
export function forgetMountOnExit(dir: string): void {
  mountsToClean.delete(dir);
}

export class TrackedProcess {
  readonly label: string;
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exit: Promise<ExitStatus>;
  readonly child: ChildProcess;
  #stdout = "";
  #stderr = "";
  #status: ExitStatus | undefined;
  #lineWatchers: Array<(line: string) => void> = [];
  #partial = { stdout: "", stderr: "" };

  private constructor(child: ChildProcess, label: string) {
    if (child.pid === undefined) throw new Error(`${label}: spawn failed (no pid)`);
    this.child = child;
    this.label = label;
    this.pid = child.pid;
    this.exit = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        const status = { code, signal };
        liveProcesses.delete(this);
        // 'exit' may come before the last output was read (a summary line printed just before
        // exiting was seen missing): wait for both streams to end — at most 2 s, in case a process
        // the child started still holds them open.
        const open = [child.stdout, child.stderr].filter((s) => s !== null && !s.readableEnded);
        const ended = open.map((s) => new Promise((done) => s!.once("close", done).once("end", done)));
        const bound = new Promise((done) => setTimeout(done, 2_000).unref());
        void Promise.race([Promise.all(ended), bound]).then(() => {
          this.#status = status;
          resolve(status);
        });
      });
    });
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => this.#onOutput("stdout", chunk));
    child.stderr?.on("data", (chunk: string) => this.#onOutput("stderr", chunk));
  }

  /** Starts a process in a new process group. Throws if it cannot be spawned at all. */
  static async spawn(options: TrackedProcessOptions): Promise<TrackedProcess> {
    installExitHook();
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) =>
        reject(new Error(`${options.label}: cannot start ${options.command}: ${err.message}`)),
      );
    });
    const tracked = new TrackedProcess(child, options.label);
    liveProcesses.add(tracked);
    return tracked;
  }

  /** The exit status, or undefined while running. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** A few lines for an error message: how it exited and the tail of its stderr and stdout. */
  describe(): string {
    const how =
      this.#status === undefined
        ? "still running"
        : `exited with code ${this.#status.code} signal ${this.#status.signal}`;
    return `${this.label} (pid ${this.pid}) ${how}\n--- stderr (tail) ---\n${tail(this.#stderr)}\n--- stdout (tail) ---\n${tail(this.#stdout)}`;
  }

  /**
   * Resolves with the first output line (stdout or stderr, already seen or to come) matching `pattern`.
   * Rejects if the process exits first or after `timeoutMs`, with the process's output in the message.
   */
  async waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    const seen = (this.#stdout + "\n" + this.#stderr).split("\n").find((line) => pattern.test(line));
    if (seen !== undefined) return seen;
    return new Promise((resolve, reject) => {
      const finish = (error: Error | undefined, line?: string): void => {
        clearTimeout(timer);
        this.#lineWatchers = this.#lineWatchers.filter((w) => w !== watcher);
        if (error !== undefined) reject(error);
        else resolve(line!);
      };
      const watcher = (line: string): void => {
        if (pattern.test(line)) finish(undefined, line);
      };
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `${this.label}: no line matching ${pattern} within ${timeoutMs} ms\n${this.describe()}`,
            ),
          ),
        timeoutMs,
      );
      this.#lineWatchers.push(watcher);
      void this.exit.then(() => {
        // Let the last output chunks arrive before deciding the line never came.
        setImmediate(() =>
          finish(
            new Error(`${this.label}: exited before printing a line matching ${pattern}\n${this.describe()}`),
          ),
        );
      });
    });
  }

  /** Sends `signal` to the process itself (not its group). No-op once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (this.#status !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }

  /**
   * Sends SIGKILL to the whole process group (the process and any child it left behind). Once the
   * leader has exited, a process now holding its pid means the number was reused (the kernel does not
   * reuse a pid while a group of that id has members): that group is someone else's — e.g. a FUSE
   * crash guard's watcher, a group leader of its own — and is left alone.
   */
  killGroup(): void {
    if (this.#status !== undefined && fs.existsSync(`/proc/${this.pid}`)) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }

  /**
   * Stops the process: SIGTERM, then SIGKILL to the group if it has not exited within `graceMs`; then
   * SIGKILL to the group anyway so that no child of it survives. Resolves with how it exited.
   */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    if (this.#status === undefined) {
      this.signal("SIGTERM");
      const timedOut = await Promise.race([
        this.exit.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), graceMs).unref()),
      ]);
      if (timedOut) this.killGroup();
    }
    const status = await this.exit;
    this.killGroup();
    return status;
  }

  #onOutput(stream: "stdout" | "stderr", chunk: string): void {
    if (stream === "stdout") this.#stdout = clip(this.#stdout + chunk);
    else this.#stderr = clip(this.#stderr + chunk);
    const lines = (this.#partial[stream] + chunk).split("\n");
    this.#partial[stream] = lines.pop() ?? "";
    for (const line of lines) for (const watcher of [...this.#lineWatchers]) watcher(line);
  }
}

function clip(text: string): string {
  return text.length > outputTailBytesMax ? text.slice(text.length - outputTailBytesMax) : text;
}

function tail(text: string, lines = 40): string {
  return text.split("\n").slice(-lines).join("\n");
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const tracked of liveProcesses) tracked.killGroup();
    for (const dir of mountsToClean) {
      try {
        if (isMounted(dir)) unmountSync(dir);
      } catch {
        // Best effort while exiting: nothing can report it any more.
      }
    }
  });
}

/** True while a process with this pid exists (signal 0: no signal is sent). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
