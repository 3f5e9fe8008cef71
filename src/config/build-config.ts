// From the validated file (kebab-case, keys optional) to `Config` (camelCase, defaults applied).
// This only maps and fills in; rules between fields are checked in `check-config.ts`, which sees both
// what was written and what it became. Values that cannot be derived (a static replica without its
// primary's URL) come out empty here and are reported there.

import assert from "node:assert/strict";
import type { Config, ExecCommand, LeaseConfig, ProxyConfig } from "./config.js";
import { CONFIG_DEFAULTS as D } from "./config.js";
import type { ConfigFile } from "./config-file-schema.js";
import { parseHostPort } from "./host-port.js";
import { splitShellWords } from "./shell-words.js";

export interface BuildConfigOptions {
  /** This machine's hostname: the default `lease.hostname` (except on static replicas). */
  hostname: string;
}

export function buildConfig(file: ConfigFile, options: BuildConfigOptions): Config {
  const httpAddr = file.http.addr ?? D.httpAddr;
  return {
    exitOnError: file["exit-on-error"] ?? D.exitOnError,
    skipSync: file["skip-sync"] ?? D.skipSync,
    exec: file.exec.map((item): ExecCommand => ({
      cmd: item.cmd,
      argv: wordsOf(item.cmd),
      ifCandidate: item["if-candidate"] ?? false,
    })),
    data: {
      dir: file.data.dir ?? D.dataDir,
      compress: file.data.compress ?? D.dataCompress,
      retentionMs: file.data.retention ?? D.dataRetentionMs,
      retentionMonitorIntervalMs: file.data["retention-monitor-interval"] ?? D.dataRetentionMonitorIntervalMs,
    },
    fuse: {
      dir: file.fuse.dir ?? D.fuseDir,
      allowOther: file.fuse["allow-other"] ?? false,
      debug: file.fuse.debug ?? false,
      kernelLocks: file.fuse["kernel-locks"] ?? true,
    },
    http: {
      addr: httpAddr,
      snapshotTimeoutMs: file.http["snapshot-timeout"] ?? D.httpSnapshotTimeoutMs,
      authToken: file.http["auth-token"],
    },
    proxy: buildProxy(file.proxy),
    lease: buildLease(file.lease, httpAddr, options.hostname),
    backup: buildBackup(file.backup),
    log: {
      format: file.log.format ?? D.logFormat,
      timestamp: file.log.timestamp ?? false,
      debug: file.log.debug ?? false,
    },
  };
}

function wordsOf(cmd: string): string[] {
  const split = splitShellWords(cmd);
  // The schema accepted `cmd` only if it splits (yamlCommand), so this cannot fail.
  assert(split.ok, `exec command passed validation but does not split: ${cmd}`);
  return split.words;
}

function buildProxy(p: ConfigFile["proxy"]): ProxyConfig | undefined {
  if (p.addr === undefined) return undefined;
  return {
    addr: p.addr,
    target: p.target ?? "",
    db: p.db ?? "",
    mode: p.mode ?? D.proxyMode,
    debug: p.debug ?? false,
    maxLagMs: p["max-lag"] ?? D.proxyMaxLagMs,
    passthrough: p.passthrough,
    alwaysForward: p["always-forward"],
    primaryRedirectTimeoutMs: p["primary-redirect-timeout"] ?? D.proxyPrimaryRedirectTimeoutMs,
    txidWaitTimeoutMs: p["txid-wait-timeout"] ?? D.proxyTxidWaitTimeoutMs,
    readTimeoutMs: p["read-timeout"] ?? D.proxyReadTimeoutMs,
    readHeaderTimeoutMs: p["read-header-timeout"] ?? D.proxyReadHeaderTimeoutMs,
    writeTimeoutMs: p["write-timeout"] ?? D.proxyWriteTimeoutMs,
    idleTimeoutMs: p["idle-timeout"] ?? D.proxyIdleTimeoutMs,
  };
}

function buildLease(l: ConfigFile["lease"], httpAddr: string, machineHostname: string): LeaseConfig {
  const type = l.type ?? D.leaseType;
  const candidate = l.candidate ?? D.leaseCandidate;
  const ttlMs = l.ttl ?? D.leaseTtlMs;
  const lockDelayMs = l["lock-delay"] ?? D.leaseLockDelayMs;

  let hostname: string;
  let advertiseUrl: string;
  if (type === "static" && !candidate) {
    // A static replica's hostname and advertise-url name the primary, which it cannot find otherwise.
    advertiseUrl = l["advertise-url"] ?? "";
    hostname = l.hostname ?? urlHostname(advertiseUrl) ?? "";
  } else {
    hostname = l.hostname ?? machineHostname;
    const listen = parseHostPort(httpAddr);
    const port = listen.ok ? listen.port : 20202;
    advertiseUrl =
      l["advertise-url"] ?? `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  }

  return {
    type,
    hostname,
    advertiseUrl,
    candidate,
    promote: l.promote ?? false,
    reconnectDelayMs: l["reconnect-delay"] ?? D.leaseReconnectDelayMs,
    demoteDelayMs: l["demote-delay"] ?? D.leaseDemoteDelayMs,
    databases: l.databases,
    ttlMs,
    lockDelayMs,
    electionWaitMs: l["election-wait"] ?? ttlMs + lockDelayMs,
    etcd: { endpoints: l.etcd.endpoints, key: l.etcd.key },
    consul: {
      url: l.consul.url,
      key: l.consul.key,
      ttlMs: l.consul.ttl ?? ttlMs,
      lockDelayMs: l.consul["lock-delay"] ?? lockDelayMs,
    },
  };
}

function urlHostname(text: string): string | undefined {
  if (!URL.canParse(text)) return undefined;
  const host = new URL(text).hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host || undefined;
}

function buildBackup(b: ConfigFile["backup"]): Config["backup"] {
  if (b.type === undefined) return undefined;
  if (b.type === "file") return { type: "file", path: b.path ?? "" };
  return { type: "http", url: b.url ?? "", authToken: b["auth-token"] };
}
