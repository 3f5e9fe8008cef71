// The passthrough example as a command:
//
//   node dist/examples/passthrough.js [options] SRC MOUNTPOINT
//
// mounts SRC at MOUNTPOINT (as root) and serves it until SIGINT/SIGTERM or `umount MOUNTPOINT`, then
// exits 0. Prints "mounted SRC at MOUNTPOINT" on stdout once the mount is ready. Options:
//   --allow-other            let every user access the mount
//   --default-permissions    let the kernel check permissions from the file modes
//   --direct-io              open every file with FOPEN_DIRECT_IO (no page cache)
//   --no-keep-cache          drop the page cache on every open
//   --entry-timeout-ms=N     name cache time (default 1000)
//   --attr-timeout-ms=N      attribute cache time (default 1000)
//   --negative-timeout-ms=N  cache time of names found missing (default 1000)
//   --fs-name=NAME           mount source and type fuse.NAME (default "passthrough")
//   --kernel-locks           leave POSIX locks to the kernel (as libfuse's passthrough_ll does)
//                            instead of answering GETLK/SETLK/SETLKW from our lock tables
// Importing this module (rather than running it) gives the PassthroughFileSystem class.

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { FuseSession } from "../src/fuse/index.js";
import { PassthroughFileSystem } from "./passthrough-fs.js";

export { PassthroughFileSystem, type PassthroughOptions } from "./passthrough-fs.js";

const USAGE =
  "usage: passthrough.js [--allow-other] [--default-permissions] [--direct-io] [--no-keep-cache] [--entry-timeout-ms=N] [--attr-timeout-ms=N] [--negative-timeout-ms=N] [--fs-name=NAME] [--kernel-locks] SRC MOUNTPOINT";

interface CliArgs {
  src: string;
  mountpoint: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  directIo: boolean;
  keepCache: boolean;
  entryTimeoutMs: number;
  attrTimeoutMs: number;
  negativeTimeoutMs: number;
  fsName: string;
  kernelLocks: boolean;
}

function parseArgs(argv: string[]): CliArgs {
  const positional: string[] = [];
  const a: Omit<CliArgs, "src" | "mountpoint"> = {
    allowOther: false,
    defaultPermissions: false,
    directIo: false,
    keepCache: true,
    entryTimeoutMs: 1000,
    attrTimeoutMs: 1000,
    negativeTimeoutMs: 1000,
    fsName: "passthrough",
    kernelLocks: false,
  };
  const number = (arg: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${arg}: not a non-negative number`);
    return n;
  };
  for (const arg of argv) {
    const [flag, value = ""] = arg.split("=", 2);
    if (flag === "--allow-other") a.allowOther = true;
    else if (flag === "--default-permissions") a.defaultPermissions = true;
    else if (flag === "--direct-io") a.directIo = true;
    else if (flag === "--no-keep-cache") a.keepCache = false;
    else if (flag === "--entry-timeout-ms") a.entryTimeoutMs = number(arg, value);
    else if (flag === "--attr-timeout-ms") a.attrTimeoutMs = number(arg, value);
    else if (flag === "--negative-timeout-ms") a.negativeTimeoutMs = number(arg, value);
    else if (flag === "--fs-name" && value !== "") a.fsName = value;
    else if (flag === "--kernel-locks") a.kernelLocks = true;
    else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 2) throw new Error("need SRC and MOUNTPOINT");
  return { ...a, src: path.resolve(positional[0]), mountpoint: path.resolve(positional[1]) };
}

async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  // The kernel already applied the caller's umask to create modes; ours must not apply a second one.
  process.umask(0);
  const fileSystem = new PassthroughFileSystem(args.src, {
    directIo: args.directIo,
    keepCache: args.keepCache,
  });
  const session = await FuseSession.mount(fileSystem, {
    mountpoint: args.mountpoint,
    fsName: args.fsName,
    allowOther: args.allowOther,
    defaultPermissions: args.defaultPermissions,
    entryTimeoutMs: args.entryTimeoutMs,
    attrTimeoutMs: args.attrTimeoutMs,
    negativeTimeoutMs: args.negativeTimeoutMs,
    posixLocks: !args.kernelLocks,
  });
  session.unmountOnSignals();
  process.stdout.write(`mounted ${args.src} at ${args.mountpoint}\n`);
  await session.closed;
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`passthrough: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
