// `litefs mount [--config PATH] [--no-expand-env] [--verify] [-- CMD ARGS…]`: loads the config, opens
// the store (recovery), mounts `fuse.dir`, starts the HTTP API, logs "mount ready", on a replica waits
// until it has caught up with the primary once ("replica synced"; not with `skip-sync`), then runs `exec`
// (or the command after "--"): every command but the last to completion, the last with SIGINT/SIGTERM
// forwarded; `litefs mount` then unmounts and exits with the last command's code. Without a command
// it runs until SIGINT/SIGTERM and unmounts cleanly (exit 0). A primary stopped by a signal first hands
// its lease to a connected, caught-up candidate replica when the lease allows it (etcd, Consul).

import { spawn } from "node:child_process";
import os from "node:os";

import { ConfigError } from "../config/config-error.js";
import type { Config, ExecCommand } from "../config/config.js";
import { loadConfig } from "../config/load-config.js";
import { LitefsNode } from "../node/litefs-node.js";
import { LogWriter } from "../node/log-writer.js";
import { compileMode } from "./eager-compile.js";
import { parseFlagsOrExit, type CommandSpec } from "./flags.js";
import { warmSourceMaps } from "./source-map-warmup.js";
import type { Subcommand } from "./main.js";

const SPEC = {
  name: "litefs mount",
  args: "[-- CMD [ARGS...]]",
  summary:
    "Mounts the FUSE file system at fuse.dir and serves the node API at http.addr. Runs the config's " +
    "exec commands (or CMD) once ready, and exits with the last one's exit code.",
  flags: {
    config: { type: "string", description: "path of the config file", valueName: "PATH" },
    "no-expand-env": { type: "boolean", description: "do not expand $VAR and ${VAR} in the config file" },
    verify: {
      type: "boolean",
      description: "recompute every page checksum at startup instead of trusting saved ones",
    },
  },
} as const satisfies CommandSpec;

export const mountCommand: Subcommand = {
  summary: "mount the file system and run the node",
  run: runMount,
};

async function runMount(argv: string[]): Promise<number> {
  const parsed = parseFlagsOrExit(argv, SPEC);
  if (typeof parsed === "number") return parsed;
  if (parsed.positionals.length > 0) {
    process.stderr.write(
      `litefs mount: unexpected argument ${JSON.stringify(parsed.positionals[0])}; put a command after "--"\n`,
    );
    return 2;
  }

  let config: Config;
  try {
    ({ config } = await loadConfig({
      path: parsed.values.config,
      cwd: process.cwd(),
      home: os.homedir(),
      env: process.env,
      expandEnv: !parsed.values["no-expand-env"],
    }));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`litefs mount: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  const log = new LogWriter({
    format: config.log.format,
    timestamp: config.log.timestamp,
    debug: config.log.debug,
  });
  let node: LitefsNode;
  try {
    node = await LitefsNode.start({ config, log, verify: parsed.values.verify });
  } catch (err) {
    if (config.exitOnError) throw err;
    // exit-on-error: false keeps the process (and its data directory) around for debugging.
    log.error("startup failed; staying up because exit-on-error is false", { error: (err as Error).message });
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    return 1;
  }
  log.info("mount ready", {
    dir: config.fuse.dir,
    http: `:${node.httpPort}`,
    role: node.role,
    ...(node.proxy === null ? {} : { proxy: node.proxy.url }),
    compile: compileMode(),
  });
  // Off the critical paths later (a handoff's first formatted stack parsed maps for 13.6 ms).
  void warmSourceMaps().then((parsed) => log.debug("source maps parsed", { modules: parsed }));

  const commands: ExecCommand[] =
    parsed.rest.length > 0
      ? [{ cmd: parsed.rest.join(" "), argv: parsed.rest, ifCandidate: false }]
      : config.exec.filter((c) => !c.ifCandidate || config.lease.candidate);

  let code = 0;
  let stopping = false;
  let signalled = false;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      stopping = true;
      signalled = true;
      log.info("signal received, unmounting", { signal });
      resolve(0);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    node.session.closed
      .then(() => {
        if (stopping) return;
        log.warn("the mount was unmounted from outside; stopping");
        resolve(1);
      })
      .catch(() => undefined);
  });

  try {
    if (commands.length > 0 && node.role === "replica" && !config.skipSync) {
      log.info("waiting to catch up with the primary before running the command", {
        primary: config.lease.advertiseUrl,
      });
      const stop = new AbortController();
      void stopped.then(() => stop.abort());
      if (!(await node.waitForSync(stop.signal))) return await stopped;
      log.info("replica synced");
    }
    if (commands.length === 0) {
      code = await stopped;
    } else {
      code = await runCommands(commands, log, stopped);
    }
  } finally {
    stopping = true;
    // A primary stopped by a signal hands its lease to a caught-up candidate replica first (no TTL wait).
    if (signalled && node.role === "primary") {
      if (await node.handOffForShutdown()) log.info("lease handed off before stopping");
    }
    await node.stop();
  }
  return code;
}

/** Runs `commands`: all but the last to completion (a failure stops there), the last as the app. */
async function runCommands(
  commands: ExecCommand[],
  log: LogWriter,
  stopped: Promise<number>,
): Promise<number> {
  for (let i = 0; i < commands.length; i++) {
    const last = i === commands.length - 1;
    const command = commands[i];
    log.info(last ? "starting application" : "running command", { cmd: command.cmd });
    const child = spawn(command.argv[0], command.argv.slice(1), { stdio: "inherit" });
    const exited = new Promise<number>((resolve) => {
      child.once("error", (err) => {
        log.error("command failed to start", { cmd: command.cmd, error: err.message });
        resolve(127);
      });
      child.once("exit", (code, signal) =>
        resolve(code ?? (signal === null ? 1 : 128 + (os.constants.signals[signal] ?? 0))),
      );
    });
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    try {
      const outcome = await Promise.race([exited, stopped.then(() => exited)]);
      log.info("command exited", { cmd: command.cmd, code: outcome });
      if (last || outcome !== 0) return outcome;
    } finally {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
    }
  }
  return 0;
}
