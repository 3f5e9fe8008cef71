// TestNetwork on this machine's kernel: real namespaces, a real bridge, real TCP between processes in
// different namespaces. Each fault is checked by what a client in another namespace sees, and heal()
// by the same client succeeding again. Skips (saying why) where namespaces cannot be made.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import { test } from "node:test";
import {
  NetnsError,
  netemSupport,
  netnsSupport,
  removeNetworksByPrefix,
  removeStaleNetworks,
  TestNetwork,
} from "./netns.js";
import { listNamespaces } from "./netns-commands.js";
import { parseIpv4Prefix, pickFreeSubnet, prefixesInUse, prefixesOverlap } from "./netns-subnet.js";
import { TrackedProcess } from "./tracked-process.js";

const support = netnsSupport();
const skip = support.supported ? false : `network namespaces unavailable: ${support.reason}`;
const PORT = 7000;

/** A TCP server that greets each connection and then echoes what it receives. */
const SERVER_SCRIPT = `
const net = require("net");
net.createServer((s) => { s.on("error", () => {}); s.write("hello from " + process.argv[1] + "\\n"); s.pipe(s); })
  .listen(${PORT}, "0.0.0.0", () => console.log("listening"));`;

/** Connects to argv[1]:argv[2] within argv[3] ms; prints "ok <greeting>" or "fail <why>". */
const CLIENT_SCRIPT = `
const net = require("net");
const [host, port, timeoutMs] = process.argv.slice(1);
const s = net.connect(Number(port), host);
const timer = setTimeout(() => { console.log("fail timeout"); process.exit(0); }, Number(timeoutMs));
s.setEncoding("utf8");
s.once("data", (d) => { console.log("ok " + d.trim()); clearTimeout(timer); s.destroy(); });
s.on("error", (e) => { console.log("fail " + e.code); clearTimeout(timer); });`;

async function startServer(network: TestNetwork, host: string): Promise<TrackedProcess> {
  const server = await network.spawn(host, {
    label: `server in ${host}`,
    command: process.execPath,
    args: ["-e", SERVER_SCRIPT, host],
  });
  await server.waitForLine(/^listening/, 10_000);
  return server;
}

/** What a client in `from` gets when it connects to `to`'s server (within 700 ms). */
async function probe(network: TestNetwork, from: string, to: string): Promise<string> {
  const result = await network.run(from, process.execPath, [
    "-e",
    CLIENT_SCRIPT,
    network.address(to),
    String(PORT),
    "700",
  ]);
  return result.stdout.trim() || `no output (code ${result.code}): ${result.stderr}`;
}

async function makeNetwork(t: test.TestContext, hosts: string[]): Promise<TestNetwork> {
  const network = await TestNetwork.create({ hosts });
  t.after(() => network.destroy());
  return network;
}

test("subnet choice: prefixes parse, overlap is exact, a taken /24 is skipped", () => {
  assert.deepEqual(parseIpv4Prefix("10.213.4.9/24"), {
    base: (10 << 24) + (213 << 16) + (4 << 8),
    length: 24,
  });
  assert.throws(() => parseIpv4Prefix("10.213.4.256/24"), RangeError);
  assert.throws(() => parseIpv4Prefix("fd00::/64"), RangeError);
  assert.ok(prefixesOverlap(parseIpv4Prefix("10.0.0.0/8"), parseIpv4Prefix("10.213.7.0/24")));
  assert.ok(!prefixesOverlap(parseIpv4Prefix("10.213.6.0/24"), parseIpv4Prefix("10.213.7.0/24")));
  assert.ok(prefixesOverlap(parseIpv4Prefix("10.213.7.5"), parseIpv4Prefix("10.213.7.0/24")));
  const taken = [parseIpv4Prefix("10.213.7.0/24"), parseIpv4Prefix("10.213.8.128/25")];
  assert.equal(pickFreeSubnet(taken, 7), "10.213.9.0/24");
  assert.equal(pickFreeSubnet(taken, 255), "10.213.255.0/24");
  assert.equal(pickFreeSubnet([], 256 + 3), "10.213.3.0/24");
  assert.throws(() => pickFreeSubnet([parseIpv4Prefix("10.0.0.0/8")], 0), /no free \/24/);
});

