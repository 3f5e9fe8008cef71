// The iproute2 side of test networks: running `ip`/`tc`, listing and removing network namespaces
// (with whatever still runs inside them), removing those a crashed test run left behind, and probing
// what this machine can do (namespaces at all; netem).
//
// Every namespace a test makes is named `ltfn-<owner pid>-<random>-<role>`: the prefix marks it as
// ours, the pid says whose it is, so a later run can tell a leftover (owner gone) from a namespace
// another test process is using right now.
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";

/** Every namespace a TestNetwork makes starts with this. */
export const NETNS_NAME_ROOT = "ltfn-";

const COMMAND_TIMEOUT_MS = 10_000;

export type NetnsErrorCode =
  | "NETNS_UNAVAILABLE" // this machine (or user) cannot make network namespaces
  | "NETNS_COMMAND" // an ip/tc command failed
  | "NETNS_NETEM_UNAVAILABLE" // the kernel has no netem qdisc
  | "NETNS_ARGUMENT" // a bad host name, unknown host, bad number
  | "NETNS_DESTROYED"; // the network was already destroyed

export class NetnsError extends Error {
  override readonly name = "NetnsError";
  constructor(
    readonly code: NetnsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Runs `ip`/`tc`/`nsenter` (no shell); resolves with stdout, rejects with NETNS_COMMAND and stderr. */
export function runNetCommand(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else {
        const detail = stderr.trim() || err.message;
        reject(new NetnsError("NETNS_COMMAND", `${command} ${args.join(" ")}: ${detail}`, { cause: err }));
      }
    });
  });
}

/** Names of all network namespaces `ip netns` knows (those under /run/netns). */
export function listNamespaces(): string[] {
  const result = spawnSync("ip", ["netns", "list"], { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS });
  if (result.status !== 0) return [];
  return result.stdout
    .split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name !== "");
}

/**
 * Kills (SIGKILL) every process whose network namespace is `name`, then deletes the namespace (its
 * links go with it). Synchronous, so that it also works from a process 'exit' hook. Returns false
 * when the namespace could not be deleted (it is then left; the caller reports it).
 */
export function removeNamespaceSync(name: string): boolean {
  const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS });
  for (const pid of (pids.stdout ?? "").split("\n").filter((line) => /^\d+$/.test(line))) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  const deleted = spawnSync("ip", ["netns", "del", name], { stdio: "ignore", timeout: COMMAND_TIMEOUT_MS });
  return deleted.status === 0 || !fs.existsSync(`/run/netns/${name}`);
}

/**
 * Removes every namespace whose name starts with `prefix` (which must start with "ltfn-", so no
 * namespace of anyone else can be hit), killing what runs inside. Returns the names removed.
 */
export function removeNetworksByPrefix(prefix: string): string[] {
  if (!prefix.startsWith(NETNS_NAME_ROOT)) {
    throw new NetnsError(
      "NETNS_ARGUMENT",
      `removeNetworksByPrefix: ${prefix} does not start with ${NETNS_NAME_ROOT}`,
    );
  }
  return listNamespaces().filter((name) => name.startsWith(prefix) && removeNamespaceSync(name));
}

/**
 * Removes the namespaces of test runs whose process is gone (a crashed or killed run never cleaned
 * up). Namespaces of live test processes are left alone. Returns the names removed.
 */
export function removeStaleNetworks(): string[] {
  const removed: string[] = [];
  for (const name of listNamespaces()) {
    const match = new RegExp(`^${NETNS_NAME_ROOT}(\\d+)-`).exec(name);
    if (match === null || processIsAlive(Number(match[1]))) continue;
    if (removeNamespaceSync(name)) removed.push(name);
  }
  return removed;
}

export type Capability = { supported: true } | { supported: false; reason: string };

let netnsCapability: Capability | undefined;
let netemCapability: Promise<Capability> | undefined;

/**
 * Whether this process can build a test network: root, iproute2 and nsenter present, and a probe
 * namespace with a bridge and a veth pair can be made (and is removed again). Cached.
 */
export function netnsSupport(): Capability {
  netnsCapability ??= probeNetns();
  return netnsCapability;
}

/** Whether the kernel has the netem qdisc (tc delay/loss), tried on a veth in a probe namespace. Cached. */
export function netemSupport(): Promise<Capability> {
  netemCapability ??= probeNetem();
  return netemCapability;
}

function probeNetns(): Capability {
  if (process.getuid?.() !== 0) return { supported: false, reason: "network namespaces need root" };
  for (const tool of ["ip", "nsenter"]) {
    if (spawnSync(tool, ["-V"], { stdio: "ignore" }).error !== undefined) {
      return { supported: false, reason: `${tool} is not installed` };
    }
  }
  const name = `${NETNS_NAME_ROOT}${process.pid}-probe`;
  try {
    for (const args of [
      ["netns", "add", name],
      ["-n", name, "link", "add", "br0", "type", "bridge"],
      ["-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
      ["-n", name, "link", "set", "probe0", "master", "br0"],
    ]) {
      const result = spawnSync("ip", args, { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS });
      if (result.status !== 0) {
        return { supported: false, reason: `ip ${args.join(" ")} failed: ${result.stderr.trim()}` };
      }
    }
    return { supported: true };
  } finally {
    removeNamespaceSync(name);
  }
}

async function probeNetem(): Promise<Capability> {
  const base = netnsSupport();
  if (!base.supported) return base;
  const name = `${NETNS_NAME_ROOT}${process.pid}-netem-probe`;
  try {
    await runNetCommand("ip", ["netns", "add", name]);
    await runNetCommand("ip", [
      "-n",
      name,
      "link",
      "add",
      "probe0",
      "type",
      "veth",
      "peer",
      "name",
      "probe1",
    ]);
    await runNetCommand("tc", ["-n", name, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms"]);
    return { supported: true };
  } catch (err) {
    return { supported: false, reason: `tc netem does not work here: ${(err as Error).message}` };
  } finally {
    removeNamespaceSync(name);
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
