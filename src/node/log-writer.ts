// The node's logger: one line per event on a stream (stderr), as text (`msg key=value …`) or JSON
// (`{"level":…,"msg":…,…}`), per the config's `log` section. Implements the store's logging seam;
// bigints print as hex digits where they are TXIDs/checksums already formatted by the caller, else
// as decimal strings.

import type { LogFields, StoreLogger } from "../store/store-logger.js";

export interface LogWriterOptions {
  readonly format: "text" | "json";
  /** Prefix each line with an ISO time. */
  readonly timestamp: boolean;
  readonly debug: boolean;
  readonly write?: (line: string) => void;
}

type Level = "debug" | "info" | "warn" | "error";

export class LogWriter implements StoreLogger {
  readonly #opts: LogWriterOptions;
  readonly #write: (line: string) => void;

  constructor(opts: LogWriterOptions) {
    this.#opts = opts;
    this.#write = opts.write ?? ((line) => process.stderr.write(line));
  }

  get debugEnabled(): boolean {
    return this.#opts.debug;
  }

  debug(msg: string, fields?: LogFields): void {
    if (this.#opts.debug) this.#log("debug", msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.#log("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.#log("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.#log("error", msg, fields);
  }

  #log(level: Level, msg: string, fields: LogFields = {}): void {
    if (this.#opts.format === "json") {
      const record: Record<string, unknown> = {};
      if (this.#opts.timestamp) record.time = new Date().toISOString();
      record.level = level;
      record.msg = msg;
      for (const [k, v] of Object.entries(fields)) record[k] = typeof v === "bigint" ? v.toString() : v;
      this.#write(JSON.stringify(record) + "\n");
      return;
    }
    const parts: string[] = [];
    if (this.#opts.timestamp) parts.push(new Date().toISOString());
    if (level !== "info") parts.push(level.toUpperCase());
    parts.push(msg);
    for (const [k, v] of Object.entries(fields)) parts.push(`${k}=${textValue(v)}`);
    this.#write(parts.join(" ") + "\n");
  }
}

function textValue(v: unknown): string {
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}
