// Serves a registry's exposition on node:http (`GET /metrics`). Rendering is synchronous and complete
// before anything is sent, so a failing collect callback gives a clean 500, never half an exposition.

import type http from "node:http";

import type { Registry } from "./registry.js";
import { EXPOSITION_CONTENT_TYPE } from "./text-format.js";

export function handleMetricsRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  registry: Registry,
): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" });
    res.end(`method ${req.method} not allowed on metrics; use GET\n`);
    return;
  }
  let body: string;
  try {
    body = registry.exposition();
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end(`cannot render metrics: ${err instanceof Error ? err.message : String(err)}\n`);
    return;
  }
  res.writeHead(200, {
    "content-type": EXPOSITION_CONTENT_TYPE,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
