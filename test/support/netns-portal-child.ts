// Runs inside a test network namespace (started by TestNetwork.openPortal through nsenter): listens on
// a Unix socket and forwards each connection to a TCP address in that namespace. Unix socket paths
// are not scoped by network namespace, so a process in the machine's own namespace — the test — can
// reach a server that only exists in the test network, without giving the machine any address in it.
//
//   node netns-portal-child.js SOCKET_PATH HOST PORT [LIFETIME_MS]
//
// Prints "portal listening on SOCKET_PATH" once ready. Exits on SIGTERM/SIGINT, or by itself after
// LIFETIME_MS (default 15 min), so a forgotten portal cannot outlive its test run.
import * as fs from "node:fs";
import * as net from "node:net";

function main(argv: string[]): void {
  const [socketPath, host, portText, lifetimeText = String(15 * 60_000)] = argv;
  const port = Number(portText);
  const lifetimeMs = Number(lifetimeText);
  if (socketPath === undefined || host === undefined || !Number.isInteger(port) || !(lifetimeMs > 0)) {
    process.stderr.write("usage: netns-portal-child.js SOCKET_PATH HOST PORT [LIFETIME_MS]\n");
    process.exitCode = 2;
    return;
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host, port, allowHalfOpen: true });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      from.on("close", () => sockets.delete(from));
    }
  });
  fs.rmSync(socketPath, { force: true });
  server.listen(socketPath, () => process.stdout.write(`portal listening on ${socketPath}\n`));
  const stop = (): void => {
    for (const socket of sockets) socket.destroy();
    server.close();
    fs.rmSync(socketPath, { force: true });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  setTimeout(stop, lifetimeMs).unref();
}

main(process.argv.slice(2));
