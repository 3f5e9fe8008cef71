// A lease holder in its own process, so that a test can kill it with SIGKILL (renewals stop mid-flight,
// nothing is released). Usage: node etcd-holder-child.js <options JSON>; prints "acquired <epoch>",
// then keeps the lease until killed.
import { EtcdLeaser } from "../../src/lease/etcd-leaser.js";

const options = JSON.parse(process.argv[2] ?? "{}") as {
  endpoints: string[];
  key: string;
  name: string;
  ttlMs: number;
};
const leaser = new EtcdLeaser({
  endpoints: options.endpoints,
  key: options.key,
  ttlMs: options.ttlMs,
  identity: {
    nodeId: `id-${options.name}`,
    hostname: options.name,
    advertiseURL: `http://${options.name}:20202`,
  },
});
const lease = await leaser.acquire();
lease.onLost((error) => {
  process.stdout.write(`lost ${error.message}\n`);
  process.exit(3);
});
process.stdout.write(`acquired ${lease.epoch}\n`);
setInterval(() => undefined, 60_000);
