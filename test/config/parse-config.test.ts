import assert from "node:assert/strict";
import { test } from "node:test";
import type { Config } from "../../src/config/config.js";
import { parseConfig } from "../../src/config/parse-config.js";

const parse = (text: string, env: Record<string, string> = {}) =>
  parseConfig(text, "litefs.yml", { env, hostname: "machine1" });

const DEFAULTS: Config = {
  exitOnError: true,
  skipSync: false,
  exec: [],
  data: { dir: "/var/lib/litefs", compress: true, retentionMs: 600_000, retentionMonitorIntervalMs: 60_000 },
  fuse: { dir: "/litefs", allowOther: false, debug: false, kernelLocks: true },
  http: { addr: ":20202", snapshotTimeoutMs: 0, authToken: undefined },
  proxy: undefined,
  lease: {
    type: "static",
    hostname: "machine1",
    advertiseUrl: "http://machine1:20202",
    candidate: true,
    promote: false,
    reconnectDelayMs: 1000,
    demoteDelayMs: 10_000,
    databases: [],
    ttlMs: 10_000,
    lockDelayMs: 1000,
    electionWaitMs: 11_000,
    etcd: { endpoints: [], key: undefined },
    consul: { url: undefined, key: undefined, ttlMs: 10_000, lockDelayMs: 1000 },
  },
  backup: undefined,
  log: { format: "text", timestamp: false, debug: false },
};

test("an empty file, a comment-only file and empty sections give all defaults", () => {
  assert.deepEqual(parse(""), DEFAULTS);
  assert.deepEqual(parse("# nothing set\n\n"), DEFAULTS);
  assert.deepEqual(parse("\uFEFF"), DEFAULTS, "a byte-order mark is ignored");
  assert.deepEqual(parse("data:\nfuse:\nhttp:\nlease:\n  etcd:\nproxy:\nbackup:\nlog:\nexec:\n"), DEFAULTS);
  assert.deepEqual(parse("{}"), DEFAULTS);
});

test("every key, set to something other than its default", () => {
  const text = `
exit-on-error: false
skip-sync: true
exec:
  - cmd: "migrate --db /litefs/app.db"
    if-candidate: true
  - cmd: myapp -addr ':8081'
data:
  dir: /data/litefs
  compress: false
  retention: 1h
  retention-monitor-interval: 30s
fuse:
  dir: /mnt/litefs
  allow-other: true
  debug: true
  kernel-locks: false
http:
  addr: "127.0.0.1:30303"
  snapshot-timeout: 2m
  auth-token: s3cret
proxy:
  addr: ":8080"
  target: localhost:8081
  db: app.db
  mode: fly-replay
  debug: true
  max-lag: 2s
  passthrough: ["*.png", /static/*]
  always-forward:
    - /admin/*
  primary-redirect-timeout: 3s
  txid-wait-timeout: 1500ms
  read-timeout: 1s
  read-header-timeout: 2s
  write-timeout: 3s
  idle-timeout: 4s
lease:
  type: consul
  hostname: node7
  advertise-url: http://node7.internal:30303
  candidate: true
  promote: true
  reconnect-delay: 250ms
  demote-delay: 20s
  databases: [app.db, jobs.db]
  ttl: 5s
  lock-delay: 2s
  election-wait: 4s
  etcd:
    endpoints: [http://etcd1:2379, https://etcd2:2379]
    key: litefs/etcd
  consul:
    url: http://consul:8500
    key: litefs/primary
    ttl: 15s
    lock-delay: 3s
backup:
  type: http
  url: https://backup.example.com
  auth-token: t0k3n
log:
  format: json
  timestamp: true
  debug: true
`;
  const expected: Config = {
    exitOnError: false,
    skipSync: true,
    exec: [
      { cmd: "migrate --db /litefs/app.db", argv: ["migrate", "--db", "/litefs/app.db"], ifCandidate: true },
      { cmd: "myapp -addr ':8081'", argv: ["myapp", "-addr", ":8081"], ifCandidate: false },
    ],
    data: {
      dir: "/data/litefs",
      compress: false,
      retentionMs: 3_600_000,
      retentionMonitorIntervalMs: 30_000,
    },
    fuse: { dir: "/mnt/litefs", allowOther: true, debug: true, kernelLocks: false },
    http: { addr: "127.0.0.1:30303", snapshotTimeoutMs: 120_000, authToken: "s3cret" },
    proxy: {
      addr: ":8080",
      target: "localhost:8081",
      db: "app.db",
      mode: "fly-replay",
      debug: true,
      maxLagMs: 2000,
      passthrough: ["*.png", "/static/*"],
      alwaysForward: ["/admin/*"],
      primaryRedirectTimeoutMs: 3000,
      txidWaitTimeoutMs: 1500,
      readTimeoutMs: 1000,
      readHeaderTimeoutMs: 2000,
      writeTimeoutMs: 3000,
      idleTimeoutMs: 4000,
    },
    lease: {
      type: "consul",
      hostname: "node7",
      advertiseUrl: "http://node7.internal:30303",
      candidate: true,
      promote: true,
      reconnectDelayMs: 250,
      demoteDelayMs: 20_000,
      databases: ["app.db", "jobs.db"],
      ttlMs: 5000,
      lockDelayMs: 2000,
      electionWaitMs: 4000,
      etcd: { endpoints: ["http://etcd1:2379", "https://etcd2:2379"], key: "litefs/etcd" },
      consul: { url: "http://consul:8500", key: "litefs/primary", ttlMs: 15_000, lockDelayMs: 3000 },
    },
    backup: { type: "http", url: "https://backup.example.com", authToken: "t0k3n" },
    log: { format: "json", timestamp: true, debug: true },
  };
  assert.deepEqual(parse(text), expected);
});

