// A FUSE file system that wraps another (the passthrough example, over a real directory) and injects
// faults into named requests: a delay before the request runs (a slow disk), and/or an errno instead of
// running it (ENOSPC: a full disk; EIO: a failing one). Rules can be limited to paths, to a number of
// hits and to a probability (drawn from a seeded generator, so a run can be replayed).
//
// - An errno is answered *instead of* the request: nothing reaches the real directory, as when a
//   device refuses the write. A delay alone lets the request run after it.
// - Paths are those under the mount root ("/dbs/db/ltx/0000000000000001-0000000000000001.ltx"),
//   learnt from the names the kernel looks up; rules with `pathPattern` skip requests whose node was
//   never looked up by name (none in practice: the kernel looks every name up before using it).
//   READDIRPLUS is not offered (the kernel falls back to READDIR + LOOKUP) so every node gets a name.
// - Requests no rule matches take the wrapped file system's own path: synchronous stays synchronous.
import type { ErrnoName, FuseFileSystem, RequestContext } from "../../src/fuse/index.js";
import { FuseError } from "../../src/fuse/index.js";
import { errnoNumber } from "../../src/fuse/errors.js";
import { Prng } from "./prng.js";

/** The requests a rule can name (FUSE opcodes, as the FuseFileSystem handlers are called). */
export const DISK_FAULT_OPS = [
  "lookup",
  "getattr",
  "setattr",
  "access",
  "mknod",
  "mkdir",
  "unlink",
  "rmdir",
  "rename",
  "open",
  "create",
  "read",
  "write",
  "flush",
  "release",
  "fsync",
  "fallocate",
  "lseek",
  "opendir",
  "readdir",
  "releasedir",
  "fsyncdir",
  "statfs",
  "getlk",
  "setlk",
] as const;

export type DiskFaultOp = (typeof DISK_FAULT_OPS)[number];

/**
 * The requests a full disk refuses: those that need data blocks. Creating an empty file needs only an
 * inode and usually still works on a full ext4 or tmpfs, so CREATE/MKNOD are not in the list (SQLite
 * then creates its journal and fails on the first write to it, with SQLITE_FULL, as on a real disk).
 */
export const SPACE_TAKING_OPS: readonly DiskFaultOp[] = ["write", "fallocate", "mkdir"];

export interface DiskFaultRule {
  /** The requests this rule applies to. */
  ops: readonly DiskFaultOp[];
  /** A regular expression (source) the request's path must match; default: every path. */
  pathPattern?: string;
  /** Wait this long before answering (0–60 000 ms). */
  delayMs?: number;
  /** Answer this errno instead of running the request. */
  error?: ErrnoName;
  /** Chance that a matching request is hit, 0–1; default 1. */
  probability?: number;
  /** Hit at most this many requests, then the rule is spent; default: no limit. */
  times?: number;
}

export interface DiskFaultStats {
  /** Requests seen, per op. */
  requests: Partial<Record<DiskFaultOp, number>>;
  /** Requests hit by a rule, per op. */
  injected: Partial<Record<DiskFaultOp, number>>;
  /** Hits left per rule (null: unlimited), in rule order. */
  remaining: Array<number | null>;
}

export class DiskFaultRuleError extends Error {
  override readonly name = "DiskFaultRuleError";
  readonly code = "DISK_FAULT_RULE";
}

interface ActiveRule {
  rule: DiskFaultRule;
  pattern: RegExp | undefined;
  remaining: number | undefined;
}

const OPS_WITH_PARENT_AND_NAME = new Set<DiskFaultOp>([
  "lookup",
  "mknod",
  "mkdir",
  "unlink",
  "rmdir",
  "rename",
  "create",
]);
const OPS_RETURNING_ENTRY = new Set<DiskFaultOp>(["lookup", "mknod", "mkdir", "create"]);
const DELAY_MS_MAX = 60_000;
const ROOT_NODE_ID = 1;

