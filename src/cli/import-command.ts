// `litefs import --name DB PATH [--url URL] [--config PATH]`: sends a SQLite database file to the
// running node (POST /import), which commits it as one LTX file. Streams the file (multi-GB works)
// with a progress bar on stderr; prints the new position.

import fs from "node:fs";
import http from "node:http";

import { formatUsage, parseFlagsOrExit, type CommandSpec } from "./flags.js";
import type { Subcommand } from "./main.js";
import { authHeaders, resolveAuthToken } from "./node-auth.js";
import { NODE_API_FLAGS, resolveNodeUrl } from "./node-url.js";
import { TransferProgress } from "./transfer-progress.js";

const SPEC = {
  name: "litefs import",
  args: "PATH",
  summary: "Imports a SQLite database file into the running node as database NAME (one transaction).",
  flags: {
    name: { type: "string", description: "database name in the mount", valueName: "NAME" },
    ...NODE_API_FLAGS,
  },
} as const satisfies CommandSpec;

export const importCommand: Subcommand = {
  summary: "import a SQLite database file into the running node",
  run: async (argv) => {
    const parsed = parseFlagsOrExit(argv, SPEC);
    if (typeof parsed === "number") return parsed;
    const name = parsed.values.name;
    if (name === undefined || parsed.positionals.length !== 1) {
      process.stderr.write(`litefs import: need --name NAME and one PATH\n\n${formatUsage(SPEC)}`);
      return 2;
    }
    const file = parsed.positionals[0];
    const size = fs.statSync(file).size;
    const base = await resolveNodeUrl(parsed.values.url, parsed.values.config);
    const token = await resolveAuthToken(parsed.values.config);
    const url = new URL(`/import?name=${encodeURIComponent(name)}`, base);
    const progress = new TransferProgress(`import ${name}`, size);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url, {
        method: "POST",
        headers: {
          "Content-Type": "application/vnd.sqlite3",
          "Content-Length": String(size),
          ...authHeaders(token),
        },
      });
      const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
      let answered = false;
      req.on("response", (res) => {
        answered = true;
        // A refusal (401, 503) may come before the whole file was sent, and the node then closes the
        // connection: stop sending, and let the answer, not the broken pipe, be the outcome.
        if (res.statusCode !== 200) {
          stream.unpipe(req);
          stream.destroy();
        }
        let text = "";
        const done = (): void => {
          if (res.statusCode !== 200) req.destroy(); // the rest of the upload is not wanted
          resolve({ status: res.statusCode ?? 0, body: text });
        };
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", done);
        res.on("close", done);
        res.on("error", reject);
      });
      req.on("error", (err) => {
        if (!answered) reject(err);
      });
      stream.on("data", (chunk) => progress.add(chunk.length));
      stream.on("error", reject);
      stream.pipe(req);
    });
    progress.finish();
    if (status !== 200) {
      process.stderr.write(`litefs import: the node refused the import (${status}): ${errorText(body)}\n`);
      return 1;
    }
    const result = JSON.parse(body) as { pos: string };
    process.stdout.write(`imported ${name} at ${result.pos}\n`);
    return 0;
  },
};

function errorText(body: string): string {
  try {
    return (JSON.parse(body) as { error?: string }).error ?? body.trim();
  } catch {
    return body.trim();
  }
}
