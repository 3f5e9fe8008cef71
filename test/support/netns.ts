// A small test network of Linux network namespaces: one namespace per host, each with one interface
// `eth0` (a veth pair) plugged into a bridge that lives in a namespace of its own (the "hub"). Nothing
// is added to the machine's own namespace: no bridge, no route, no address. Hosts get addresses
// x.y.z.1, .2, … of a /24 chosen so that no address or route of the machine overlaps it (default pool
// 10.213.0.0/16), so a test can only ever reach its own hosts.
//
// Faults, all without iptables/nftables (absent here) and healed by heal():
//   isolate(host)     the host's hub port leaves the bridge: its link stays up, every frame to or from
//                     it is dropped silently (a cut cable beyond the switch — peers see timeouts).
//   partition(a, b)   a and b each get a permanent neighbour entry giving the other's address a MAC
//                     nobody has: frames between them vanish silently, both keep talking to the rest.
//   impair(host, …)   netem delay/jitter/loss on both ends of the host's veth (needs sch_netem).
//   throttle(host, …) a token-bucket rate limit (tbf) on both ends of the host's veth.
//
// Processes run in a host's namespace through `nsenter --net=…`, which changes the network namespace
// only; `ip netns exec` would also give the process a mount namespace of its own, hiding any FUSE
// mount it makes from the test. openPortal() lets the test (in the machine's namespace) reach a server
// in the network through a Unix socket and a FaultProxy on loopback.
//
// Cleanup: destroy() kills what runs in the namespaces and deletes them; a process 'exit' hook does
// the same if a test forgot; create() first removes namespaces left by test runs that died.
import {
  NETNS_NAME_ROOT,
  NetnsError,
  netemSupport,
  netnsSupport,
  removeNamespaceSync,
  removeStaleNetworks,
  runNetCommand,
} from "./netns-commands.js";
import {
  formatIpv4,
  parseIpv4Prefix,
  pickFreeSubnet,
  prefixesInUse,
  prefixesOverlap,
} from "./netns-subnet.js";
import { type NetworkPortal, openNetworkPortal } from "./netns-portal.js";
import { TrackedProcess, type TrackedProcessOptions } from "./tracked-process.js";

export {
  NetnsError,
  netemSupport,
  netnsSupport,
  removeNetworksByPrefix,
  removeStaleNetworks,
} from "./netns-commands.js";
export type { NetworkPortal } from "./netns-portal.js";

export interface TestNetworkOptions {
  /** Host names: a lowercase letter, then up to 11 lowercase letters or digits; not "hub". */
  hosts: readonly string[];
  /** A /24 to use instead of picking one; it is still checked against the machine's addresses. */
  subnet?: string;
}

export interface Impairment {
  delayMs: number;
  jitterMs?: number;
  /** Percent of packets lost, 0–100. */
  lossPercent?: number;
}

export interface SpawnInHostOptions extends Omit<TrackedProcessOptions, "label"> {
  label?: string;
}

const HOSTS_MAX = 64;
const BOGUS_MAC = "02:00:5e:ff:ff:fe";
const liveNetworks = new Set<TestNetwork>();
let exitHookInstalled = false;

export class TestNetwork {
  /** `ltfn-<pid>-<random>`: every namespace of this network starts with it. */
  readonly id: string;
  readonly subnet: string;
  readonly hosts: readonly string[];
  readonly #addresses = new Map<string, string>();
  readonly #processes = new Set<TrackedProcess>();
  readonly #portals = new Set<NetworkPortal>();
  readonly #isolated = new Set<string>();
  readonly #partitions = new Map<string, [string, string]>();
  readonly #shaped = new Set<string>();
  #destroyed = false;

