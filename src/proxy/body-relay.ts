// Streams an upstream answer's body to the client with backpressure (Readable.pipe), and says how it
// ended: resolves once the client's side has taken the whole body, rejects when either side breaks
// off first (both are then destroyed, so the upstream connection is not reused half-read).
// stream.pipeline would do the same, but it allocates an AbortController (and a DOMException when it
// cleans up) plus several listeners per call: ~8 % of the proxy's CPU at a few thousand requests/s in
// bench/proxy.ts.

import type { Readable, Writable } from "node:stream";

export function relayBody(source: Readable, target: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      source.unpipe(target);
      source.destroy();
      target.destroy();
      reject(err);
    };
    source.once("error", fail);
    source.once("close", () => {
      if (!source.readableEnded) fail(new Error("the upstream connection closed before the end of the body"));
    });
    target.once("error", fail);
    target.once("close", () => {
      if (!target.writableFinished)
        fail(new Error("the client connection closed before the end of the body"));
    });
    target.once("finish", () => {
      settled = true;
      resolve();
    });
    source.pipe(target);
  });
}
