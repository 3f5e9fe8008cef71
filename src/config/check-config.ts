// Rules between fields, and value rules that a single leaf cannot see. Each returns issues rather than
// stopping, so that one run reports everything. `file` says what was written (to tell "not set" from
// "set to the default"); `config` is what it became.

import path from "node:path";
import type { Config } from "./config.js";
import type { PathIssue } from "./config-error.js";
import type { ConfigFile } from "./config-file-schema.js";
import { type HostPort, parseHostPort } from "./host-port.js";

/** Consul's documented session limits. */
const CONSUL_TTL_MIN_MS = 10_000;
const CONSUL_TTL_MAX_MS = 86_400_000;
const CONSUL_LOCK_DELAY_MAX_MS = 60_000;

export function checkConfig(file: ConfigFile, config: Config): PathIssue[] {
  const issues: PathIssue[] = [];
  const add = (p: PathIssue["path"], message: string, at?: PathIssue["at"]) =>
    issues.push(at === undefined ? { path: p, message } : { path: p, message, at });

  checkDirs(file, config, add);
  if (config.data.retentionMonitorIntervalMs <= 0) {
    add(["data", "retention-monitor-interval"], "must be greater than 0");
  }

  const http = hostPort(["http", "addr"], config.http.addr, add);
  checkProxy(file, config, http, add);
  checkLease(file, config, add);
  checkBackup(file, add);
  return issues;
}

type Add = (path: PathIssue["path"], message: string, at?: PathIssue["at"]) => void;

function hostPort(p: PathIssue["path"], addr: string, add: Add): HostPort | undefined {
  const parsed = parseHostPort(addr);
  if (!parsed.ok) add(p, parsed.reason);
  return parsed.ok ? parsed : undefined;
}

function checkDirs(file: ConfigFile, config: Config, add: Add): void {
  const data = cleanPath(config.data.dir);
  const fuse = cleanPath(config.fuse.dir);
  // Only comparable when both are absolute or both relative to the same working directory.
  if (path.isAbsolute(data) !== path.isAbsolute(fuse)) return;
  const at = file.fuse.dir !== undefined ? ["fuse", "dir"] : ["data", "dir"];
  if (data === fuse) add(at, `fuse.dir and data.dir must differ, both are "${data}"`);
  else if (isInside(data, fuse))
    add(at, `data.dir "${data}" must not be inside the mount fuse.dir "${fuse}"`);
  else if (isInside(fuse, data)) add(at, `fuse.dir "${fuse}" must not be inside data.dir "${data}"`);
}

/** Normalised, without a trailing slash ("/litefs/" and "/litefs" are one directory). */
function cleanPath(p: string): string {
  const normal = path.normalize(p);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "::"]);

function checkProxy(file: ConfigFile, config: Config, http: HostPort | undefined, add: Add): void {
  const p = file.proxy;
  if (config.proxy === undefined) {
    for (const key of ["target", "db"] as const) {
      if (p[key] !== undefined)
        add(["proxy", key], "proxy.addr is not set, so no proxy runs; set proxy.addr");
    }
    return;
  }
  const listen = hostPort(["proxy", "addr"], config.proxy.addr, add);
  if (p.target === undefined) {
    add(["proxy", "target"], "is required when proxy.addr is set: the app's host:port", ["proxy", "addr"]);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p.target)) {
    add(["proxy", "target"], `expected host:port such as "localhost:8080", not a URL: "${p.target}"`);
  } else {
    hostPort(["proxy", "target"], p.target, add);
  }
  if (p.db === undefined) {
    add(["proxy", "db"], "is required when proxy.addr is set: the database that tracks TXIDs", [
      "proxy",
      "addr",
    ]);
  } else {
    checkDbName(["proxy", "db"], p.db, add);
  }
  if (listen !== undefined && http !== undefined && listen.port !== 0 && listen.port === http.port) {
    const overlap =
      listen.host === http.host || WILDCARD_HOSTS.has(listen.host) || WILDCARD_HOSTS.has(http.host);
    if (overlap) add(["proxy", "addr"], `uses the same port as http.addr (${config.http.addr})`);
  }
}

function checkDbName(p: PathIssue["path"], name: string, add: Add): void {
  if (name.includes("/") || name === "." || name === "..") {
    add(p, `expected a database name (a file name in the mount, no "/"), got "${name}"`);
  }
}

function checkUrl(p: PathIssue["path"], text: string, add: Add): void {
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    add(p, `expected an http:// or https:// URL, got "${text}"`);
  }
}

/**
 * Ports `fetch()` refuses to connect to (the Fetch standard's "bad ports"; Node 20's list, checked
 * against its fetch by test/config/check-config). The node reaches etcd and Consul with fetch, so such
 * an endpoint would fail only at run time, with "bad port".
 */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
  109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515,
  526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
  3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** A URL the node reaches with fetch (etcd, Consul): its port must not be one fetch refuses. */
