// Default timings derived from the TTL, shared by the coordinator leasers. They keep the keeper's rule
// (margin + renew interval < TTL) and leave room for two requests per renewal attempt.

/** 10 % of the TTL, at least 50 ms: covers clock-rate drift and timer lateness over one TTL. */
export function defaultSafetyMarginMs(ttlMs: number): number {
  return Math.max(50, Math.round(ttlMs / 10));
}

/**
 * TTL/6 between 100 ms and 2 s per request to one endpoint: a renewal attempt (TTL/3) then has time for
 * two requests, or for one to a hung endpoint and one to the next.
 */
export function defaultRequestTimeoutMs(ttlMs: number): number {
  return Math.min(2000, Math.max(100, Math.round(ttlMs / 6)));
}
