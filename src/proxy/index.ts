// The app-facing HTTP proxy: public API for the node layer.
export { ProxyServer, DEFAULT_CONNECT_RETRY_MS, DEFAULT_PRIMARY_POLL_MS } from "./proxy-server.js";
export type { ProxyServerOptions } from "./proxy-server.js";
export type { ProxyNodeView } from "./proxy-node-view.js";
export { ProxyCounters, PROXY_REQUEST_KINDS } from "./proxy-metrics.js";
export type { ProxyMetrics, ProxyRequestKind, ProxyCountersSnapshot } from "./proxy-metrics.js";
export type { ProxyLogger, ProxyLogFields } from "./proxy-logger.js";
export { SILENT_PROXY_LOGGER } from "./proxy-logger.js";
export { ProxyError, PROXY_ERROR_HEADER, isProxyError } from "./proxy-error.js";
export type { ProxyErrorCode } from "./proxy-error.js";
export type { TxidWaitOutcome } from "./txid-wait.js";
export { RequestRouter, HEALTH_PATH } from "./request-route.js";
export type { ProxyRoute } from "./request-route.js";
export { HOP_MARKER_HEADER } from "./forwarding-headers.js";
export { TXID_COOKIE, TXID_HEADER, formatToken, formatTxid, parseToken, parseTxid } from "./txid-token.js";
export type { ReadToken, TxPosition } from "./txid-token.js";
