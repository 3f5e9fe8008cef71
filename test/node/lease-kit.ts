// Pieces shared by the lease tests of a running node (test/node/lease-*.test.ts): `litefs mount` nodes
// on a real etcd (test/support/etcd.ts) with a short TTL, their `/status`, and waiting for conditions.

import { LitefsNode } from "../support/litefs-node.js";

export const TTL = "2s";
export const TTL_MS = 2000;

export interface NodeStatusBody {
  nodeId: string;
  role: "primary" | "replica";
  epoch: string;
  epochSeen: string;
  primary: { hostname: string; url: string };
  lease: { type: string; holder: { hostname: string; url: string; epoch: string } | null };
  replication?: { connected: boolean; synced: boolean; lastError: string | null };
  replicas?: { nodeId: string; ready: boolean; candidate: boolean }[];
  dbs: Record<string, { pos: string }>;
}

/** Starts a `litefs mount` node leasing through etcd at `endpoints` under `key`. */
export function startEtcdNode(
  name: string,
  endpoints: readonly string[],
  key: string,
  lease: Record<string, unknown> = {},
): Promise<LitefsNode> {
  return LitefsNode.start({
    config: {
      lease: {
        type: "etcd",
        candidate: true,
        hostname: name,
        ttl: TTL,
        "lock-delay": "500ms",
        "demote-delay": "1s",
        etcd: { endpoints: [...endpoints], key },
        ...lease,
      },
    },
  });
}

export async function nodeStatus(node: LitefsNode): Promise<NodeStatusBody> {
  const res = await fetch(`${node.httpUrl}/status`, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`GET /status: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as NodeStatusBody;
}

/** The status of `node`, or null while it does not answer. */
export async function tryStatus(node: LitefsNode): Promise<NodeStatusBody | null> {
  try {
    return await nodeStatus(node);
  } catch {
    return null;
  }
}

/** Polls `check` every 20 ms until it returns a value other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: string | null = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err instanceof Error ? err.message : "failed";
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError === null ? "" : `: ${lastError}`}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The one node of `nodes` whose status says primary, once exactly one does (others may be down). */
/** Waits until `node` is a replica following `primary` (by its API URL). */
export async function waitFollowing(node: LitefsNode, primary: LitefsNode, what?: string): Promise<void> {
  await waitFor(what ?? `${node.httpUrl} follows ${primary.httpUrl}`, async () => {
    const s = await nodeStatus(node);
    return s.role === "replica" && s.primary.url === primary.httpUrl ? true : undefined;
  });
}

export async function waitForPrimary(nodes: readonly LitefsNode[], timeoutMs = 20_000): Promise<LitefsNode> {
  return waitFor(
    "exactly one primary",
    async () => {
      const roles = await Promise.all(nodes.map(async (n) => (n.running ? await tryStatus(n) : null)));
      const primaries = nodes.filter((_, i) => roles[i]?.role === "primary");
      return primaries.length === 1 ? primaries[0] : undefined;
    },
    timeoutMs,
  );
}

/** Waits until every node in `nodes` shows the same position for `db` as `primary`; returns it. */
export async function waitConverged(
  primary: LitefsNode,
  nodes: readonly LitefsNode[],
  db: string,
  timeoutMs = 20_000,
): Promise<string> {
  return waitFor(
    `${db} converged on ${nodes.length} node(s)`,
    async () => {
      const want = (await nodeStatus(primary)).dbs[db]?.pos;
      if (want === undefined) return undefined;
      for (const node of nodes) {
        if ((await nodeStatus(node)).dbs[db]?.pos !== want) return undefined;
      }
      return want;
    },
    timeoutMs,
  );
}
