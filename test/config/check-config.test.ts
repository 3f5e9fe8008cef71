// Rules between fields: each broken rule is reported at the place that explains it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { FETCH_BAD_PORTS } from "../../src/config/check-config.js";
import { ConfigError } from "../../src/config/config-error.js";
import { parseConfig } from "../../src/config/parse-config.js";

const parse = (text: string) => parseConfig(text, "litefs.yml", { env: {}, hostname: "m" });

function lines(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.kind, "invalid");
    return err.issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

const PROXY = "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: app.db\n";

test("etcd lease needs endpoints and a key, reported at lease.type", () => {
  assert.deepEqual(lines("lease:\n  type: etcd\n"), [
    "2:9 lease.etcd.endpoints: at least one endpoint is required when lease.type is etcd",
    "2:9 lease.etcd.key: is required when lease.type is etcd (unique per cluster)",
  ]);
  assert.deepEqual(lines("lease:\n  type: etcd\n  etcd:\n    endpoints: [etcd1:2379]\n    key: k\n"), [
    '4:17 lease.etcd.endpoints[0]: expected an http:// or https:// URL, got "etcd1:2379"',
  ]);
  assert.deepEqual(
    lines("lease:\n  type: etcd\n  ttl: 1500ms\n  etcd:\n    endpoints: [http://e:2379]\n    key: k\n"),
    ["3:8 lease.ttl: etcd grants leases in whole seconds (at least 1s), got 1500ms"],
  );
  assert.equal(
    parse("lease:\n  type: etcd\n  ttl: 2s\n  etcd:\n    endpoints: [http://e:2379]\n    key: k\n").lease
      .ttlMs,
    2000,
  );
});

test("an etcd endpoint or a Consul URL on a port fetch() refuses is reported before the node starts", () => {
  assert.deepEqual(
    lines("lease:\n  type: etcd\n  etcd:\n    endpoints: [http://e:2379, http://f:10080]\n    key: k\n"),
    [
      '4:32 lease.etcd.endpoints[1]: port 10080 is one that fetch() refuses to connect to (a "bad port" in ' +
        "the Fetch standard), and the node reaches etcd with fetch: use another port",
    ],
  );
  assert.deepEqual(lines("lease:\n  type: consul\n  consul:\n    url: http://c:6000\n    key: k\n"), [
    '4:10 lease.consul.url: port 6000 is one that fetch() refuses to connect to (a "bad port" in the ' +
      "Fetch standard), and the node reaches Consul with fetch: use another port",
  ]);
  // The scheme's default port and the usual ones are fine.
  parse("lease:\n  type: etcd\n  etcd:\n    endpoints: [http://e, https://f, http://g:2379]\n    key: k\n");
});

test("the ports reported are exactly those this Node's fetch() refuses", async () => {
  // Against fetch itself: every port from 1 to 6,700 (the listed ones are all there but 10080) and
  // 10080. "bad port" is refused before any connection; others get ECONNREFUSED, or an answer from
  // whatever listens there (a GET /). Not above: the test nodes' ports start at 10,000.
  const ports = [...Array.from({ length: 6700 }, (_, i) => i + 1), 10080];
  const refused: number[] = [];
  for (let i = 0; i < ports.length; i += 500) {
    const answers = await Promise.all(
      ports.slice(i, i + 500).map((port) =>
        fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) }).then(
          () => null,
          (err: unknown) => {
            const e = err as { message?: string; cause?: { message?: string } };
            return `${e.cause?.message ?? ""} ${e.message ?? ""}`.includes("bad port") ? port : null;
          },
        ),
      ),
    );
    for (const port of answers) if (port !== null) refused.push(port);
  }
  assert.deepEqual(
    refused,
    [...FETCH_BAD_PORTS].sort((a, b) => a - b),
  );
});

