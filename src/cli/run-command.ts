// `litefs run [--url URL] [--config PATH] [--promote] [--if-candidate] [--with-halt-lock-on DB] -- CMD…`:
// runs CMD on this node, as LiteFS's `litefs run` — typically a migration run from any node:
// - `--if-candidate`: run CMD only when the node is a lease candidate (else print why and exit 0);
// - `--promote`: first ask the node to become the primary (`POST /promote`; fails when it cannot);
// - `--with-halt-lock-on DB`: hold DB's HALT lock for CMD's whole run (`POST /halt/hold` on the node,
//   docs/node-api.md "HALT lock"), so that CMD may write DB through the mount even on a replica. The
//   lock is bound to that request's connection: it goes when CMD exits — or if this process dies.
// Exits with CMD's exit code (128 + signal number when a signal ended it). SIGINT and SIGTERM are passed
// on to CMD.

import { spawn } from "node:child_process";
import http from "node:http";
import os from "node:os";

import { formatUsage, parseFlagsOrExit, type CommandSpec } from "./flags.js";
import type { Subcommand } from "./main.js";
import { authHeaders, resolveAuthToken } from "./node-auth.js";
import { NODE_API_FLAGS, resolveNodeUrl } from "./node-url.js";

const SPEC = {
  name: "litefs run",
  args: "-- CMD [ARGS...]",
  summary: "Runs CMD on the running node, optionally as the primary or holding a database's HALT lock.",
  flags: {
    ...NODE_API_FLAGS,
    promote: { type: "boolean", description: "ask the node to become the primary before running CMD" },
    "if-candidate": { type: "boolean", description: "run CMD only if the node is a lease candidate" },
    "with-halt-lock-on": {
      type: "string",
      description: "hold the HALT lock of database DB while CMD runs (writes from a replica)",
      valueName: "DB",
    },
  },
} as const satisfies CommandSpec;

export const runCommand: Subcommand = {
  summary: "run a command on the node (as primary, or holding a database's HALT lock)",
  run: async (argv) => {
    const parsed = parseFlagsOrExit(argv, SPEC);
    if (typeof parsed === "number") return parsed;
    const command = parsed.rest;
    if (command.length === 0 || parsed.positionals.length > 0) {
      process.stderr.write(`litefs run: the command goes after --\n\n${formatUsage(SPEC)}`);
      return 2;
    }
    const base = await resolveNodeUrl(parsed.values.url, parsed.values.config);
    const headers = authHeaders(await resolveAuthToken(parsed.values.config));
    try {
      if (parsed.values["if-candidate"]) {
        const status = JSON.parse(await request("GET", `${base}/status`, headers)) as {
          lease?: { candidate?: unknown };
        };
        if (status.lease?.candidate !== true) {
          process.stdout.write("litefs run: this node is not a lease candidate: not running the command\n");
          return 0;
        }
      }
      if (parsed.values.promote) await request("POST", `${base}/promote`, headers);
    } catch (err) {
      process.stderr.write(`litefs run: ${(err as Error).message}\n`);
      return 1;
    }
    let hold: HaltHold | null = null;
    const db = parsed.values["with-halt-lock-on"];
    if (db !== undefined) {
      try {
        hold = await holdHaltLock(base, db, headers);
      } catch (err) {
        process.stderr.write(`litefs run: cannot take the HALT lock of ${db}: ${(err as Error).message}\n`);
        return 1;
      }
    }
    try {
      return await runChild(command);
    } finally {
      hold?.release();
    }
  },
};

interface HaltHold {
  release(): void;
}

/** `POST /halt/hold`: resolves once the node answered that it holds the lock; the request stays open. */
function holdHaltLock(base: string, db: string, headers: Record<string, string>): Promise<HaltHold> {
  const url = new URL(`/halt/hold?db=${encodeURIComponent(db)}`, base);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { ...headers, "Content-Length": "0" } });
    req.once("error", reject);
    req.once("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      const onData = (chunk: string): void => {
        text += chunk;
        if (res.statusCode === 200 && text.includes("\n")) {
          res.off("data", onData);
          res.resume();
          req.off("error", reject);
          // A later failure of the connection means the node let go: nothing more to do here.
          req.on("error", () => undefined);
          resolve({ release: () => req.destroy() });
        }
      };
      res.on("data", onData);
      res.once("end", () => reject(new Error(`${res.statusCode} ${text.trim()}`)));
    });
    req.end();
  });
}

/** One request; resolves with the body of a 200 answer, rejects with the status and body otherwise. */
function request(method: string, url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, "Content-Length": "0" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.once("end", () => {
        if (res.statusCode === 200) resolve(text);
        else reject(new Error(`${method} ${new URL(url).pathname}: ${res.statusCode} ${text.trim()}`));
      });
    });
    req.once("error", (err) => reject(new Error(`cannot reach ${url}: ${err.message}`)));
    req.end();
  });
}

function runChild(command: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: "inherit" });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const onInt = forward("SIGINT");
    const onTerm = forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const done = (code: number): void => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve(code);
    };
    child.once("error", (err) => {
      process.stderr.write(`litefs run: cannot run ${command[0]}: ${err.message}\n`);
      done(127);
    });
    child.once("exit", (code, signal) =>
      done(code ?? 128 + (signal === null ? 0 : (os.constants.signals[signal] ?? 0))),
    );
  });
}
