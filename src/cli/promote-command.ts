// `litefs promote [--url URL] [--config PATH]`: asks the running node (a candidate replica) to become the
// primary at once (`POST /promote`): it asks the current primary to hand the lease over, the primary
// stops committing, lets this replica catch up, hands off, and this node takes the lease without waiting
// for a TTL. Prints the new epoch and the time it took; exit 1 with the node's reason when refused (a
// static lease, not a candidate, no primary, a timeout).

import { parseFlagsOrExit, type CommandSpec } from "./flags.js";
import type { Subcommand } from "./main.js";
import { authHeaders, resolveAuthToken } from "./node-auth.js";
import { NODE_API_FLAGS, resolveNodeUrl } from "./node-url.js";
import { httpRequest, type HttpAnswer } from "../net/http-request.js";

const SPEC = {
  name: "litefs promote",
  args: "",
  summary: "Makes the running node (a candidate replica) the primary through a handoff from the current one.",
  flags: { ...NODE_API_FLAGS },
} as const satisfies CommandSpec;

export const promoteCommand: Subcommand = {
  summary: "make the running replica the primary at once (handoff from the current primary)",
  run: async (argv) => {
    const parsed = parseFlagsOrExit(argv, SPEC);
    if (typeof parsed === "number") return parsed;
    if (parsed.positionals.length > 0) {
      process.stderr.write(`litefs promote: unexpected argument ${JSON.stringify(parsed.positionals[0])}\n`);
      return 2;
    }
    const url = await resolveNodeUrl(parsed.values.url, parsed.values.config);
    const token = await resolveAuthToken(parsed.values.config);
    let res: HttpAnswer;
    try {
      res = await httpRequest(`${url}/promote`, {
        method: "POST",
        headers: authHeaders(token),
        timeoutMs: 30_000,
      });
    } catch (err) {
      process.stderr.write(`litefs promote: cannot reach ${url}: ${(err as Error).message}\n`);
      return 1;
    }
    const text = res.text;
    let body: { epoch?: string; ms?: number; error?: string; code?: string } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = { error: text.trim() };
    }
    if (res.status !== 200) {
      process.stderr.write(
        `litefs promote: ${url} refused (HTTP ${res.status}${body.code === undefined ? "" : `, ${body.code}`}): ${body.error ?? ""}\n`,
      );
      return 1;
    }
    process.stdout.write(`${url} is the primary (epoch ${body.epoch ?? "?"}, ${body.ms ?? "?"} ms)\n`);
    return 0;
  },
};