test("consul lease needs url and key; TTL and lock delay within Consul's limits", () => {
  assert.deepEqual(lines("lease:\n  type: consul\n"), [
    "2:9 lease.consul.url: is required when lease.type is consul",
    "2:9 lease.consul.key: is required when lease.type is consul (unique per cluster)",
  ]);
  const base = "lease:\n  type: consul\n  consul:\n    url: http://c:8500\n    key: k\n";
  assert.deepEqual(lines(base + "    ttl: 5s\n    lock-delay: 90s\n"), [
    "6:10 lease.consul.ttl: Consul sessions need a TTL from 10s to 24h, got 5s",
    "7:17 lease.consul.lock-delay: Consul allows a lock delay of at most 60s, got 90s",
  ]);
  assert.deepEqual(
    lines("lease:\n  type: consul\n  ttl: 2s\n  consul:\n    url: http://c:8500\n    key: k\n"),
    ["3:8 lease.ttl: Consul sessions need a TTL from 10s to 24h, got 2s"],
  );
  assert.deepEqual(lines("lease:\n  type: consul\n  consul:\n    url: c:8500\n    key: k\n"), [
    '4:10 lease.consul.url: expected an http:// or https:// URL, got "c:8500"',
  ]);
});

test("a static replica (candidate: false) needs the primary's advertise-url", () => {
  assert.deepEqual(lines("lease:\n  candidate: false\n"), [
    "2:14 lease.advertise-url: is required on a static replica (candidate: false): the primary's URL, such as http://primary:20202",
  ]);
  assert.deepEqual(lines("lease:\n  candidate: false\n  advertise-url: primary:20202\n"), [
    '3:18 lease.advertise-url: expected an http:// or https:// URL, got "primary:20202"',
  ]);
  // Not needed on a static primary, nor on dynamic leases (which default it from the hostname).
  assert.equal(parse("lease:\n  candidate: true\n").lease.advertiseUrl, "http://m:20202");
});

test("lease: promote needs candidate; hostnames have no blanks; database names have no slash", () => {
  assert.deepEqual(
    lines(
      "lease:\n  type: etcd\n  candidate: false\n  promote: true\n  etcd:\n    endpoints: [http://e:2379]\n    key: k\n",
    ),
    ["4:12 lease.promote: requires lease.candidate: true"],
  );
  assert.deepEqual(lines("lease:\n  hostname: my host\n"), [
    '2:13 lease.hostname: must not contain blanks, got "my host"',
  ]);
  assert.deepEqual(lines("lease:\n  databases: [ok.db, dir/x.db, ..]\n"), [
    '2:22 lease.databases[1]: expected a database name (a file name in the mount, no "/"), got "dir/x.db"',
    '2:32 lease.databases[2]: expected a database name (a file name in the mount, no "/"), got ".."',
  ]);
  assert.deepEqual(lines("lease:\n  ttl: 0s\n"), ["2:8 lease.ttl: must be greater than 0"]);
});

test("proxy: addr needs target and db; target is host:port; no port clash with http.addr", () => {
  assert.deepEqual(lines("proxy:\n  addr: ':8080'\n"), [
    "2:9 proxy.target: is required when proxy.addr is set: the app's host:port",
    "2:9 proxy.db: is required when proxy.addr is set: the database that tracks TXIDs",
  ]);
  assert.deepEqual(lines("proxy:\n  addr: '8080'\n  target: http://localhost:8081\n  db: a/b\n"), [
    '2:9 proxy.addr: expected host:port (such as ":20202"), got "8080"',
    '3:11 proxy.target: expected host:port such as "localhost:8080", not a URL: "http://localhost:8081"',
    '4:7 proxy.db: expected a database name (a file name in the mount, no "/"), got "a/b"',
  ]);
  assert.deepEqual(lines("proxy:\n  target: localhost:8081\n  db: app.db\n"), [
    "2:11 proxy.target: proxy.addr is not set, so no proxy runs; set proxy.addr",
    "3:7 proxy.db: proxy.addr is not set, so no proxy runs; set proxy.addr",
  ]);
  assert.deepEqual(
    lines("http:\n  addr: ':9000'\nproxy:\n  addr: '127.0.0.1:9000'\n  target: a:1\n  db: x\n"),
    ["4:9 proxy.addr: uses the same port as http.addr (:9000)"],
  );
  // Different hosts on the same port, and ephemeral ports, do not clash.
  assert.ok(
    parse("http:\n  addr: '127.0.0.1:9000'\nproxy:\n  addr: '127.0.0.2:9000'\n  target: a:1\n  db: x\n")
      .proxy,
  );
  assert.ok(parse("http:\n  addr: ':0'\nproxy:\n  addr: ':0'\n  target: a:1\n  db: x\n").proxy);
  assert.equal(parse(PROXY).proxy?.target, "localhost:8081");
});