test("exec: a string becomes a one-item list; a list keeps its order", () => {
  assert.deepEqual(parse('exec: "myapp -addr :8081"').exec, [
    { cmd: "myapp -addr :8081", argv: ["myapp", "-addr", ":8081"], ifCandidate: false },
  ]);
  assert.deepEqual(parse("exec: myapp").exec, [{ cmd: "myapp", argv: ["myapp"], ifCandidate: false }]);
  assert.deepEqual(
    parse("exec: 42").exec,
    [{ cmd: "42", argv: ["42"], ifCandidate: false }],
    "scalar as written",
  );
  assert.deepEqual(
    parse("exec:\n  - cmd: a\n  - cmd: b\n    if-candidate: yes\n  - cmd: c\n").exec.map((e) => [
      e.cmd,
      e.ifCandidate,
    ]),
    [
      ["a", false],
      ["b", true],
      ["c", false],
    ],
  );
  assert.deepEqual(parse("exec: []").exec, []);
});

test("durations: Go forms, bare 0, fractions", () => {
  const lease = (ttl: string) => parse(`lease:\n  ttl: ${ttl}\n`).lease.ttlMs;
  assert.equal(lease("10s"), 10_000);
  assert.equal(lease("1m30s"), 90_000);
  assert.equal(lease('"500ms"'), 500);
  assert.equal(lease("1.5s"), 1500);
  assert.equal(parse("data:\n  retention: 0\n").data.retentionMs, 0);
  assert.equal(parse("data:\n  retention: 0s\n").data.retentionMs, 0);
  assert.equal(
    parse("proxy:\n  addr: ':1'\n  target: a:2\n  db: x\n  max-lag: 250us\n").proxy?.maxLagMs,
    0.25,
  );
});

test("booleans: YAML 1.2 true/false and the YAML 1.1 words LiteFS (yaml.v3) accepts", () => {
  const allowOther = (v: string) => parse(`fuse:\n  allow-other: ${v}\n`).fuse.allowOther;
  for (const v of ["true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON", '"true"']) {
    assert.equal(allowOther(v), true, v);
  }
  for (const v of ["false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF", "'no'"]) {
    assert.equal(allowOther(v), false, v);
  }
});

