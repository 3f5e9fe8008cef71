// A read's wait for the local database to reach the TXID its client last wrote, bounded by a timeout
// and cut short when the client goes away. The node's waitForTxid does the waiting (no polling here);
// this only bounds it and says how it ended.

import type { ProxyNodeView } from "./proxy-node-view.js";

export type TxidWaitOutcome = "reached" | "timed-out" | "aborted";

export interface TxidWaitResult {
  readonly outcome: TxidWaitOutcome;
  readonly waitedMs: number;
}

/**
 * Waits until `view.txid(db) >= txid`, at most `timeoutMs`. "aborted" when `clientSignal` aborted first.
 * Never rejects for those reasons; an error of waitForTxid itself (other than the abort) is rethrown.
 */
export async function waitForLocalTxid(
  view: ProxyNodeView,
  db: string,
  txid: bigint,
  timeoutMs: number,
  clientSignal: AbortSignal,
): Promise<TxidWaitResult> {
  const started = performance.now();
  const waited = (): number => Math.round(performance.now() - started);
  if (view.txid(db) >= txid) return { outcome: "reached", waitedMs: 0 };
  if (clientSignal.aborted) return { outcome: "aborted", waitedMs: 0 };
  const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
  const signal = AbortSignal.any([clientSignal, timeout]);
  try {
    await view.waitForTxid(db, txid, signal);
    return { outcome: "reached", waitedMs: waited() };
  } catch (err) {
    if (clientSignal.aborted) return { outcome: "aborted", waitedMs: waited() };
    if (timeout.aborted) {
      // The position may have been reached in the same instant the timer fired.
      return { outcome: view.txid(db) >= txid ? "reached" : "timed-out", waitedMs: waited() };
    }
    throw err;
  }
}