test("http.addr must be host:port", () => {
  assert.deepEqual(lines("http:\n  addr: 20202\n"), [
    '2:9 http.addr: expected host:port (such as ":20202"), got "20202"',
  ]);
  assert.deepEqual(lines("http:\n  addr: ':99999'\n"), [
    '2:9 http.addr: port must be a number from 0 to 65535, got "99999" in ":99999"',
  ]);
});

test("data.dir and fuse.dir must not be the same or nested", () => {
  assert.deepEqual(lines("fuse:\n  dir: /litefs\ndata:\n  dir: /litefs/\n"), [
    '2:8 fuse.dir: fuse.dir and data.dir must differ, both are "/litefs"',
  ]);
  assert.deepEqual(lines("fuse:\n  dir: /litefs\ndata:\n  dir: /litefs/data\n"), [
    '2:8 fuse.dir: data.dir "/litefs/data" must not be inside the mount fuse.dir "/litefs"',
  ]);
  assert.deepEqual(lines("data:\n  dir: /\n"), [
    '2:8 data.dir: fuse.dir "/litefs" must not be inside data.dir "/"',
  ]);
  assert.ok(parse("fuse:\n  dir: /litefs2\ndata:\n  dir: /litefs\n"), "a shared prefix is not nesting");
  assert.ok(parse("fuse:\n  dir: mnt\ndata:\n  dir: /mnt/data\n"), "relative and absolute are not compared");
  assert.deepEqual(lines("fuse:\n  dir: ./a\ndata:\n  dir: a/b\n"), [
    '2:8 fuse.dir: data.dir "a/b" must not be inside the mount fuse.dir "a"',
  ]);
});

test("data.retention-monitor-interval must be > 0", () => {
  assert.deepEqual(lines("data:\n  retention-monitor-interval: 0s\n"), [
    "2:31 data.retention-monitor-interval: must be greater than 0",
  ]);
});

test("backup: required keys per type, keys of another type, keys without a type", () => {
  assert.deepEqual(lines("backup:\n  type: file\n"), [
    "2:9 backup.path: is required when backup.type is file",
  ]);
  assert.deepEqual(lines("backup:\n  type: http\n"), [
    "2:9 backup.url: is required when backup.type is http",
  ]);
  assert.deepEqual(lines("backup:\n  type: file\n  path: /b\n  url: http://x\n"), [
    "4:8 backup.url: is not used with backup.type file",
  ]);
  assert.deepEqual(lines("backup:\n  type: http\n  url: ftp://x\n"), [
    '3:8 backup.url: expected an http:// or https:// URL, got "ftp://x"',
  ]);
  assert.deepEqual(lines("backup:\n  path: /b\n"), [
    "2:9 backup.path: backup.type is not set, so no backup runs; set it to file or http",
  ]);
});

test("several broken rules are all reported", () => {
  const text = "http:\n  addr: nope\nlease:\n  type: etcd\nbackup:\n  type: file\n";
  assert.deepEqual(lines(text), [
    '2:9 http.addr: expected host:port (such as ":20202"), got "nope"',
    "4:9 lease.etcd.endpoints: at least one endpoint is required when lease.type is etcd",
    "4:9 lease.etcd.key: is required when lease.type is etcd (unique per cluster)",
    "6:9 backup.path: is required when backup.type is file",
  ]);
});
