// Drives test/fuse/helpers/lock-helper.py: one child process that holds descriptors and takes POSIX and
// OFD record locks as told, so that lock tests see real processes, real fcntl() calls and real errnos.
// Each method sends one command line and resolves with its JSON reply.

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import * as path from "node:path";
import { repoRoot } from "./repo-root.js";

export type LockKind = "r" | "w" | "u";

export interface HeldLock {
  type: LockKind;
  start: bigint;
  /** 0 means "to end of file". */
  len: bigint;
  pid: number;
}

interface Reply {
  ok: boolean;
  pending?: boolean;
  errno?: string;
  error?: string;
  pid?: number;
  lock?: { type: LockKind; start: string; len: string; pid: number } | null;
}

interface Waiter {
  onPending?: () => void;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/** How a lock command is issued: classic POSIX (per process) or OFD (per open file description). */
export interface LockOptions {
  ofd?: boolean;
}

export class LockHelper {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiters: Waiter[] = [];
  #stderr = "";
  #exited = false;
  pid = 0;

  private constructor() {
    const script = path.join(repoRoot(), "test/fuse/helpers/lock-helper.py");
    this.#child = spawn("python3", [script], { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stderr.on("data", (d: Buffer) => (this.#stderr += d.toString()));
    createInterface({ input: this.#child.stdout }).on("line", (line) => this.#onLine(line));
    this.#child.on("exit", (code, signal) => {
      this.#exited = true;
      const err = new Error(`lock helper exited (${code ?? signal}): ${this.#stderr}`);
      for (const w of this.#waiters.splice(0)) w.reject(err);
    });
  }

  /** Starts a helper process and waits until it is ready. */
  static async start(): Promise<LockHelper> {
    const h = new LockHelper();
    const hello = await new Promise<Reply>((resolve, reject) => h.#waiters.push({ resolve, reject }));
    h.pid = hello.pid!;
    return h;
  }

  #onLine(line: string): void {
    const reply = JSON.parse(line) as Reply;
    const head = this.#waiters[0];
    if (head === undefined) throw new Error(`lock helper: unexpected output ${line}`);
    if (reply.pending === true) {
      head.onPending?.();
      return;
    }
    this.#waiters.shift();
    head.resolve(reply);
  }

  #send(line: string, onPending?: () => void): Promise<Reply> {
    if (this.#exited) return Promise.reject(new Error(`lock helper has exited: ${this.#stderr}`));
    return new Promise<Reply>((resolve, reject) => {
      this.#waiters.push({ resolve, reject, onPending });
      this.#child.stdin.write(line + "\n");
    });
  }

  async #expectOk(line: string): Promise<Reply> {
    const r = await this.#send(line);
    if (!r.ok) throw new Error(`lock helper: "${line}" failed: ${r.errno} ${r.error ?? ""}`);
    return r;
  }

  async open(name: string, file: string): Promise<void> {
    await this.#expectOk(`open ${name} ${file}`);
  }

  async close(name: string): Promise<void> {
    await this.#expectOk(`close ${name}`);
  }

  /** F_SETLK / F_OFD_SETLK: "ok" or the errno name (EAGAIN on conflict). */
  async setlk(
    name: string,
    type: LockKind,
    start: bigint,
    len: bigint,
    o: LockOptions = {},
  ): Promise<string> {
    const r = await this.#send(`lock ${o.ofd === true ? "ofd_" : ""}setlk ${name} ${type} ${start} ${len}`);
    return r.ok ? "ok" : r.errno!;
  }

  /**
   * F_SETLKW / F_OFD_SETLKW. `blocking` settles when the helper is about to enter fcntl(); `result`
   * settles with "ok" or the errno name (EINTR after `interrupt()`).
   */
  setlkw(
    name: string,
    type: LockKind,
    start: bigint,
    len: bigint,
    o: LockOptions = {},
  ): { blocking: Promise<void>; result: Promise<string> } {
    let onPending!: () => void;
    const blocking = new Promise<void>((resolve) => (onPending = resolve));
    const line = `lock ${o.ofd === true ? "ofd_" : ""}setlkw ${name} ${type} ${start} ${len}`;
    const result = this.#send(line, onPending).then((r) => (r.ok ? "ok" : r.errno!));
    return { blocking, result };
  }

  /** F_GETLK / F_OFD_GETLK: the first conflicting lock, or null. */
  async getlk(
    name: string,
    type: LockKind,
    start: bigint,
    len: bigint,
    o: LockOptions = {},
  ): Promise<HeldLock | null> {
    const r = await this.#expectOk(
      `lock ${o.ofd === true ? "ofd_" : ""}getlk ${name} ${type} ${start} ${len}`,
    );
    if (r.lock === null || r.lock === undefined) return null;
    return { type: r.lock.type, start: BigInt(r.lock.start), len: BigInt(r.lock.len), pid: r.lock.pid };
  }

  /** Forks a child that closes its inherited copy of descriptor `name` and exits. */
  async forkClose(name: string): Promise<void> {
    await this.#expectOk(`forkclose ${name}`);
  }

  /** Sends SIGUSR1, which interrupts a blocked F_SETLKW (the helper reports EINTR). */
  interrupt(): void {
    this.#child.kill("SIGUSR1");
  }

  /** SIGKILLs the helper and waits until it is gone (its pending commands reject). */
  async kill(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.kill("SIGKILL");
    await exited;
  }

  /** Ends the helper; its descriptors close and the kernel (or file system) drops its locks. */
  async exit(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.stdin.end("exit\n");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
