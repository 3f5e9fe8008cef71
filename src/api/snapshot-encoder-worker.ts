// Worker thread of the snapshot sender (snapshot-sender.ts): reads the committed pages of a frozen
// database view (store/snapshot-page-reader.ts) and encodes them as one snapshot LTX file, posting the
// encoded bytes to the main thread in batches. Encoding runs here so that a multi-GB snapshot neither
// blocks the primary's FUSE requests nor shares its thread with them.
//
// Flow control: `control[0]` counts the batches the main thread can still take; the worker waits while
// it is 0 and the main thread adds one after each batch it has written. `control[1]` set to 1 asks the
// worker to stop (the replica went away): it closes its files and posts nothing more.
//
// Messages out: {type: "data", chunks: Uint8Array[]}, then {type: "done", size} or {type: "error",
// message, code}.

import { parentPort, workerData } from "node:worker_threads";

import { lockPgno } from "../ltx/checksum.js";
import { LtxEncoder } from "../ltx/encoder.js";
import type { LtxWriteFormat } from "../ltx/format.js";
import type { Header } from "../ltx/header.js";
import { SnapshotPageReader, type DatabaseSnapshotView } from "../store/snapshot-page-reader.js";

export interface SnapshotEncoderJob {
  readonly view: DatabaseSnapshotView;
  readonly header: Header;
  readonly format: LtxWriteFormat;
  /** Int32Array over a SharedArrayBuffer: [credits, stop]. */
  readonly control: Int32Array;
  readonly batchBytes: number;
}

const RUN_BYTES = 1 << 20;

function run(job: SnapshotEncoderJob, post: (message: unknown) => void): void {
  const { view, control } = job;
  const reader = new SnapshotPageReader(view);
  try {
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const encoder = new LtxEncoder(
      (chunk) => {
        pending.push(chunk);
        pendingBytes += chunk.length;
      },
      { format: job.format },
    );
    const flush = (): boolean => {
      while (Atomics.load(control, 0) <= 0 && Atomics.load(control, 1) === 0)
        Atomics.wait(control, 0, 0, 1000);
      if (Atomics.load(control, 1) !== 0) return false;
      Atomics.sub(control, 0, 1);
      post({ type: "data", chunks: pending });
      pending = [];
      pendingBytes = 0;
      return true;
    };
    encoder.writeHeader(job.header);
    const lock = lockPgno(view.pageSize);
    const perRun = Math.max(1, Math.floor(RUN_BYTES / view.pageSize));
    for (let first = 1; first <= view.pageCount; first += perRun) {
      const count = Math.min(perRun, view.pageCount - first + 1);
      const pages = reader.readPages(first, count);
      for (let i = 0; i < count; i++) {
        if (first + i !== lock)
          encoder.writePage(first + i, pages.subarray(i * view.pageSize, (i + 1) * view.pageSize));
      }
      if (pendingBytes >= job.batchBytes && !flush()) return;
    }
    encoder.finish(view.pos.checksum);
    if (!flush()) return;
    post({ type: "done", size: encoder.size });
  } catch (err) {
    post({ type: "error", message: (err as Error).message, code: (err as { code?: string }).code });
  } finally {
    reader.close();
  }
}

const port = parentPort;
if (port === null) throw new Error("snapshot-encoder-worker must run as a worker thread");
run(workerData as SnapshotEncoderJob, (message) => port.postMessage(message));
