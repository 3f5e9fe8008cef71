// The config layer's public surface: load or parse `litefs.yml` into a typed, validated `Config`.

export type {
  BackupConfig,
  Config,
  ConsulLeaseConfig,
  DataConfig,
  EtcdLeaseConfig,
  ExecCommand,
  FuseConfig,
  HttpConfig,
  LeaseConfig,
  LeaseType,
  LogConfig,
  LogFormat,
  ProxyConfig,
  ProxyMode,
} from "./config.js";
export { CONFIG_DEFAULTS } from "./config.js";
export { ConfigError, type ConfigErrorKind, type ConfigIssue, formatConfigIssue } from "./config-error.js";
export { parseDuration } from "./duration.js";
export { type Env, expandEnv } from "./env-expansion.js";
export { type HostPort, parseHostPort } from "./host-port.js";
export {
  CONFIG_FILE_NAME,
  configSearchPaths,
  loadConfig,
  type LoadConfigOptions,
  type LoadedConfig,
} from "./load-config.js";
export { parseConfig, type ParseConfigOptions } from "./parse-config.js";
export { splitShellWords } from "./shell-words.js";
