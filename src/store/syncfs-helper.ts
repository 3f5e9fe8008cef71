// syncfs(2) for background batches (pending-ltx-sync.ts) through one long-lived shell process instead
// of a new `sync` child per batch. Starting a child forks the node — its page tables copied, then
// every page it touches copy-on-write until the child execs — which measured 3 ms of the main thread
// per start for a small node and 27 ms with 150 MB resident, several times a second under WAL writes.
// The shell forks `sync --file-system` itself (a small process, cheap to fork) for each request and
// answers one line per request, in order: "ok" or "err <sync's message>".
//
// The helper exits at the end of its input: when the node closes the pipe, exits or is killed (it is
// in the node's process group too). It keeps the node's event loop alive only while an answer is due. If it cannot be
// started or dies, its pending requests fail with HelperUnavailable and the caller falls back to a
// child per request (durable-file.ts `syncFileSystemAsync`); the next request starts a new helper.

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import type { Socket } from "node:net";
import readline from "node:readline";

const SCRIPT = [
  "while IFS= read -r dir; do",
  '  if out=$(sync --file-system -- "$dir" 2>&1); then echo ok',
  "  else printf 'err %s\\n' \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"; fi",
  "done",
].join("\n");

/** The helper could not run the request (not started, died, pipe closed): not an answer from sync. */
export class HelperUnavailable extends Error {
  override readonly name = "HelperUnavailable";
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  /** The child's stdout: a pipe socket (ref'd while an answer is due). */
  readonly output: Socket;
  /** Requests written and not answered yet, oldest first (the helper answers in order). */
  readonly waiting: Waiter[];
}

export class SyncFsHelper {
  #running: Running | null = null;

  /** The helper's process id while one runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.#running?.child.pid;
  }

  /**
   * syncfs of the file system holding `dir`. Resolves when sync succeeded; rejects with Error(message
   * of sync) when it failed, or HelperUnavailable when the helper could not answer.
   */
  request(dir: string): Promise<void> {
    if (dir.includes("\n")) return Promise.reject(new HelperUnavailable("a path with a newline"));
    let running: Running;
    try {
      running = this.#running ?? this.#start();
    } catch (err) {
      return Promise.reject(new HelperUnavailable(`syncfs helper: ${(err as Error).message}`));
    }
    return new Promise<void>((resolve, reject) => {
      // While an answer is due, the helper's output keeps the event loop alive (and only then).
      if (running.waiting.length === 0) running.output.ref();
      running.waiting.push({ resolve, reject });
      running.child.stdin.write(dir + "\n");
    });
  }

  /** Ends the helper (its pending requests fail); a later request starts a new one. */
  close(): void {
    const running = this.#running;
    if (running === null) return;
    this.#fail(running, new HelperUnavailable("syncfs helper closed"));
    running.child.stdin.end();
  }

  #start(): Running {
    const child = spawn("sh", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "pipe"], cwd: "/" });
    const running: Running = { child, output: child.stdout as unknown as Socket, waiting: [] };
    this.#running = running;
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as Socket).unref();
    child.stderr.resume(); // the shell's own complaints; sync's go to stdout
    const lines = readline.createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const waiter = running.waiting.shift();
      if (running.waiting.length === 0) running.output.unref();
      if (waiter === undefined) return;
      if (line === "ok") waiter.resolve();
      else waiter.reject(new Error(line.startsWith("err ") ? line.slice(4).trim() || "failed" : line));
    });
    const fail = (why: string) => () => this.#fail(running, new HelperUnavailable(`syncfs helper ${why}`));
    child.on("error", (err) => this.#fail(running, new HelperUnavailable(`syncfs helper: ${err.message}`)));
    child.on("exit", fail("exited"));
    child.stdin.on("error", fail("input closed"));
    return running;
  }

  #fail(running: Running, err: Error): void {
    if (this.#running === running) this.#running = null;
    running.output.unref();
    for (const waiter of running.waiting.splice(0)) waiter.reject(err);
  }
}