  private constructor(id: string, subnet: string, hosts: readonly string[]) {
    this.id = id;
    this.subnet = subnet;
    this.hosts = hosts;
    const base = parseIpv4Prefix(subnet).base;
    hosts.forEach((host, i) => this.#addresses.set(host, formatIpv4(base + i + 1)));
  }

  /**
   * Builds the network. Throws NETNS_UNAVAILABLE (with the reason) where namespaces cannot be made;
   * on any other failure whatever was made is removed before the error is thrown.
   */
  static async create(options: TestNetworkOptions): Promise<TestNetwork> {
    const support = netnsSupport();
    if (!support.supported) throw new NetnsError("NETNS_UNAVAILABLE", support.reason);
    validateHosts(options.hosts);
    removeStaleNetworks();
    const inUse = prefixesInUse();
    let subnet: string;
    if (options.subnet !== undefined) {
      const wanted = parseIpv4Prefix(options.subnet);
      if (wanted.length !== 24)
        throw new NetnsError("NETNS_ARGUMENT", `subnet ${options.subnet} is not a /24`);
      if (inUse.some((used) => prefixesOverlap(used, wanted))) {
        throw new NetnsError(
          "NETNS_ARGUMENT",
          `subnet ${options.subnet} overlaps an address or route of this machine`,
        );
      }
      subnet = options.subnet;
    } else {
      subnet = pickFreeSubnet(inUse, Math.floor(Math.random() * 256));
    }
    const id = `${NETNS_NAME_ROOT}${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const network = new TestNetwork(id, subnet, [...options.hosts]);
    liveNetworks.add(network);
    installExitHook();
    try {
      await network.#build();
    } catch (err) {
      await network.destroy();
      throw err;
    }
    return network;
  }

  /** The namespace name of `host` (as `ip netns` lists it). */
  namespace(host: string): string {
    this.#checkHost(host);
    return `${this.id}-${host}`;
  }

  /** The IPv4 address of `host` in the network. */
  address(host: string): string {
    this.#checkHost(host);
    return this.#addresses.get(host)!;
  }

  /**
   * Starts a process in `host`'s network namespace (only its network namespace: mounts, files and
   * pids are shared with the test). The process is tracked: destroy() kills it.
   */
  async spawn(host: string, options: SpawnInHostOptions): Promise<TrackedProcess> {
    this.#checkOpen();
    const tracked = await TrackedProcess.spawn({
      ...options,
      label: options.label ?? `${options.command} in ${host}`,
      command: "nsenter",
      args: [`--net=/run/netns/${this.namespace(host)}`, "--", options.command, ...options.args],
    });
    this.#processes.add(tracked);
    void tracked.exit.then(() => this.#processes.delete(tracked));
    return tracked;
  }

  /** Runs a command in `host`'s namespace to completion (killed after `timeoutMs`, default 10 s). */
  async run(
    host: string,
    command: string,
    args: readonly string[],
    timeoutMs = 10_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const tracked = await this.spawn(host, { command, args });
    const timer = setTimeout(() => tracked.killGroup(), timeoutMs);
    const status = await tracked.exit;
    clearTimeout(timer);
    return { code: status.code, stdout: tracked.stdout, stderr: tracked.stderr };
  }

  /** Cuts `host` off from every other host (silently: its own link stays up). */
  async isolate(host: string): Promise<void> {
    this.#checkOpen();
    if (this.#isolated.has(host)) return;
    await this.#ip(`-n ${this.#hub} link set ${hubPort(this.#checked(host))} nomaster`);
    this.#isolated.add(host);
  }

  /** Cuts traffic between `a` and `b` only, both ways, silently; each still reaches the others. */
  async partition(a: string, b: string): Promise<void> {
    this.#checkOpen();
    if (a === b) throw new NetnsError("NETNS_ARGUMENT", `partition: ${a} from itself`);
    const key = [a, b].sort().join("|");
    if (this.#partitions.has(key)) return;
    this.#partitions.set(key, [a, b]);
    for (const [from, to] of [
      [a, b],
      [b, a],
    ]) {
      await this.#ip(
        `-n ${this.namespace(from)} neigh replace ${this.address(to)} lladdr ${BOGUS_MAC} dev eth0 nud permanent`,
      );
    }
  }

  /** Delays (and loses) every packet to or from `host`. Throws NETNS_NETEM_UNAVAILABLE without netem. */
  async impair(host: string, impairment: Impairment): Promise<void> {
    this.#checkOpen();
    this.#checkHost(host);
    const netem = await netemSupport();
    if (!netem.supported) throw new NetnsError("NETNS_NETEM_UNAVAILABLE", netem.reason);
    const { delayMs, jitterMs = 0, lossPercent = 0 } = impairment;
    checkNumber("delayMs", delayMs, 0, 60_000);
    checkNumber("jitterMs", jitterMs, 0, delayMs);
    checkNumber("lossPercent", lossPercent, 0, 100);
    await this.#shape(host, `netem delay ${delayMs}ms ${jitterMs}ms loss ${lossPercent}%`);
  }

  /** Limits what `host` sends and receives to `rateKbit` kilobits per second (tbf). */
  async throttle(host: string, rateKbit: number): Promise<void> {
    this.#checkOpen();
    this.#checkHost(host);
    checkNumber("rateKbit", rateKbit, 8, 10_000_000);
    // A burst of at least one full-size frame; queued packets wait at most 1 s before being dropped.
    const burstBytes = Math.max(1600, Math.ceil((rateKbit * 1000) / 8 / 100));
    await this.#shape(host, `tbf rate ${rateKbit}kbit burst ${burstBytes} latency 1000ms`);
  }

  /** Undoes every isolate, partition, impair and throttle. */
  async heal(): Promise<void> {
    this.#checkOpen();
    for (const host of this.#isolated) {
      await this.#ip(`-n ${this.#hub} link set ${hubPort(host)} master br0`);
    }
    this.#isolated.clear();
    for (const [a, b] of this.#partitions.values()) {
      for (const [from, to] of [
        [a, b],
        [b, a],
      ]) {
        await this.#ip(`-n ${this.namespace(from)} neigh del ${this.address(to)} dev eth0`);
      }
    }
    this.#partitions.clear();
    for (const host of this.#shaped) {
      await this.#tc(`-n ${this.namespace(host)} qdisc del dev eth0 root`);
      await this.#tc(`-n ${this.#hub} qdisc del dev ${hubPort(host)} root`);
    }
    this.#shaped.clear();
  }

  /** The faults in force now, for a test's failure message or a chaos log. */
  faults(): { isolated: string[]; partitions: Array<[string, string]>; shaped: string[] } {
    return {
      isolated: [...this.#isolated],
      partitions: [...this.#partitions.values()],
      shaped: [...this.#shaped],
    };
  }

  /**
   * Opens a way from the test to `host:targetPort` (see netns-portal.ts): by default through a
   * forwarder in `host` itself, so faults on `host` do not cut it; `via` another host to put the
   * network between. Closed by destroy() at the latest.
   */
  async openPortal(host: string, targetPort: number, options: { via?: string } = {}): Promise<NetworkPortal> {
    this.#checkOpen();
    const portal = await openNetworkPortal(this, host, targetPort, options.via ?? host, () =>
      this.#portals.delete(portal),
    );
    this.#portals.add(portal);
    return portal;
  }

  /** Closes portals, kills every process in the network's namespaces and deletes them. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const portal of [...this.#portals]) await portal.close().catch(() => {});
    for (const tracked of this.#processes) tracked.killGroup();
    await Promise.all([...this.#processes].map((tracked) => tracked.exit));
    const failed = this.#removeNamespaces();
    liveNetworks.delete(this);
    if (failed.length > 0) {
      throw new NetnsError("NETNS_COMMAND", `${this.id}: could not delete namespaces ${failed.join(", ")}`);
    }
  }

  /** Synchronous last-resort removal (process exit); returns the namespaces that could not be deleted. */
  #removeNamespaces(): string[] {
    return [...this.hosts.map((host) => this.namespace(host)), this.#hub].filter(
      (name) => !removeNamespaceSync(name),
    );
  }

  get #hub(): string {
    return `${this.id}-hub`;
  }

  async #build(): Promise<void> {
    const hub = this.#hub;
    for (const name of [hub, ...this.hosts.map((host) => this.namespace(host))]) {
      await this.#ip(`netns add ${name}`);
      // IPv6 off for links made from now on (lo keeps ::1): no link-local path around our faults.
      await runNetCommand(
        "nsenter",
        `--net=/run/netns/${name} -- sysctl -q -w net.ipv6.conf.default.disable_ipv6=1`.split(" "),
      );
      await this.#ip(`-n ${name} link set lo up`);
    }
    await this.#ip(`-n ${hub} link add br0 type bridge`);
    await this.#ip(`-n ${hub} link set br0 up`);
    for (const host of this.hosts) {
      const ns = this.namespace(host);
      await this.#ip(`-n ${hub} link add ${hubPort(host)} type veth peer name eth0 netns ${ns}`);
      await this.#ip(`-n ${hub} link set ${hubPort(host)} master br0 up`);
      await this.#ip(`-n ${ns} addr add ${this.address(host)}/24 dev eth0`);
      await this.#ip(`-n ${ns} link set eth0 up`);
    }
  }

  /** Puts the same root qdisc on both ends of `host`'s veth: what it sends and what it receives. */
  async #shape(host: string, qdisc: string): Promise<void> {
    await this.#tc(`-n ${this.namespace(host)} qdisc replace dev eth0 root ${qdisc}`);
    this.#shaped.add(host);
    await this.#tc(`-n ${this.#hub} qdisc replace dev ${hubPort(host)} root ${qdisc}`);
  }

  /** Runs `ip` with a command line of validated names and numbers (no quoting needed: no spaces). */
  #ip(commandLine: string): Promise<string> {
    return runNetCommand("ip", commandLine.split(" "));
  }

