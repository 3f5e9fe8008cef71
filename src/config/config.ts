// The validated configuration of one node, as the rest of the program sees it: camelCase, every default
// applied, durations in milliseconds (`…Ms`). Produced only by `parseConfig`/`loadConfig`, which
// guarantee every rule written in the field comments below.

export type LeaseType = "static" | "etcd" | "consul";
export type ProxyMode = "forward" | "fly-replay";
export type LogFormat = "text" | "json";

export interface Config {
  /** Exit when startup validation fails (LiteFS default true); false keeps the process up to debug. */
  exitOnError: boolean;
  /** Run `exec` without first waiting to become primary or to sync with the primary. */
  skipSync: boolean;
  /** Commands to run once the node is ready: all but the last to completion, the last as the app. */
  exec: ExecCommand[];
  data: DataConfig;
  fuse: FuseConfig;
  http: HttpConfig;
  /** Undefined when `proxy.addr` is not set: no proxy runs. */
  proxy: ProxyConfig | undefined;
  lease: LeaseConfig;
  /** Undefined when `backup.type` is not set. */
  backup: BackupConfig | undefined;
  log: LogConfig;
}

export interface ExecCommand {
  /** The command line as written. */
  cmd: string;
  /** `cmd` split into words (no shell is involved); at least one word. */
  argv: string[];
  /** Run only on a node that can become primary (`lease.candidate`), e.g. migrations. */
  ifCandidate: boolean;
}

export interface DataConfig {
  /** Where databases and LTX files live (default /var/lib/litefs). Never inside `fuse.dir`. */
  dir: string;
  /** Compress LTX files (default true). */
  compress: boolean;
  /** How long LTX files are kept; the newest is always kept (default 10m). */
  retentionMs: number;
  /** How often retention runs (default 1m); > 0. */
  retentionMonitorIntervalMs: number;
}

export interface FuseConfig {
  /** The mount point applications open databases under (default /litefs). */
  dir: string;
  /** Let users other than the mounting one use the mount (default false). */
  allowOther: boolean;
  /** Log every FUSE request (default false). */
  debug: boolean;
  /**
   * Leave every fcntl lock to the kernel (FUSE_POSIX_LOCKS not negotiated), default true: SQLite's
   * lock requests then cost no FUSE round trip; the node takes its own locks through a helper process
   * (mountfs/kernel-node-locks.ts) and orders a rolling-back writer's journal unlink with readers
   * (mountfs/journal-unlink-fence.ts). false: the mount answers every lock itself, as LiteFS does.
   */
  kernelLocks: boolean;
}

export interface HttpConfig {
  /** Node-to-node API listen address, Go host:port (default ":20202"); parses with `parseHostPort`. */
  addr: string;
  /** Limit on sending one snapshot to a replica; 0 = no limit (default 0). */
  snapshotTimeoutMs: number;
  /** Shared secret required on every node route when set; never empty. */
  authToken: string | undefined;
}

export interface ProxyConfig {
  /** Listen address, host:port; never the same port as `http.addr` on an overlapping host. */
  addr: string;
  /** The application behind the proxy, host:port. */
  target: string;
  /** Database whose TXID tracks read-your-writes consistency. */
  db: string;
  /** How writes reaching a replica get to the primary (default "forward"). */
  mode: ProxyMode;
  /** Log each proxied request (default false). */
  debug: boolean;
  /** `/litefs/health` answers 503 when replication lag exceeds this (default 10s). */
  maxLagMs: number;
  /** Path globs sent straight to the app, with no consistency handling (default []). */
  passthrough: string[];
  /** Path globs always sent to the primary, reads included (default []). */
  alwaysForward: string[];
  /** How long a write waits for a primary to be known before failing (default 5s). */
  primaryRedirectTimeoutMs: number;
  /** How long a read waits for the local position to reach the client's last write (default 5s). */
  txidWaitTimeoutMs: number;
  /** Node http.Server timeouts; 0 = none. Defaults: read 0, header 10s, write 0, idle 30s. */
  readTimeoutMs: number;
  readHeaderTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
}

