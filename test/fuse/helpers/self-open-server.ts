// A FUSE server that does what a server must never do: it holds a file open in its OWN mount (opened
// and written on the thread pool, so that its main thread can answer). SIGKILLed, it closes that file on the way
// out and the kernel sends FLUSH to the dead server: without the crash guard the process hangs in
// state D. Usage: node self-open-server.js SRC MOUNTPOINT guard|no-guard — prints "holding" when ready.

import fs from "node:fs";
import path from "node:path";

import { PassthroughFileSystem } from "../../../examples/passthrough-fs.js";
import { FuseSession } from "../../../src/fuse/session.js";

const [src, mountpoint, guard] = process.argv.slice(2);
const session = await FuseSession.mount(new PassthroughFileSystem(src), {
  mountpoint,
  fsName: "self-open",
  crashGuard: guard === "guard",
});
// A plain descriptor, not a FileHandle: Node closes a FileHandle it garbage-collects — synchronously,
// on the main thread — and that close's FLUSH to this very mount could never be answered (the main
// thread answers requests): the server deadlocked by itself, before any SIGKILL. That was the crash
// guard tests' flake of sessions 5–8 (more FORGETs, from a neighbour's drop_caches, meant more
// allocations here and an earlier GC).
const fd = await new Promise<number>((resolve, reject) =>
  fs.open(path.join(mountpoint, "held"), "w+", (err, opened) =>
    err === null ? resolve(opened) : reject(err),
  ),
);
await new Promise<void>((resolve, reject) =>
  fs.write(fd, "x", (err) => (err === null ? resolve() : reject(err))),
);
process.stdout.write(`holding ${session.crashGuardPid ?? "no-guard"}\n`);
setInterval(() => undefined, 1 << 30);
