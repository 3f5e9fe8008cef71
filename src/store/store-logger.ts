// The store's logging seam: passed in (no global logger in the core), one call per event, with the
// database name and TXID as fields where they apply. The CLI supplies a text or JSON implementation.

export type LogFields = Record<string, unknown>;

export interface StoreLogger {
  /** False when debug lines are dropped: hot paths skip building their fields. Absent: assume kept. */
  readonly debugEnabled?: boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A logger that drops everything (unit tests). */
export const SILENT_LOGGER: StoreLogger = {
  debugEnabled: false,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
