// Finds and reads `litefs.yml`, then parses it. With no path, the first file that exists among
// ./litefs.yml, ~/litefs.yml and /etc/litefs.yml (LiteFS's order) is used; an explicit path that does
// not exist is an error, never a fallback to the search. Every machine input (working directory, home,
// environment, hostname) is a parameter so that tests do not depend on the machine they run on.

import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Config } from "./config.js";
import { ConfigError } from "./config-error.js";
import type { Env } from "./env-expansion.js";
import { parseConfig } from "./parse-config.js";

export const CONFIG_FILE_NAME = "litefs.yml";
/** A config file is a few kilobytes; anything this large is the wrong file. */
export const CONFIG_FILE_BYTES_MAX = 1024 * 1024;

export interface LoadConfigOptions {
  /** Explicit file (`--config`); relative to `cwd`. When absent, the search paths are tried. */
  path?: string;
  cwd: string;
  /** Home directory for ~/litefs.yml; skipped when undefined or "". */
  home: string | undefined;
  env: Env;
  /** Expand `$VAR`… before parsing (false with `--no-expand-env`). */
  expandEnv: boolean;
  /** Default `lease.hostname` (default `os.hostname()`). */
  hostname?: string;
  /** Directory of the system-wide file (default "/etc"). */
  systemDir?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the file that was read. */
  path: string;
}

export function configSearchPaths(options: {
  cwd: string;
  home: string | undefined;
  systemDir?: string;
}): string[] {
  const paths = [path.resolve(options.cwd, CONFIG_FILE_NAME)];
  if (options.home) paths.push(path.resolve(options.home, CONFIG_FILE_NAME));
  paths.push(path.resolve(options.systemDir ?? "/etc", CONFIG_FILE_NAME));
  return paths;
}

export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const file =
    options.path === undefined ? await findConfigFile(options) : path.resolve(options.cwd, options.path);
  const text = await readConfigText(file, options.path === undefined ? file : options.path);
  // Issues name the file as the user gave it, or the absolute path when it was found by searching.
  const config = parseConfig(text, options.path ?? file, {
    env: options.env,
    expandEnv: options.expandEnv,
    hostname: options.hostname,
  });
  return { config, path: file };
}

async function findConfigFile(options: LoadConfigOptions): Promise<string> {
  const candidates = configSearchPaths(options);
  for (const candidate of candidates) {
    try {
      await stat(candidate);
      return candidate;
    } catch (err) {
      if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") continue;
      return candidate; // there but not usable: report that below rather than skip to the next file
    }
  }
  throw new ConfigError("not-found", [
    {
      file: CONFIG_FILE_NAME,
      path: "",
      line: undefined,
      column: undefined,
      message: `no config file found; looked in ${candidates.join(", ")} (use --config PATH)`,
    },
  ]);
}

async function readConfigText(file: string, shownName: string): Promise<string> {
  const fail = (kind: "not-found" | "unreadable", message: string, cause?: unknown): never => {
    const issue = { file: shownName, path: "", line: undefined, column: undefined, message };
    throw new ConfigError(kind, [issue], { cause });
  };
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT" || code === "ENOTDIR")
      return fail("not-found", `config file not found: ${file}`, err);
    if (code === "EISDIR") return fail("unreadable", `is a directory, not a config file: ${file}`, err);
    return fail("unreadable", `cannot read config file ${file}: ${(err as Error).message}`, err);
  }
  if (bytes.length > CONFIG_FILE_BYTES_MAX) {
    fail(
      "unreadable",
      `config file is ${bytes.length} bytes; more than ${CONFIG_FILE_BYTES_MAX} is not a config`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    return fail("unreadable", "config file is not valid UTF-8 text", err);
  }
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}