  #tc(commandLine: string): Promise<string> {
    return runNetCommand("tc", commandLine.split(" "));
  }

  #checked(host: string): string {
    this.#checkHost(host);
    return host;
  }

  #checkHost(host: string): void {
    if (!this.#addresses.has(host)) {
      throw new NetnsError(
        "NETNS_ARGUMENT",
        `${this.id}: no host ${JSON.stringify(host)} (hosts: ${this.hosts.join(", ")})`,
      );
    }
  }

  #checkOpen(): void {
    if (this.#destroyed) throw new NetnsError("NETNS_DESTROYED", `${this.id} was destroyed`);
  }

  /** For the exit hook. */
  static removeAllSync(): void {
    for (const network of liveNetworks) {
      network.#destroyed = true;
      for (const tracked of network.#processes) tracked.killGroup();
      network.#removeNamespaces();
    }
    liveNetworks.clear();
  }
}

/** The bridge-side end of a host's veth pair (in the hub namespace): ≤ 15 characters. */
function hubPort(host: string): string {
  return `h-${host}`;
}

function validateHosts(hosts: readonly string[]): void {
  if (hosts.length === 0 || hosts.length > HOSTS_MAX) {
    throw new NetnsError(
      "NETNS_ARGUMENT",
      `a test network needs 1 to ${HOSTS_MAX} hosts, not ${hosts.length}`,
    );
  }
  for (const host of hosts) {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(host) || host === "hub") {
      throw new NetnsError(
        "NETNS_ARGUMENT",
        `host name ${JSON.stringify(host)}: a letter, then ≤ 11 letters/digits, not "hub"`,
      );
    }
  }
  if (new Set(hosts).size !== hosts.length)
    throw new NetnsError("NETNS_ARGUMENT", `duplicate host names: ${hosts.join(", ")}`);
}

function checkNumber(what: string, value: number, min: number, max: number): void {
  if (!(Number.isFinite(value) && value >= min && value <= max)) {
    throw new NetnsError("NETNS_ARGUMENT", `${what} ${value} not in [${min}, ${max}]`);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => TestNetwork.removeAllSync());
}
