// Sending a whole database as one snapshot LTX file (TXIDs 1..position) on a stream, encoded on the fly
// from a frozen view of the committed database (store `snapshotView`; the caller holds the locks that
// keep it frozen). The pages are read and encoded by a worker thread (snapshot-encoder-worker.ts) and
// written to the stream here, with its backpressure: at most MAX_BATCHES_IN_FLIGHT batches of about
// 1 MiB exist at a time, whatever the size of the database, and the primary's main thread — which
// answers every FUSE request — only moves bytes. The encoder checks that the pages add up to the
// view's checksum (a snapshot's rule), so a view that was not frozen after all fails loudly instead of
// sending a wrong database.

import { on } from "node:events";
import { Worker } from "node:worker_threads";

import type { LtxWriteFormat } from "../ltx/format.js";
import type { Header } from "../ltx/header.js";
import type { Pos } from "../ltx/pos.js";
import type { DatabaseSnapshotView } from "../store/snapshot-page-reader.js";
import type { SnapshotEncoderJob } from "./snapshot-encoder-worker.js";
import type { SnapshotInfo } from "./stream-frame.js";
import type { StreamSink } from "./stream-sink.js";

const BATCH_BYTES = 1 << 20;
const MAX_BATCHES_IN_FLIGHT = 4;

export interface SnapshotSendOptions {
  readonly db: string;
  readonly view: DatabaseSnapshotView;
  readonly info: SnapshotInfo;
  readonly format: LtxWriteFormat;
  readonly nodeId: bigint;
  readonly nowMs: number;
}

type WorkerMessage =
  | { type: "data"; chunks: Uint8Array[] }
  | { type: "done"; size: number }
  | { type: "error"; message: string; code?: string };

export class SnapshotEncodeError extends Error {
  override readonly name = "SnapshotEncodeError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Streams the snapshot; resolves with the position it brings the replica to and its size in bytes. */
export async function sendSnapshot(
  sink: StreamSink,
  opts: SnapshotSendOptions,
): Promise<{ pos: Pos; bytes: number }> {
  const { view } = opts;
  const header: Header = {
    flags: 0,
    pageSize: view.pageSize,
    commit: view.pageCount,
    minTxid: 1n,
    maxTxid: view.pos.txid,
    timestamp: opts.nowMs,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: opts.nodeId,
  };
  await sink.send({
    type: "ltx-begin",
    db: opts.db,
    minTxid: 1n,
    maxTxid: view.pos.txid,
    preApplyChecksum: 0n,
    postApplyChecksum: view.pos.checksum,
    size: null,
    snapshot: opts.info,
  });
  const control = new Int32Array(new SharedArrayBuffer(8));
  control[0] = MAX_BATCHES_IN_FLIGHT;
  const job: SnapshotEncoderJob = { view, header, format: opts.format, control, batchBytes: BATCH_BYTES };
  const worker = new Worker(new URL("./snapshot-encoder-worker.js", import.meta.url), { workerData: job });
  const stop = new AbortController();
  // The worker always ends with "done" or "error" unless told to stop; a crash of the thread itself
  // (out of memory, say) arrives as an 'error' event.
  worker.once("error", (err) => stop.abort(err));
  try {
    for await (const [message] of on(worker, "message", { signal: stop.signal }) as AsyncIterable<
      [WorkerMessage]
    >) {
      switch (message.type) {
        case "data":
          for (const chunk of message.chunks) await sink.ltxData(chunk);
          Atomics.add(control, 0, 1);
          Atomics.notify(control, 0);
          break;
        case "done":
          await sink.ltxEnd();
          return { pos: view.pos, bytes: message.size };
        case "error":
          throw new SnapshotEncodeError(
            message.code ?? "ESNAPSHOT",
            `snapshot encoding failed: ${message.message}`,
          );
      }
    }
    throw new SnapshotEncodeError("ESNAPSHOT", "the snapshot encoder ended without finishing");
  } catch (err) {
    if ((err as Error).name === "AbortError") {
      const reason: unknown = stop.signal.reason;
      throw reason instanceof Error ? reason : new SnapshotEncodeError("ESNAPSHOT", String(reason));
    }
    throw err;
  } finally {
    Atomics.store(control, 1, 1); // stop: the worker closes its files and ends
    Atomics.notify(control, 0);
    stop.abort();
    await new Promise<void>((resolve) => {
      if (worker.threadId === -1) resolve();
      else worker.once("exit", () => resolve());
    });
  }
}
