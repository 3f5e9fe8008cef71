// Answers written straight onto a socket: after the server's `upgrade` event Node no longer provides a
// ServerResponse, so a refusal, a relayed non-101 answer or the 101 itself are written by hand. Every
// answer but the 101 closes the connection (its body is delimited by the close, which HTTP/1.1 allows
// for responses), so no length is needed.

import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

import { relayBody } from "./body-relay.js";
import { downstreamResponseHeaders } from "./forwarding-headers.js";

function head(status: number, statusMessage: string | undefined, flatHeaders: readonly string[]): string {
  let text = `HTTP/1.1 ${status} ${statusMessage ?? STATUS_CODES[status] ?? ""}\r\n`;
  for (let i = 0; i < flatHeaders.length; i += 2) {
    const value = flatHeaders[i + 1];
    // Header values come from Node's parser or from this program; refuse line breaks all the same.
    if (/[\r\n]/.test(flatHeaders[i]) || /[\r\n]/.test(value)) continue;
    text += `${flatHeaders[i]}: ${value}\r\n`;
  }
  return text + "\r\n";
}

/** Writes a complete answer with `body` and closes the socket. */
export function writeRawResponse(
  socket: Duplex,
  status: number,
  flatHeaders: readonly string[],
  body: string,
): void {
  if (socket.destroyed) return;
  const bytes = Buffer.from(body, "utf8");
  socket.write(
    head(status, undefined, [...flatHeaders, "Content-Length", String(bytes.length), "Connection", "close"]),
    "latin1",
  );
  socket.end(bytes);
}

/** Relays an upstream answer that refused the upgrade (not a 101), body included, then closes. */
export async function relayRawResponse(response: IncomingMessage, socket: Duplex): Promise<void> {
  const headers = downstreamResponseHeaders(response.rawHeaders, { drop: new Set(["content-length"]) });
  socket.write(
    head(response.statusCode ?? 502, response.statusMessage, [...headers, "Connection", "close"]),
    "latin1",
  );
  await relayBody(response, socket);
}

/** Writes the 101 Switching Protocols head relayed from upstream (Connection/Upgrade kept). */
export function writeSwitchingProtocols(socket: Duplex, response: IncomingMessage): void {
  const headers = downstreamResponseHeaders(response.rawHeaders, { upgrade: true });
  socket.write(head(101, response.statusMessage, headers), "latin1");
}