test("string fields keep unquoted numbers and booleans as written", () => {
  const config = parse(
    "http:\n  auth-token: 0123\nlease:\n  hostname: 1e3\nproxy:\n  addr: ':9'\n  target: a:1\n  db: true\n",
  );
  assert.equal(config.http.authToken, "0123");
  assert.equal(config.lease.hostname, "1e3");
  assert.equal(config.proxy?.db, "true");
});

test("environment variables expand before parsing, and not with expandEnv false", () => {
  const text = [
    "lease:",
    "  hostname: ${HOST}",
    "  candidate: ${FLY_REGION == PRIMARY_REGION}",
    "  advertise-url: http://$HOST:20202",
    "http:",
    "  auth-token: ${TOKEN:-fallback}",
    "data:",
    "  dir: /data/$$literal",
  ].join("\n");
  const env = { HOST: "n3", FLY_REGION: "ams", PRIMARY_REGION: "ams" };
  const config = parse(text, env);
  assert.equal(config.lease.hostname, "n3");
  assert.equal(config.lease.candidate, true);
  assert.equal(config.lease.advertiseUrl, "http://n3:20202");
  assert.equal(config.http.authToken, "fallback");
  assert.equal(config.data.dir, "/data/$literal");
  assert.equal(parse(text, { ...env, FLY_REGION: "fra" }).lease.candidate, false);

  const raw = parseConfig("lease:\n  hostname: ${HOST}\nhttp:\n  auth-token: a$$b\n", "litefs.yml", {
    env,
    expandEnv: false,
    hostname: "m",
  });
  assert.equal(raw.lease.hostname, "${HOST}");
  assert.equal(raw.http.authToken, "a$$b");
});

test("a variable can supply structure, as in LiteFS (expansion is on the raw text)", () => {
  const config = parse("log: $LOG\n", { LOG: "{format: json, debug: true}" });
  assert.equal(config.log.format, "json");
  assert.equal(config.log.debug, true);
});

test("derived lease defaults: hostname, advertise-url, static replica, consul ttl", () => {
  assert.equal(parse("http:\n  addr: '127.0.0.1:4000'\n").lease.advertiseUrl, "http://machine1:4000");
  assert.equal(parse("lease:\n  hostname: '::1'\n").lease.advertiseUrl, "http://[::1]:20202");

  const replica = parse("lease:\n  candidate: false\n  advertise-url: http://primary.internal:20202\n").lease;
  assert.equal(replica.hostname, "primary.internal", "a static replica names the primary");
  assert.equal(replica.advertiseUrl, "http://primary.internal:20202");
  const named = parse(
    "lease:\n  candidate: false\n  hostname: p1\n  advertise-url: http://10.0.0.1:20202\n",
  ).lease;
  assert.equal(named.hostname, "p1");

  const consul = parse(
    "lease:\n  type: consul\n  ttl: 12s\n  lock-delay: 2s\n  consul:\n    url: http://c:8500\n    key: k\n",
  ).lease;
  assert.equal(consul.consul.ttlMs, 12_000, "lease.ttl applies to consul unless consul.ttl is set");
  assert.equal(consul.consul.lockDelayMs, 2000);
});

test("backup types", () => {
  assert.deepEqual(parse("backup:\n  type: file\n  path: /b\n").backup, { type: "file", path: "/b" });
  assert.deepEqual(parse("backup:\n  type: http\n  url: http://b\n").backup, {
    type: "http",
    url: "http://b",
    authToken: undefined,
  });
});

test("anchors and aliases are resolved", () => {
  const config = parse(
    "proxy:\n  addr: ':1'\n  target: a:2\n  db: x\n  passthrough: &globs ['*.png']\n  always-forward: *globs\n",
  );
  assert.deepEqual(config.proxy?.alwaysForward, ["*.png"]);
});