function checkFetchUrl(p: PathIssue["path"], text: string, service: string, add: Add): void {
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || url.port === "") return; // checkUrl's, or the scheme's default (80, 443)
  if (FETCH_BAD_PORTS.has(Number(url.port))) {
    add(
      p,
      `port ${url.port} is one that fetch() refuses to connect to (a "bad port" in the Fetch standard), ` +
        `and the node reaches ${service} with fetch: use another port`,
    );
  }
}

function checkLease(file: ConfigFile, config: Config, add: Add): void {
  const l = file.lease;
  const lease = config.lease;
  if (lease.type === "static" && !lease.candidate && l["advertise-url"] === undefined) {
    add(
      ["lease", "advertise-url"],
      "is required on a static replica (candidate: false): the primary's URL, such as http://primary:20202",
      l.candidate !== undefined ? ["lease", "candidate"] : ["lease"],
    );
  }
  if (l["advertise-url"] !== undefined) checkUrl(["lease", "advertise-url"], l["advertise-url"], add);
  if (/\s/.test(lease.hostname))
    add(["lease", "hostname"], `must not contain blanks, got ${JSON.stringify(lease.hostname)}`);
  if (lease.promote && !lease.candidate) add(["lease", "promote"], "requires lease.candidate: true");
  if (lease.ttlMs <= 0) add(["lease", "ttl"], "must be greater than 0");
  lease.databases.forEach((name, i) => checkDbName(["lease", "databases", i], name, add));

  if (lease.type === "etcd") {
    if (lease.etcd.endpoints.length === 0) {
      add(["lease", "etcd", "endpoints"], "at least one endpoint is required when lease.type is etcd", [
        "lease",
        "type",
      ]);
    }
    lease.etcd.endpoints.forEach((url, i) => {
      checkUrl(["lease", "etcd", "endpoints", i], url, add);
      checkFetchUrl(["lease", "etcd", "endpoints", i], url, "etcd", add);
    });
    if (lease.etcd.key === undefined) {
      add(["lease", "etcd", "key"], "is required when lease.type is etcd (unique per cluster)", [
        "lease",
        "type",
      ]);
    }
    if (lease.ttlMs > 0 && (lease.ttlMs < 1000 || lease.ttlMs % 1000 !== 0)) {
      add(["lease", "ttl"], `etcd grants leases in whole seconds (at least 1s), got ${lease.ttlMs}ms`);
    }
  }
  if (lease.type === "consul") {
    if (lease.consul.url === undefined) {
      add(["lease", "consul", "url"], "is required when lease.type is consul", ["lease", "type"]);
    } else {
      checkUrl(["lease", "consul", "url"], lease.consul.url, add);
      checkFetchUrl(["lease", "consul", "url"], lease.consul.url, "Consul", add);
    }
    if (lease.consul.key === undefined) {
      add(["lease", "consul", "key"], "is required when lease.type is consul (unique per cluster)", [
        "lease",
        "type",
      ]);
    }
    const ttlPath = l.consul.ttl !== undefined ? ["lease", "consul", "ttl"] : ["lease", "ttl"];
    if (lease.consul.ttlMs < CONSUL_TTL_MIN_MS || lease.consul.ttlMs > CONSUL_TTL_MAX_MS) {
      add(ttlPath, `Consul sessions need a TTL from 10s to 24h, got ${lease.consul.ttlMs / 1000}s`);
    }
    const delayPath =
      l.consul["lock-delay"] !== undefined ? ["lease", "consul", "lock-delay"] : ["lease", "lock-delay"];
    if (lease.consul.lockDelayMs > CONSUL_LOCK_DELAY_MAX_MS) {
      add(delayPath, `Consul allows a lock delay of at most 60s, got ${lease.consul.lockDelayMs / 1000}s`);
    }
  }
}

function checkBackup(file: ConfigFile, add: Add): void {
  const b = file.backup;
  const setKeys = (["path", "url", "auth-token"] as const).filter((key) => b[key] !== undefined);
  if (b.type === undefined) {
    for (const key of setKeys)
      add(["backup", key], "backup.type is not set, so no backup runs; set it to file or http");
    return;
  }
  const used: readonly string[] = b.type === "file" ? ["path"] : ["url", "auth-token"];
  for (const key of setKeys) {
    if (!used.includes(key)) add(["backup", key], `is not used with backup.type ${b.type}`);
  }
  if (b.type === "file" && b.path === undefined)
    add(["backup", "path"], "is required when backup.type is file", ["backup", "type"]);
  if (b.type === "http") {
    if (b.url === undefined)
      add(["backup", "url"], "is required when backup.type is http", ["backup", "type"]);
    else checkUrl(["backup", "url"], b.url, add);
  }
}