test(
  "the network touches nothing in the machine's namespace and uses a range the machine does not",
  { skip },
  async (t) => {
    const linksBefore = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
    const routesBefore = execFileSync("ip", ["route", "show", "table", "all"], { encoding: "utf8" });
    const network = await makeNetwork(t, ["a", "b"]);
    const subnet = parseIpv4Prefix(network.subnet);
    assert.equal(subnet.length, 24);
    for (const used of prefixesInUse())
      assert.ok(!prefixesOverlap(used, subnet), `${network.subnet} overlaps`);
    assert.equal(execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" }), linksBefore);
    assert.equal(execFileSync("ip", ["route", "show", "table", "all"], { encoding: "utf8" }), routesBefore);
    assert.deepEqual(
      listNamespaces()
        .filter((name) => name.startsWith(network.id))
        .sort(),
      [`${network.id}-a`, `${network.id}-b`, `${network.id}-hub`],
    );
    const inA = await network.run("a", "ip", ["-4", "-o", "addr", "show", "dev", "eth0"]);
    assert.match(inA.stdout, new RegExp(`inet ${network.address("a").replaceAll(".", "\\.")}/24`));
    await assert.rejects(
      TestNetwork.create({ hosts: ["hub"] }),
      (err: unknown) => (err as NetnsError).code === "NETNS_ARGUMENT",
    );
    await assert.rejects(
      TestNetwork.create({ hosts: ["a", "a"] }),
      (err: unknown) => (err as NetnsError).code === "NETNS_ARGUMENT",
    );
  },
);

test(
  "isolate: a server in a is reachable from b until a is isolated, then from nobody, then again after heal",
  { skip },
  async (t) => {
    const network = await makeNetwork(t, ["a", "b", "c"]);
    await startServer(network, "a");
    await startServer(network, "c");
    assert.equal(await probe(network, "b", "a"), "ok hello from a");
    await network.isolate("a");
    assert.deepEqual(network.faults().isolated, ["a"]);
    assert.equal(await probe(network, "b", "a"), "fail timeout", "b must not reach an isolated a");
    assert.equal(await probe(network, "a", "c"), "fail timeout", "an isolated a must not reach c");
    assert.equal(await probe(network, "b", "c"), "ok hello from c", "b and c still talk");
    await network.heal();
    assert.equal(await probe(network, "b", "a"), "ok hello from a");
    assert.equal(await probe(network, "a", "c"), "ok hello from c");
  },
);

test("partition(a, b) cuts only a↔b, silently; heal restores it", { skip }, async (t) => {
  const network = await makeNetwork(t, ["a", "b", "c"]);
  await startServer(network, "a");
  await startServer(network, "b");
  await network.partition("a", "b");
  assert.equal(await probe(network, "b", "a"), "fail timeout");
  assert.equal(await probe(network, "a", "b"), "fail timeout");
  assert.equal(await probe(network, "c", "a"), "ok hello from a");
  assert.equal(await probe(network, "c", "b"), "ok hello from b");
  await network.heal();
  assert.equal(await probe(network, "b", "a"), "ok hello from a");
  assert.equal(await probe(network, "a", "b"), "ok hello from b");
  await assert.rejects(
    network.partition("a", "a"),
    (err: unknown) => (err as NetnsError).code === "NETNS_ARGUMENT",
  );
});

test(
  "an established connection survives a short isolation: nothing is reset, bytes arrive after heal",
  { skip },
  async (t) => {
    const network = await makeNetwork(t, ["a", "b"]);
    await startServer(network, "a");
    const portal = await network.openPortal("a", PORT, { via: "b" });
    const socket = net.connect(portal.port, "127.0.0.1");
    t.after(() => socket.destroy());
    let received = "";
    let ending: string | undefined;
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => (received += text));
    socket.on("error", (err: NodeJS.ErrnoException) => (ending = err.code));
    socket.on("close", () => (ending ??= "closed"));
    await waitUntil(() => received.includes("hello from a"), "the greeting through the portal");
    await network.isolate("a");
    socket.write("during the cut\n");
    await sleep(600);
    assert.ok(!received.includes("during the cut"), "nothing crosses while a is isolated");
    assert.equal(ending, undefined, "the connection is not reset by a silent cut");
    await network.heal();
    // TCP retransmits with back-off (0.2 s, 0.4 s, 0.8 s, …): the bytes come through within a few seconds.
    await waitUntil(() => received.includes("during the cut"), "the retransmitted bytes after heal", 8_000);
    assert.equal(ending, undefined);
  },
);

test("a portal reaches a server in the network; faults on the path to it cut it", { skip }, async (t) => {
  const network = await makeNetwork(t, ["a", "b"]);
  await startServer(network, "a");
  const direct = await network.openPortal("a", PORT);
  const viaB = await network.openPortal("a", PORT, { via: "b" });
  assert.equal(await greeting(direct.port), "hello from a");
  assert.equal(await greeting(viaB.port), "hello from a");
  await network.isolate("a");
  assert.equal(await greeting(direct.port), "hello from a", "a portal inside a is not cut by isolating a");
  assert.equal(await greeting(viaB.port), "timeout", "a portal via b crosses the bridge");
  await network.heal();
  assert.equal(await greeting(viaB.port), "hello from a");
  direct.proxy.drop();
  assert.equal(await greeting(direct.port), "ECONNRESET", "the portal's proxy faults act on the portal");
  await direct.close();
});

