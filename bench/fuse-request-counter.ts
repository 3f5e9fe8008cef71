// Our passthrough with every handler call counted, for the benchmark's "where the time goes" section:
//
//   node dist/bench/fuse-request-counter.js [--kernel-locks] --counts FILE SRC MOUNTPOINT
//
// SIGUSR2 writes the counts since the last SIGUSR2 to FILE as JSON ({"getattr": 3, …}; setlk is split
// into setlk:read/write/unlock and setlkw) and resets them; FILE appears atomically (rename), so a
// client may delete it, signal, and poll for it. --kernel-locks hides getlk/setlk
// from the session so that INIT does not ask for POSIX_LOCKS and the kernel keeps fcntl locks locally,
// as libfuse's passthrough_ll does — to measure what lock round trips cost. Prints "mounted" when ready.

import * as fs from "node:fs";
import { FuseSession, type FuseFileSystem, type LockRequest } from "../src/fuse/index.js";
import { PassthroughFileSystem } from "../examples/passthrough.js";

const LOCK_HANDLERS = new Set(["getlk", "setlk"]);

function counted(inner: FuseFileSystem, counts: Map<string, number>, kernelLocks: boolean): FuseFileSystem {
  const bump = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);
  return new Proxy(inner, {
    get(target, prop, _receiver) {
      if (typeof prop !== "string") return undefined;
      if (kernelLocks && LOCK_HANDLERS.has(prop)) return undefined;
      const value = (target as unknown as Record<string, unknown>)[prop];
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (prop === "setlk") {
          const lock = args[2] as LockRequest;
          bump(lock.wait ? "setlkw" : `setlk:${lock.type}`);
        } else bump(prop);
        return method.apply(target, args); // `this` must be the real object (#private fields)
      };
    },
  });
}

async function main(argv: string[]): Promise<void> {
  const kernelLocks = argv.includes("--kernel-locks");
  const countsAt = argv.indexOf("--counts");
  const countsFile = countsAt >= 0 ? argv[countsAt + 1] : undefined;
  const [src, mountpoint] = argv.filter((a, i) => !a.startsWith("--") && i !== countsAt + 1);
  if (src === undefined || mountpoint === undefined || countsFile === undefined) {
    throw new Error("usage: [--kernel-locks] --counts FILE SRC MOUNTPOINT");
  }
  process.umask(0);
  const counts = new Map<string, number>();
  const fileSystem = counted(
    new PassthroughFileSystem(src, { directIo: false, keepCache: true }),
    counts,
    kernelLocks,
  );
  const session = await FuseSession.mount(fileSystem, {
    mountpoint,
    fsName: "passthrough-counted",
    entryTimeoutMs: 1000,
    attrTimeoutMs: 1000,
    negativeTimeoutMs: 1000,
  });
  session.unmountOnSignals();
  process.on("SIGUSR2", () => {
    fs.writeFileSync(`${countsFile}.tmp`, JSON.stringify(Object.fromEntries([...counts].sort())));
    fs.renameSync(`${countsFile}.tmp`, countsFile);
    counts.clear();
  });
  process.stdout.write("mounted\n");
  await session.closed;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`fuse-request-counter: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