/** Checks a rule list (from a test or from the control socket); throws DiskFaultRuleError. */
export function validateDiskFaultRules(rules: unknown): DiskFaultRule[] {
  if (!Array.isArray(rules)) throw new DiskFaultRuleError("rules must be an array");
  return rules.map((raw: unknown, i) => {
    const rule = raw as DiskFaultRule;
    const where = `rule ${i}`;
    if (typeof rule !== "object" || rule === null) throw new DiskFaultRuleError(`${where}: not an object`);
    if (!Array.isArray(rule.ops) || rule.ops.length === 0)
      throw new DiskFaultRuleError(`${where}: ops must be a non-empty array`);
    for (const op of rule.ops) {
      if (!(DISK_FAULT_OPS as readonly string[]).includes(op))
        throw new DiskFaultRuleError(`${where}: unknown op ${String(op)}`);
    }
    if (rule.delayMs === undefined && rule.error === undefined)
      throw new DiskFaultRuleError(`${where}: needs delayMs or error`);
    if (
      rule.delayMs !== undefined &&
      !(Number.isFinite(rule.delayMs) && rule.delayMs >= 0 && rule.delayMs <= DELAY_MS_MAX)
    ) {
      throw new DiskFaultRuleError(`${where}: delayMs ${rule.delayMs} not in [0, ${DELAY_MS_MAX}]`);
    }
    if (
      rule.error !== undefined &&
      (typeof rule.error !== "string" || errnoNumber(rule.error) === undefined)
    ) {
      throw new DiskFaultRuleError(`${where}: ${String(rule.error)} is not an errno name`);
    }
    if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
      throw new DiskFaultRuleError(`${where}: probability ${rule.probability} not in [0, 1]`);
    }
    if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times >= 0)) {
      throw new DiskFaultRuleError(`${where}: times ${rule.times} is not a non-negative integer`);
    }
    if (rule.pathPattern !== undefined) {
      try {
        new RegExp(rule.pathPattern);
      } catch (err) {
        throw new DiskFaultRuleError(`${where}: pathPattern: ${(err as Error).message}`);
      }
    }
    return { ...rule, ops: [...rule.ops] };
  });
}

export class FaultyFileSystem {
  /** The FuseFileSystem to mount: the wrapped one's handlers, each behind the rules. */
  readonly fileSystem: FuseFileSystem;
  readonly #prng: Prng;
  #rules: ActiveRule[] = [];
  /** Where each node was last seen: its parent and name (root: none). */
  readonly #names = new Map<number, { parent: number; name: string }>();
  readonly #requests: Partial<Record<DiskFaultOp, number>> = {};
  readonly #injected: Partial<Record<DiskFaultOp, number>> = {};

  constructor(inner: FuseFileSystem, options: { seed?: number } = {}) {
    this.#prng = new Prng(options.seed ?? 1);
    const wrapped: Record<string, unknown> = {};
    if (inner.init !== undefined) wrapped.init = inner.init.bind(inner);
    if (inner.destroy !== undefined) wrapped.destroy = inner.destroy.bind(inner);
    if (inner.forget !== undefined) wrapped.forget = inner.forget.bind(inner);
    for (const op of DISK_FAULT_OPS) {
      if (inner[op] === undefined) continue;
      const call = (...args: unknown[]): unknown =>
        (inner[op] as (this: FuseFileSystem, ...args: unknown[]) => unknown).apply(inner, args);
      wrapped[op] = (...args: unknown[]) => this.#handle(op, args, call);
    }
    this.fileSystem = wrapped;
  }