test(
  "destroy kills what runs inside and deletes every namespace; stale ones of dead runs are removed",
  { skip },
  async () => {
    const network = await TestNetwork.create({ hosts: ["a", "b"] });
    const server = await startServer(network, "a");
    const sleeper = await network.spawn("b", { command: "sleep", args: ["60"] });
    await network.destroy();
    assert.ok((await server.exit).signal !== null);
    assert.equal((await sleeper.exit).signal, "SIGKILL");
    assert.deepEqual(
      listNamespaces().filter((name) => name.startsWith(network.id)),
      [],
    );
    await network.destroy(); // idempotent
    await assert.rejects(
      network.isolate("a"),
      (err: unknown) => (err as NetnsError).code === "NETNS_DESTROYED",
    );

    // A namespace named for a process that is gone (with a process still inside) is stale.
    const gone = await TrackedProcess.spawn({ label: "short-lived", command: "true", args: [] });
    await gone.exit;
    const stale = `ltfn-${gone.pid}-stale-x`;
    execFileSync("ip", ["netns", "add", stale]);
    const inside = await TrackedProcess.spawn({
      label: "left behind",
      command: "nsenter",
      args: [`--net=/run/netns/${stale}`, "--", "sleep", "60"],
    });
    const mine = `ltfn-${process.pid}-live-x`;
    execFileSync("ip", ["netns", "add", mine]);
    try {
      assert.ok(removeStaleNetworks().includes(stale));
      assert.equal((await inside.exit).signal, "SIGKILL");
      assert.ok(listNamespaces().includes(mine), "a namespace of a live process is not stale");
      assert.deepEqual(removeNetworksByPrefix(mine), [mine]);
      assert.throws(() => removeNetworksByPrefix("foreign-"), NetnsError);
    } finally {
      inside.killGroup();
      removeNetworksByPrefix(stale);
      removeNetworksByPrefix(mine);
    }
  },
);

test("throttle limits a host's rate; heal lifts it", { skip }, async (t) => {
  const network = await makeNetwork(t, ["a", "b"]);
  // b serves 64 KiB to whoever connects; a reads it all and prints how long that took.
  await network
    .spawn("b", {
      command: process.execPath,
      args: [
        "-e",
        `require("net").createServer((s) => s.end(Buffer.alloc(65536))).listen(${PORT}, () => console.log("listening"))`,
      ],
    })
    .then((server) => server.waitForLine(/^listening/, 10_000));
  const fetchScript = `
const t0 = performance.now(); let n = 0;
require("net").connect(${PORT}, process.argv[1]).on("data", (d) => (n += d.length)).on("close", () => console.log(n, Math.round(performance.now() - t0)));`;
  const fetchMs = async (): Promise<number> => {
    const result = await network.run(
      "a",
      process.execPath,
      ["-e", fetchScript, network.address("b")],
      20_000,
    );
    const [bytes, ms] = result.stdout.trim().split(" ").map(Number);
    assert.equal(bytes, 65536, result.stderr);
    return ms;
  };
  await network.throttle("b", 512);
  // 64 KiB at 512 kbit/s is ≥ 1 s minus one burst (6.4 KB): the limit is in force.
  const throttledMs = await fetchMs();
  assert.ok(throttledMs >= 800, `64 KiB at 512 kbit/s took only ${throttledMs} ms`);
  await network.heal();
  assert.deepEqual(network.faults().shaped, []);
  assert.equal(typeof (await fetchMs()), "number");
});

test("impair adds netem delay (skipped where the kernel has no netem)", { skip }, async (t) => {
  const netem = await netemSupport();
  if (!netem.supported) {
    const network = await makeNetwork(t, ["a"]);
    await assert.rejects(
      network.impair("a", { delayMs: 50 }),
      (err: unknown) => (err as NetnsError).code === "NETNS_NETEM_UNAVAILABLE",
    );
    t.skip(netem.reason);
    return;
  }
  const network = await makeNetwork(t, ["a", "b"]);
  await startServer(network, "a");
  await network.impair("b", { delayMs: 100 });
  const script = `const t0 = performance.now(); require("net").connect(${PORT}, process.argv[1]).once("data", (d) => { console.log(Math.round(performance.now() - t0)); process.exit(0); });`;
  const result = await network.run("b", process.execPath, ["-e", script, network.address("a")]);
  // Connect (one round trip) and the greeting (half of one more): at least 1.5 × 2 × 100 ms.
  assert.ok(Number(result.stdout) >= 290, `greeting after ${result.stdout} ms with 100 ms each way`);
});

async function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, 700);
    socket.setEncoding("utf8");
    socket.once("data", (text: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text.trim());
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? "error");
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