export interface LeaseConfig {
  /** Default "static". */
  type: LeaseType;
  /**
   * This node's name as other nodes and `.primary` show it. For a static replica, the primary's name:
   * default the host of `advertiseUrl`. Otherwise default: the machine's hostname.
   */
  hostname: string;
  /**
   * URL of the node API that other nodes use. For a static replica, the primary's URL (required).
   * Otherwise this node's own URL, default `http://<hostname>:<http port>`.
   */
  advertiseUrl: string;
  /** May become primary (default true). With a static lease, true means "is the primary". */
  candidate: boolean;
  /** Take the lease once synced (default false); only for candidates. */
  promote: boolean;
  /** Wait before reconnecting to the primary or trying to take the lease (default 1s). */
  reconnectDelayMs: number;
  /** Wait after being demoted before trying to become primary again (default 10s). */
  demoteDelayMs: number;
  /** Replicate only these databases; empty = all (default []). */
  databases: string[];
  /** Lease time-to-live (default 10s); > 0. For etcd, whole seconds. */
  ttlMs: number;
  /** Wait after a lease expires before another node may take it (default 1s). */
  lockDelayMs: number;
  /**
   * How long a candidate lets a more up-to-date live candidate take a free lease before trying itself
   * (`lease.election-wait`; default ttl + lock-delay; 0 turns ranking off). etcd only.
   */
  electionWaitMs: number;
  etcd: EtcdLeaseConfig;
  consul: ConsulLeaseConfig;
}

export interface EtcdLeaseConfig {
  /** Client URLs (http/https) of the etcd members; at least one when `type` is etcd. */
  endpoints: string[];
  /** Key prefix of this cluster's lease, unique per cluster; required when `type` is etcd. */
  key: string | undefined;
}

export interface ConsulLeaseConfig {
  /** Consul's base URL; required when `type` is consul. */
  url: string | undefined;
  /** Lease key, unique per cluster; required when `type` is consul. */
  key: string | undefined;
  /** Session TTL: `lease.consul.ttl`, else `lease.ttl`; Consul allows 10s…24h. */
  ttlMs: number;
  /** Session lock delay: `lease.consul.lock-delay`, else `lease.lock-delay`; Consul allows ≤ 60s. */
  lockDelayMs: number;
}

export type BackupConfig =
  { type: "file"; path: string } | { type: "http"; url: string; authToken: string | undefined };

export interface LogConfig {
  /** Default "text". */
  format: LogFormat;
  /** Prefix each line with the time (default false: supervisors usually add it). */
  timestamp: boolean;
  /** Include debug lines (default false). */
  debug: boolean;
}

/** LiteFS's defaults, in milliseconds where they are durations. */
export const CONFIG_DEFAULTS = {
  exitOnError: true,
  skipSync: false,
  dataDir: "/var/lib/litefs",
  dataCompress: true,
  dataRetentionMs: 10 * 60_000,
  dataRetentionMonitorIntervalMs: 60_000,
  fuseDir: "/litefs",
  httpAddr: ":20202",
  httpSnapshotTimeoutMs: 0,
  proxyMode: "forward",
  proxyMaxLagMs: 10_000,
  proxyPrimaryRedirectTimeoutMs: 5_000,
  proxyTxidWaitTimeoutMs: 5_000,
  proxyReadTimeoutMs: 0,
  proxyReadHeaderTimeoutMs: 10_000,
  proxyWriteTimeoutMs: 0,
  proxyIdleTimeoutMs: 30_000,
  leaseType: "static",
  leaseCandidate: true,
  leaseReconnectDelayMs: 1_000,
  leaseDemoteDelayMs: 10_000,
  leaseTtlMs: 10_000,
  leaseLockDelayMs: 1_000,
  logFormat: "text",
} as const;
