// A free TCP port on the loopback interface, for a node's HTTP server.
import * as net from "node:net";

/**
 * Asks the kernel for a free port on 127.0.0.1 and releases it. Another process could take it before
 * the caller binds it; on a test machine that race is rare enough, and a bind failure is reported
 * clearly by the node that loses it.
 */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freeLoopbackPort: no TCP address"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
