// A way into a test network from the machine's own namespace, without giving the machine an address
// in it: a forwarder process in one of the network's namespaces listens on a Unix socket (paths are
// not scoped by network namespace) and connects to `host:port`; a FaultProxy on loopback in front of
// that socket gives the test a plain TCP port — and faults that act on this path only.
import * as path from "node:path";
import { FaultProxy } from "./fault-proxy.js";
import { SUPPORT_DIST_DIR } from "./paths.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";
import type { TrackedProcess } from "./tracked-process.js";

/** `127.0.0.1:port` reaches `host:targetPort` in the network. */
export interface NetworkPortal {
  readonly port: number;
  /** The loopback proxy in front of the portal: its faults act on this path only. */
  readonly proxy: FaultProxy;
  /** Stops the proxy and the forwarder. Idempotent. */
  close(): Promise<void>;
}

/** What a portal needs of the network (TestNetwork). */
export interface PortalNetwork {
  address(host: string): string;
  spawn(
    host: string,
    options: { label: string; command: string; args: readonly string[] },
  ): Promise<TrackedProcess>;
}

const READY_TIMEOUT_MS = 10_000;

/** Starts the forwarder in `via`'s namespace and the proxy; `onClose` runs once when it is closed. */
export async function openNetworkPortal(
  network: PortalNetwork,
  host: string,
  targetPort: number,
  via: string,
  onClose: () => void,
): Promise<NetworkPortal> {
  const dir = makeTempDir("netns-portal");
  const socketPath = path.join(dir, "portal.sock");
  const label = `portal to ${host}:${targetPort} via ${via}`;
  let forwarder: TrackedProcess | undefined;
  let proxy: FaultProxy;
  try {
    forwarder = await network.spawn(via, {
      label,
      command: process.execPath,
      args: [
        path.join(SUPPORT_DIST_DIR, "netns-portal-child.js"),
        socketPath,
        network.address(host),
        String(targetPort),
      ],
    });
    await forwarder.waitForLine(/^portal listening/, READY_TIMEOUT_MS);
    proxy = await FaultProxy.start({ target: { path: socketPath }, label });
  } catch (err) {
    await forwarder?.stop(1_000);
    removeTempDir(dir);
    throw err;
  }
  const started = forwarder;
  let closed: Promise<void> | undefined;
  return {
    port: proxy.port,
    proxy,
    close: () => {
      closed ??= (async () => {
        onClose();
        await proxy.close();
        await started.stop(2_000);
        removeTempDir(dir);
      })();
      return closed;
    },
  };
}
