// A free TCP port on the loopback interface, for a node's HTTP server.
//
// The port is drawn at random below the kernel's ephemeral range (ip_local_port_range) and checked by
// binding it. Drawing it with listen(0) instead handed out a port of the ephemeral range, which any
// outgoing connection of a test running beside may take as its source port in the time between our
// release and the node's own bind — a CI run lost a node to EADDRINUSE that way. Below the range,
// only another explicit bind can take it.
import * as fs from "node:fs";
import * as net from "node:net";

import { FETCH_BAD_PORTS } from "../../src/config/check-config.js";

const LOWEST = 10_000;

function ephemeralLow(): number {
  try {
    const low = Number(
      fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port on 127.0.0.1 that was free a moment ago, outside the ephemeral range. Another explicit bind
 * could still take it before the caller's; a bind failure is reported clearly by the node that loses it.
 */
export async function freeLoopbackPort(): Promise<number> {
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    // A port fetch() refuses (10080 in this range): a node on it came up as primary while the bench's
    // fetch of its `/status` failed for 30 s with "bad port" — "no single primary" (session 21).
    if (!FETCH_BAD_PORTS.has(port) && (await bindable(port))) return port;
  }
  throw new Error(`freeLoopbackPort: no free port found in ${LOWEST}..${high - 1} after 50 tries`);
}
