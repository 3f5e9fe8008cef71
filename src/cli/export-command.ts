// `litefs export --name DB PATH [--url URL] [--config PATH]`: downloads a consistent copy of database
// NAME from the running node (GET /export) into PATH, streaming it to a temporary file beside PATH
// with a progress bar on stderr, then renaming it into place (PATH is never left half-written).

import fs from "node:fs";
import http from "node:http";
import { pipeline } from "node:stream/promises";

import { formatUsage, parseFlagsOrExit, type CommandSpec } from "./flags.js";
import type { Subcommand } from "./main.js";
import { authHeaders, resolveAuthToken } from "./node-auth.js";
import { NODE_API_FLAGS, resolveNodeUrl } from "./node-url.js";
import { TransferProgress } from "./transfer-progress.js";

const SPEC = {
  name: "litefs export",
  args: "PATH",
  summary: "Writes a consistent copy of database NAME from the running node to PATH.",
  flags: {
    name: { type: "string", description: "database name in the mount", valueName: "NAME" },
    ...NODE_API_FLAGS,
  },
} as const satisfies CommandSpec;

export const exportCommand: Subcommand = {
  summary: "export a database from the running node to a file",
  run: async (argv) => {
    const parsed = parseFlagsOrExit(argv, SPEC);
    if (typeof parsed === "number") return parsed;
    const name = parsed.values.name;
    if (name === undefined || parsed.positionals.length !== 1) {
      process.stderr.write(`litefs export: need --name NAME and one PATH\n\n${formatUsage(SPEC)}`);
      return 2;
    }
    const file = parsed.positionals[0];
    const base = await resolveNodeUrl(parsed.values.url, parsed.values.config);
    const token = await resolveAuthToken(parsed.values.config);
    const url = new URL(`/export?name=${encodeURIComponent(name)}`, base);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(url, { headers: authHeaders(token) }, resolve).on("error", reject);
    });
    if (res.statusCode !== 200) {
      let text = "";
      for await (const chunk of res) text += String(chunk);
      process.stderr.write(
        `litefs export: the node refused the export (${res.statusCode}): ${text.trim()}\n`,
      );
      return 1;
    }
    const length = Number(res.headers["content-length"]);
    const progress = new TransferProgress(`export ${name}`, Number.isFinite(length) ? length : undefined);
    const temp = `${file}.litefs-export.tmp`;
    try {
      res.on("data", (chunk: Buffer) => progress.add(chunk.length));
      await pipeline(res, fs.createWriteStream(temp));
      if (Number.isFinite(length) && fs.statSync(temp).size !== length) {
        throw new Error(`the node sent ${fs.statSync(temp).size} of ${length} bytes`);
      }
      fs.renameSync(temp, file);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
    progress.finish();
    process.stdout.write(`exported ${name} at ${String(res.headers["litefs-pos"])} to ${file}\n`);
    return 0;
  },
};
