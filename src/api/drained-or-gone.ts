// Waiting for an HTTP response to take more bytes after `write` returned false — or for its client to
// go away, which ends the wait with an error. A response whose client is already gone rejects at once:
// its "close" has fired and "drain" would never come.

import type http from "node:http";

/** Resolves on "drain"; rejects with `gone()` on "close" (or at once when `res` is destroyed). */
export function drainedOrGone(res: http.ServerResponse, gone: () => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onClose = (): void => {
      res.off("drain", onDrain);
      reject(gone());
    };
    const onDrain = (): void => {
      res.off("close", onClose);
      resolve();
    };
    if (res.destroyed) {
      reject(gone());
      return;
    }
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}
