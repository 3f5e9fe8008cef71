// Listen and target addresses in Go's `host:port` form, as LiteFS writes them: ":20202" (every
// interface), "localhost:8080", "10.0.0.1:20202", "[::1]:20202". Ports must be numeric here (Go would
// also look up service names such as ":http", which Node's listen() cannot take).

export interface HostPort {
  /** "" means every interface (Go's ":port"); IPv6 addresses come without brackets. */
  host: string;
  port: number;
}

export type HostPortParseResult = ({ ok: true } & HostPort) | { ok: false; reason: string };

const PORT = /^\d{1,5}$/;

export function parseHostPort(addr: string): HostPortParseResult {
  let host: string;
  let portText: string;
  if (addr.startsWith("[")) {
    const close = addr.indexOf("]");
    if (close < 0) return { ok: false, reason: `missing "]" in address "${addr}"` };
    host = addr.slice(1, close);
    if (addr[close + 1] !== ":")
      return { ok: false, reason: `expected ":port" after "[${host}]" in "${addr}"` };
    portText = addr.slice(close + 2);
  } else {
    const colon = addr.lastIndexOf(":");
    if (colon < 0) return { ok: false, reason: `expected host:port (such as ":20202"), got "${addr}"` };
    host = addr.slice(0, colon);
    if (host.includes(":")) return { ok: false, reason: `an IPv6 host needs brackets: "[${host}]:port"` };
    portText = addr.slice(colon + 1);
  }
  if (!PORT.test(portText) || Number(portText) > 65535) {
    return { ok: false, reason: `port must be a number from 0 to 65535, got "${portText}" in "${addr}"` };
  }
  return { ok: true, host, port: Number(portText) };
}
