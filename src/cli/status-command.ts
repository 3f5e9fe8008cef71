// `litefs status [--url URL] [--config PATH] [--json]`: asks the running node (GET /status) and prints
// its role, the primary, its databases with their positions, its lag, and — on the primary — the
// connected replicas with the positions they are at. `--json` prints the node's answer as it is.

import http from "node:http";

import { parseFlagsOrExit, type CommandSpec } from "./flags.js";
import type { Subcommand } from "./main.js";
import { authHeaders, resolveAuthToken } from "./node-auth.js";
import { NODE_API_FLAGS, resolveNodeUrl } from "./node-url.js";

const SPEC = {
  name: "litefs status",
  args: "",
  summary: "Prints the running node's role, primary, databases with positions, lag and replicas.",
  flags: {
    ...NODE_API_FLAGS,
    json: { type: "boolean", description: "print the node's JSON answer as it is" },
  },
} as const satisfies CommandSpec;

/** The body of GET /status (node/litefs-node.ts `status`). */
export interface NodeStatus {
  nodeId: string;
  clusterId: string | null;
  role: "primary" | "replica";
  primary: { hostname: string; url: string };
  /** The lease epoch held or followed (decimal); absent from nodes older than the lease wiring. */
  epoch?: string;
  lease?: {
    type: string;
    candidate: boolean;
    holder: { hostname: string; url: string; nodeId: string | null; epoch: string } | null;
    expiresInMs?: number;
  };
  lagMs: number;
  dbs: Record<string, { pos: string; pageSize: number; pageCount: number; walMode: boolean }>;
  replication?: {
    connected: boolean;
    synced: boolean;
    lastError: string | null;
    connects: number;
    quarantines: number;
    /** Absent from nodes older than session 21. */
    refused?: { db: string; minTxid: string; maxTxid: string; refusals: number; snapshotWanted: boolean }[];
  };
  replicas?: {
    nodeId: string;
    remote: string;
    connectedAt: string;
    ready: boolean;
    bytesSent: number;
    snapshotsSent: number;
    positions: Record<string, string>;
  }[];
}

export const statusCommand: Subcommand = {
  summary: "show the running node's role, primary, databases, lag and replicas",
  run: async (argv) => {
    const parsed = parseFlagsOrExit(argv, SPEC);
    if (typeof parsed === "number") return parsed;
    const url = await resolveNodeUrl(parsed.values.url, parsed.values.config);
    const token = await resolveAuthToken(parsed.values.config);
    let text: string;
    try {
      text = await getText(`${url}/status`, authHeaders(token));
    } catch (err) {
      process.stderr.write(`litefs status: cannot reach ${url}: ${(err as Error).message}\n`);
      return 1;
    }
    if (parsed.values.json) {
      process.stdout.write(text.endsWith("\n") ? text : text + "\n");
      return 0;
    }
    process.stdout.write(formatStatus(JSON.parse(text) as NodeStatus));
    return 0;
  },
};

/** The human-readable form of a node's status. */
export function formatStatus(s: NodeStatus): string {
  const lines: string[] = [];
  lines.push(`node      ${s.nodeId} (${s.role})`);
  lines.push(`cluster   ${s.clusterId ?? "(none yet)"}`);
  lines.push(
    `primary   ${s.role === "primary" ? "this node" : s.primary.hostname || "(unknown)"} ${s.primary.url}`,
  );
  if (s.lease !== undefined) {
    const holder = s.lease.holder;
    const who = holder === null ? "nobody" : `${holder.hostname} ${holder.url}`;
    const expires = s.lease.expiresInMs === undefined ? "" : `, expires in ${s.lease.expiresInMs} ms`;
    lines.push(
      `lease     ${s.lease.type}, epoch ${s.epoch ?? "?"}, held by ${who}${s.lease.candidate ? "" : " (not a candidate)"}${expires}`,
    );
  }
  if (s.role === "replica") {
    lines.push(`lag       ${s.lagMs} ms`);
    const r = s.replication;
    if (r !== undefined) {
      const state = r.connected
        ? r.synced
          ? "connected, in sync once at least"
          : "connected, catching up"
        : "disconnected";
      lines.push(`stream    ${state}; ${r.connects} connection(s), ${r.quarantines} quarantine(s)`);
      if (r.lastError !== null) lines.push(`          last error: ${r.lastError}`);
      for (const f of r.refused ?? []) {
        const asked = f.snapshotWanted ? "; a snapshot of it is asked for" : "";
        lines.push(
          `          refused ${f.db} ${f.minTxid}-${f.maxTxid}.ltx ${f.refusals} time(s) in a row${asked}`,
        );
      }
    }
  }
  lines.push("");
  lines.push(
    table(
      ["DATABASE", "POSITION (TXID/CHECKSUM)", "PAGES", "MODE"],
      Object.entries(s.dbs).map(([name, db]) => [
        name,
        db.pos,
        String(db.pageCount),
        db.walMode ? "wal" : "rollback",
      ]),
    ),
  );
  if (s.replicas !== undefined) {
    lines.push("");
    if (s.replicas.length === 0) lines.push("replicas  none connected");
    else {
      const rows: string[][] = [];
      for (const r of s.replicas) {
        const dbs = Object.entries(r.positions);
        if (dbs.length === 0) rows.push([r.nodeId, r.remote, r.ready ? "yes" : "no", "", ""]);
        dbs.forEach(([db, pos], i) =>
          rows.push(i === 0 ? [r.nodeId, r.remote, r.ready ? "yes" : "no", db, pos] : ["", "", "", db, pos]),
        );
      }
      lines.push(table(["REPLICA", "REMOTE", "READY", "DATABASE", "POSITION"], rows));
    }
  }
  return lines.join("\n") + "\n";
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

function getText(url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${body.trim()}`));
        else resolve(body);
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
  });
}
