// The faulty disk as a process of its own (a FUSE server must not be served by the process that uses
// its mount, or a blocked request would block its own server):
//
//   node dist/test/support/faulty-disk-cli.js --source DIR --mount DIR --control SOCKET
//        [--seed N] [--cache-ms N] [--direct-io] [--rules JSON]
//
// mounts DIR (a real directory) at the mount point through the passthrough example wrapped in a
// FaultyFileSystem, and takes commands on the Unix socket SOCKET, one JSON object per line, each
// answered by one line ({"ok":true,…} or {"ok":false,"error":"…"}):
//   {"cmd":"set","rules":[…]}   replace the rules (see DiskFaultRule)
//   {"cmd":"clear"}             no rules
//   {"cmd":"stats"}             {"ok":true,"stats":{requests, injected, remaining}}
// --cache-ms is the kernel's name and attribute cache time (default 0: every request reaches the rules);
// --direct-io bypasses the page cache, so reads reach the rules too. Prints
// "faulty disk mounted SOURCE at MOUNT" when ready; unmounts and exits on SIGTERM/SIGINT.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as readline from "node:readline";
import { PassthroughFileSystem } from "../../examples/passthrough-fs.js";
import { FuseSession } from "../../src/fuse/index.js";
import { FaultyFileSystem, validateDiskFaultRules } from "./faulty-file-system.js";

interface CliArgs {
  source: string;
  mount: string;
  control: string;
  seed: number;
  cacheMs: number;
  directIo: boolean;
  rules: unknown;
}

const USAGE =
  "usage: faulty-disk-cli.js --source DIR --mount DIR --control SOCKET [--seed N] [--cache-ms N] [--direct-io] [--rules JSON]";

function parseArgs(argv: string[]): CliArgs {
  const values = new Map<string, string>();
  let directIo = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--direct-io") directIo = true;
    else if (
      ["--source", "--mount", "--control", "--seed", "--cache-ms", "--rules"].includes(flag) &&
      i + 1 < argv.length
    ) {
      values.set(flag, argv[++i]);
    } else throw new Error(`unexpected argument ${flag}`);
  }
  const required = (flag: string): string => {
    const value = values.get(flag);
    if (value === undefined) throw new Error(`${flag} is required`);
    return value;
  };
  const number = (flag: string, fallback: number): number => {
    const n = Number(values.get(flag) ?? fallback);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: not a non-negative integer`);
    return n;
  };
  return {
    source: path.resolve(required("--source")),
    mount: path.resolve(required("--mount")),
    control: path.resolve(required("--control")),
    seed: number("--seed", 1),
    cacheMs: number("--cache-ms", 0),
    directIo,
    rules: JSON.parse(values.get("--rules") ?? "[]"),
  };
}

/** Serves the control socket; resolves once it listens, with a function that closes it and its clients. */
async function serveControl(socketPath: string, faulty: FaultyFileSystem): Promise<() => void> {
  fs.rmSync(socketPath, { force: true });
  const clients = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    clients.add(socket);
    socket.on("close", () => clients.delete(socket));
    socket.on("error", () => socket.destroy());
    const lines = readline.createInterface({ input: socket, crlfDelay: Infinity });
    lines.on("line", (line) => {
      let reply: object;
      try {
        const request = JSON.parse(line) as { cmd?: unknown; rules?: unknown };
        if (request.cmd === "set") {
          faulty.setRules(validateDiskFaultRules(request.rules));
          reply = { ok: true };
        } else if (request.cmd === "clear") {
          faulty.setRules([]);
          reply = { ok: true };
        } else if (request.cmd === "stats") {
          reply = { ok: true, stats: faulty.stats() };
        } else {
          reply = { ok: false, error: `unknown cmd ${JSON.stringify(request.cmd)}` };
        }
      } catch (err) {
        reply = { ok: false, error: (err as Error).message };
      }
      if (!socket.destroyed) socket.write(JSON.stringify(reply) + "\n");
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return () => {
    for (const socket of clients) socket.destroy();
    server.close();
    fs.rmSync(socketPath, { force: true });
  };
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
  const faulty = new FaultyFileSystem(new PassthroughFileSystem(args.source, { directIo: args.directIo }), {
    seed: args.seed,
  });
  faulty.setRules(validateDiskFaultRules(args.rules));
  const session = await FuseSession.mount(faulty.fileSystem, {
    mountpoint: args.mount,
    fsName: "faulty-disk",
    entryTimeoutMs: args.cacheMs,
    attrTimeoutMs: args.cacheMs,
    negativeTimeoutMs: args.cacheMs,
  });
  session.unmountOnSignals();
  const closeControl = await serveControl(args.control, faulty);
  process.stdout.write(`faulty disk mounted ${args.source} at ${args.mount}\n`);
  await session.closed;
  closeControl();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`faulty disk: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
