// The two places a request can go: the app (`proxy.target`, host:port) and the primary's proxy (a URL
// the node view supplies). Only plain http is spoken upstream: both are on the node's private network.

import { parseHostPort } from "../config/host-port.js";
import { ProxyError } from "./proxy-error.js";
import type { UpstreamTarget } from "./upstream-request.js";

/** The app's address from `proxy.target`; Go's ":8081" (no host) means this machine. */
export function appTarget(target: string): UpstreamTarget {
  const parsed = parseHostPort(target);
  if (!parsed.ok) throw new RangeError(`proxy.target: ${parsed.reason}`);
  const host = parsed.host === "" ? "127.0.0.1" : parsed.host;
  return { host, port: parsed.port, description: `the app at ${target}`, downCode: "EPROXYAPPDOWN" };
}

/** The primary's proxy from the URL the node view gives; EPROXYNOPRIMARY when it is unusable. */
export function primaryTarget(url: string): UpstreamTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new ProxyError("EPROXYNOPRIMARY", `the primary's proxy URL "${url}" is not a URL`, { cause });
  }
  if (parsed.protocol !== "http:") {
    throw new ProxyError("EPROXYNOPRIMARY", `the primary's proxy URL "${url}" must be http:`);
  }
  const host = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return {
    host,
    port: parsed.port === "" ? 80 : Number(parsed.port),
    description: `the primary's proxy at ${parsed.origin}`,
    downCode: "EPROXYPRIMARYDOWN",
  };
}