  /** Replaces the rule list; the first rule that matches a request decides it. */
  setRules(rules: readonly DiskFaultRule[]): void {
    this.#rules = validateDiskFaultRules(rules).map((rule) => ({
      rule,
      pattern: rule.pathPattern === undefined ? undefined : new RegExp(rule.pathPattern),
      remaining: rule.times,
    }));
  }

  stats(): DiskFaultStats {
    return {
      requests: { ...this.#requests },
      injected: { ...this.#injected },
      remaining: this.#rules.map((active) => active.remaining ?? null),
    };
  }

  #handle(op: DiskFaultOp, args: unknown[], run: (...args: unknown[]) => unknown): unknown {
    this.#requests[op] = (this.#requests[op] ?? 0) + 1;
    const active = this.#rules.length === 0 ? undefined : this.#match(op, args);
    if (active === undefined) return this.#learnNames(op, args, run(...args));
    this.#injected[op] = (this.#injected[op] ?? 0) + 1;
    if (active.remaining !== undefined) active.remaining--;
    const { delayMs = 0, error } = active.rule;
    const answer = (): unknown => {
      if (error !== undefined) throw new FuseError(error, `injected into ${op} by the faulty disk`);
      return this.#learnNames(op, args, run(...args));
    };
    if (delayMs === 0) return answer();
    return new Promise((resolve) => setTimeout(resolve, delayMs)).then(async () => {
      const result = await answer();
      // The passthrough returns READ data in a buffer it reuses on its synchronous fast path; this
      // reply is written later, so it gets its own copy.
      return op === "read" && result instanceof Uint8Array ? Buffer.from(result) : result;
    });
  }

  #match(op: DiskFaultOp, args: unknown[]): ActiveRule | undefined {
    let path: string | undefined | null = null; // null: not computed yet
    for (const active of this.#rules) {
      if (!active.rule.ops.includes(op) || active.remaining === 0) continue;
      if (active.pattern !== undefined) {
        if (path === null) path = this.#pathOfRequest(op, args);
        if (path === undefined || !active.pattern.test(path)) continue;
      }
      if (active.rule.probability !== undefined && this.#prng.float() >= active.rule.probability) continue;
      return active;
    }
    return undefined;
  }

  /** The path a request acts on: parent + name for name ops, else the node's path (if known). */
  #pathOfRequest(op: DiskFaultOp, args: unknown[]): string | undefined {
    if (OPS_WITH_PARENT_AND_NAME.has(op)) {
      const parentPath = this.#pathOf(args[1] as number);
      if (parentPath === undefined) return undefined;
      return `${parentPath === "/" ? "" : parentPath}/${args[2] as string}`;
    }
    return this.#pathOf(args[1] as number);
  }

  #pathOf(nodeId: number): string | undefined {
    const parts: string[] = [];
    for (let id = nodeId, depth = 0; id !== ROOT_NODE_ID; depth++) {
      const seen = this.#names.get(id);
      if (seen === undefined || depth > 4096) return undefined;
      parts.push(seen.name);
      id = seen.parent;
    }
    return parts.length === 0 ? "/" : "/" + parts.reverse().join("/");
  }

  /** Records the names entries are given (LOOKUP/CREATE/MKNOD/MKDIR) and moved to (RENAME). */
  #learnNames(op: DiskFaultOp, args: unknown[], result: unknown): unknown {
    if (!OPS_RETURNING_ENTRY.has(op) && op !== "rename") return result;
    const learn = (value: unknown): unknown => {
      if (op === "rename") this.#renamed(args);
      else if (value !== null && typeof value === "object" && "nodeId" in value) {
        this.#names.set((value as { nodeId: number }).nodeId, {
          parent: args[1] as number,
          name: args[2] as string,
        });
      }
      return value;
    };
    return result instanceof Promise ? result.then(learn) : learn(result);
  }

  #renamed(args: unknown[]): void {
    const [, parent, name, newParent, newName] = args as [RequestContext, number, string, number, string];
    for (const [nodeId, seen] of this.#names) {
      if (seen.parent === parent && seen.name === name)
        this.#names.set(nodeId, { parent: newParent, name: newName });
    }
  }
}
