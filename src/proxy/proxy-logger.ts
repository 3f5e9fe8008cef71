// The proxy's logging seam: the same shape as the node's logger (so the node passes its own), declared
// here so that the proxy imports nothing from the store.

export type ProxyLogFields = Record<string, unknown>;

export interface ProxyLogger {
  debug(msg: string, fields?: ProxyLogFields): void;
  info(msg: string, fields?: ProxyLogFields): void;
  warn(msg: string, fields?: ProxyLogFields): void;
  error(msg: string, fields?: ProxyLogFields): void;
}

export const SILENT_PROXY_LOGGER: ProxyLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
