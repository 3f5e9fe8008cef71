// A FUSE server that does what a server must never do: it holds a file open in its OWN mount (opened
// on the thread pool, so that its main thread can answer). SIGKILLed, it closes that file on the way
// out and the kernel sends FLUSH to the dead server: without the crash guard the process hangs in
// state D. Usage: node self-open-server.js SRC MOUNTPOINT guard|no-guard — prints "holding" when ready.

import fsp from "node:fs/promises";
import path from "node:path";

import { PassthroughFileSystem } from "../../../examples/passthrough-fs.js";
import { FuseSession } from "../../../src/fuse/session.js";

const [src, mountpoint, guard] = process.argv.slice(2);
const session = await FuseSession.mount(new PassthroughFileSystem(src), {
  mountpoint,
  fsName: "self-open",
  crashGuard: guard === "guard",
});
const handle = await fsp.open(path.join(mountpoint, "held"), "w+");
await handle.write("x");
process.stdout.write(`holding ${session.crashGuardPid ?? "no-guard"}\n`);
setInterval(() => undefined, 1 << 30);
