// The schema of `litefs.yml` as written: LiteFS's kebab-case keys, every key optional, unknown keys
// rejected. Validation only — defaults and camelCase come after, in `build-config.ts`, so this file
// reads as a list of what may appear in the file.

import { z } from "zod";
import {
  yamlBoolean,
  yamlCommand,
  yamlDuration,
  yamlEnum,
  yamlList,
  yamlRequiredString,
  yamlSection,
  yamlString,
} from "./schema-leaves.js";

export const LEASE_TYPES = ["static", "etcd", "consul"] as const;
export const PROXY_MODES = ["forward", "fly-replay"] as const;
export const BACKUP_TYPES = ["file", "http"] as const;
export const LOG_FORMATS = ["text", "json"] as const;

export const configFileSchema = yamlSection({
  "exit-on-error": yamlBoolean(),
  "skip-sync": yamlBoolean(),
  // A plain string is normalised to [{cmd: string}] before validation (parse-config.ts).
  exec: yamlList(yamlSection({ cmd: yamlCommand(), "if-candidate": yamlBoolean() })),
  data: yamlSection({
    dir: yamlString(),
    compress: yamlBoolean(),
    retention: yamlDuration(),
    "retention-monitor-interval": yamlDuration(),
  }),
  fuse: yamlSection({
    dir: yamlString(),
    "allow-other": yamlBoolean(),
    debug: yamlBoolean(),
    "kernel-locks": yamlBoolean(),
  }),
  http: yamlSection({
    addr: yamlString(),
    "snapshot-timeout": yamlDuration(),
    "auth-token": yamlString(),
  }),
  proxy: yamlSection({
    addr: yamlString(),
    target: yamlString(),
    db: yamlString(),
    mode: yamlEnum(PROXY_MODES),
    debug: yamlBoolean(),
    "max-lag": yamlDuration(),
    passthrough: yamlList(yamlRequiredString()),
    "always-forward": yamlList(yamlRequiredString()),
    "primary-redirect-timeout": yamlDuration(),
    "txid-wait-timeout": yamlDuration(),
    "read-timeout": yamlDuration(),
    "read-header-timeout": yamlDuration(),
    "write-timeout": yamlDuration(),
    "idle-timeout": yamlDuration(),
  }),
  lease: yamlSection({
    type: yamlEnum(LEASE_TYPES),
    hostname: yamlString(),
    "advertise-url": yamlString(),
    candidate: yamlBoolean(),
    promote: yamlBoolean(),
    "reconnect-delay": yamlDuration(),
    "demote-delay": yamlDuration(),
    databases: yamlList(yamlRequiredString()),
    ttl: yamlDuration(),
    "lock-delay": yamlDuration(),
    "election-wait": yamlDuration(),
    etcd: yamlSection({
      endpoints: yamlList(yamlRequiredString()),
      key: yamlString(),
    }),
    consul: yamlSection({
      url: yamlString(),
      key: yamlString(),
      ttl: yamlDuration(),
      "lock-delay": yamlDuration(),
    }),
  }),
  backup: yamlSection({
    type: yamlEnum(BACKUP_TYPES),
    path: yamlString(),
    url: yamlString(),
    "auth-token": yamlString(),
  }),
  log: yamlSection({
    format: yamlEnum(LOG_FORMATS),
    timestamp: yamlBoolean(),
    debug: yamlBoolean(),
  }),
});

export type ConfigFile = z.output<typeof configFileSchema>;

/** LiteFS keys this implementation does not have, with the reason given instead of "unknown key". */
export const UNSUPPORTED_LITEFS_KEYS: ReadonlyMap<string, string> = new Map([
  ["tracing", "LiteFS's on-disk trace log is not implemented; use log.debug"],
  ["strict-verify", "LiteFS's startup verification switch is not supported here"],
  [
    "backup.cluster",
    "LiteFS Cloud's cluster name; LiteFS Cloud no longer exists (use backup.type file or http)",
  ],
]);
