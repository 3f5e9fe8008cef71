// The rules that relate a stream's frames to each other, as one state machine shared by the encoder
// (which refuses to send a sequence the replica would refuse) and the decoder. Pure: it sees frames,
// never sockets or the store.
//
//   start ──EPOCH──► open ──LTX_BEGIN──► in-ltx ──LTX_END──► open
//                     │  └─HANDOFF──► handed-off
//                     └─END/ERROR──► ended        (ERROR also from start, in-ltx, handed-off)
//
// - The first frame is EPOCH (or ERROR): the replica knows whose stream it reads, and under which lease
//   epoch, before any LTX byte arrives. A later EPOCH must raise the epoch and keep the primary.
// - Inside an LTX file only LTX_CHUNK, LTX_END, HEARTBEAT (liveness during a long snapshot) and ERROR
//   (which abandons the file) may come.
// - The LTX bytes must agree with LTX_BEGIN: magic, min/max TXID and pre-apply checksum in the 100-byte
//   header, the post-apply checksum in the 16-byte trailer, the total size (and the declared one).
// - Per database, an incremental file must continue the previous file of this stream (TXID + 1 and
//   pre-apply = previous post-apply); a snapshot starts over. The first file of a database is checked
//   against the replica's own position by the replica (stream-ltx-admission.ts), not here.
// - READY at most once; HANDOFF carries the stream's epoch and is followed only by HEARTBEAT, END,
//   ERROR; nothing follows END or ERROR; a stream is complete only after END or ERROR.

import { HEADER_SIZE, MAGIC } from "../ltx/header.js";
import type { Pos } from "../ltx/pos.js";
import { TRAILER_SIZE } from "../ltx/trailer.js";
import { StreamViolation } from "./stream-error.js";
import type { LtxBeginFrame, StreamFrame, WireFrame } from "./stream-frame.js";
import { LTX_MIN_SIZE } from "./stream-payload.js";

type State = "start" | "open" | "in-ltx" | "handed-off" | "ended";

interface OpenLtx {
  readonly begin: LtxBeginFrame;
  /** Bytes received so far. */
  received: number;
  /** The first HEADER_SIZE bytes, filled as they arrive. */
  readonly head: Uint8Array;
  /** The last TRAILER_SIZE bytes seen (valid in its last min(received, 16) bytes). */
  readonly tail: Uint8Array;
}

const ALLOWED: Record<State, ReadonlySet<WireFrame["type"]>> = {
  start: new Set(["epoch", "error"]),
  open: new Set(["epoch", "ltx-begin", "ready", "heartbeat", "hwm", "handoff", "end", "error"]),
  "in-ltx": new Set(["ltx-chunk", "ltx-end", "heartbeat", "error"]),
  "handed-off": new Set(["heartbeat", "end", "error"]),
  ended: new Set(),
};

export class StreamRules {
  #state: State = "start";
  #epoch = 0n;
  #primaryNodeId = 0n;
  #ready = false;
  #ltx: OpenLtx | null = null;
  /** Where each database stands after the last complete file of this stream. */
  readonly #positions = new Map<string, Pos>();

  /** True once END or ERROR was accepted. */
  get ended(): boolean {
    return this.#state === "ended";
  }

  /** The epoch of the last EPOCH frame (0 before the first). */
  get epoch(): bigint {
    return this.#epoch;
  }

  /** The database whose LTX file is open, or null. */
  get openDb(): string | null {
    return this.#ltx?.begin.db ?? null;
  }

  /** Why the stream may not end here, or null when it may (after END or ERROR). */
  endProblem(): string | null {
    switch (this.#state) {
      case "ended":
        return null;
      case "in-ltx": {
        const ltx = this.#ltx!;
        return `stream ended inside the LTX file of db ${JSON.stringify(ltx.begin.db)} after ${ltx.received} bytes`;
      }
      default:
        return "stream ended without an END or ERROR frame";
    }
  }

  /** Checks `frame` against everything before it and returns it as the decoder hands it out. */
  accept(frame: WireFrame): StreamFrame {
    if (!ALLOWED[this.#state].has(frame.type)) {
      throw new StreamViolation("order", this.#orderProblem(frame.type), this.openDb ?? undefined);
    }
    switch (frame.type) {
      case "epoch":
        this.#acceptEpoch(frame.epoch, frame.primaryNodeId);
        return frame;
      case "ltx-begin":
        this.#acceptBegin(frame);
        return frame;
      case "ltx-chunk":
        return this.#acceptChunk(frame.data);
      case "ltx-end":
        return this.#acceptEnd(frame.size);
      case "ready":
        if (this.#ready) throw new StreamViolation("order", "a second READY");
        this.#ready = true;
        return frame;
      case "handoff":
        if (frame.fromEpoch !== this.#epoch) {
          throw new StreamViolation(
            "handoff epoch",
            `HANDOFF from epoch ${frame.fromEpoch} on a stream under epoch ${this.#epoch}`,
          );
        }
        this.#state = "handed-off";
        return frame;
      case "end":
      case "error":
        this.#state = "ended";
        this.#ltx = null;
        return frame;
      case "heartbeat":
      case "hwm":
        return frame;
    }
  }

  #orderProblem(type: WireFrame["type"]): string {
    switch (this.#state) {
      case "start":
        return `${type} before the first EPOCH frame`;
      case "in-ltx":
        return `${type} inside the LTX file of db ${JSON.stringify(this.openDb)}`;
      case "handed-off":
        return `${type} after HANDOFF (only HEARTBEAT, END, ERROR may follow)`;
      case "ended":
        return `${type} after the stream ended`;
      case "open":
        return `${type} outside an LTX file`;
    }
  }

  #acceptEpoch(epoch: bigint, primaryNodeId: bigint): void {
    if (this.#state === "open") {
      if (primaryNodeId !== this.#primaryNodeId) {
        throw new StreamViolation(
          "epoch",
          `primary node id changed from ${this.#primaryNodeId.toString(16)} to ${primaryNodeId.toString(16)} within a stream`,
        );
      }
      if (epoch <= this.#epoch) {
        throw new StreamViolation("epoch", `epoch ${epoch} does not raise the stream's epoch ${this.#epoch}`);
      }
    }
    this.#epoch = epoch;
    this.#primaryNodeId = primaryNodeId;
    this.#state = "open";
  }

  #acceptBegin(begin: LtxBeginFrame): void {
    const last = this.#positions.get(begin.db);
    if (begin.snapshot === null && last !== undefined) {
      if (begin.minTxid !== last.txid + 1n) {
        throw new StreamViolation(
          "ltx continuity",
          `incremental file starts at TXID ${begin.minTxid}, the stream's previous file ended at ${last.txid}`,
          begin.db,
        );
      }
      if (begin.preApplyChecksum !== last.checksum) {
        throw new StreamViolation(
          "ltx continuity",
          `incremental file's pre-apply checksum ${hex(begin.preApplyChecksum)} is not the previous post-apply ${hex(last.checksum)}`,
          begin.db,
        );
      }
    }
    this.#ltx = {
      begin,
      received: 0,
      head: new Uint8Array(HEADER_SIZE),
      tail: new Uint8Array(TRAILER_SIZE),
    };
    this.#state = "in-ltx";
  }

  #acceptChunk(data: Uint8Array): StreamFrame {
    const ltx = this.#ltx!;
    const { begin } = ltx;
    const offset = ltx.received;
    if (begin.size !== null && offset + data.length > begin.size) {
      throw new StreamViolation(
        "ltx size",
        `LTX bytes run past the declared size ${begin.size} (${offset + data.length} received)`,
        begin.db,
      );
    }
    if (offset < HEADER_SIZE) {
      const part = data.subarray(0, HEADER_SIZE - offset);
      ltx.head.set(part, offset);
      if (offset + part.length === HEADER_SIZE) checkLtxHeader(ltx.head, begin);
    }
    if (data.length >= TRAILER_SIZE) {
      ltx.tail.set(data.subarray(data.length - TRAILER_SIZE));
    } else {
      ltx.tail.copyWithin(0, data.length);
      ltx.tail.set(data, TRAILER_SIZE - data.length);
    }
    ltx.received += data.length;
    return { type: "ltx-chunk", db: begin.db, offset, data };
  }

  #acceptEnd(size: number): StreamFrame {
    const ltx = this.#ltx!;
    const { begin } = ltx;
    const fail = (detail: string): never => {
      throw new StreamViolation("ltx size", detail, begin.db);
    };
    if (size !== ltx.received) fail(`LTX_END says ${size} bytes, ${ltx.received} arrived`);
    if (begin.size !== null && size !== begin.size)
      fail(`LTX file of ${size} bytes, LTX_BEGIN declared ${begin.size}`);
    if (size < LTX_MIN_SIZE) fail(`LTX file of ${size} bytes is shorter than a header and a trailer`);
    const post = new DataView(ltx.tail.buffer).getBigUint64(0);
    if (post !== begin.postApplyChecksum) {
      throw new StreamViolation(
        "ltx trailer",
        `LTX trailer's post-apply checksum ${hex(post)} is not LTX_BEGIN's ${hex(begin.postApplyChecksum)}`,
        begin.db,
      );
    }
    this.#positions.set(begin.db, { txid: begin.maxTxid, checksum: begin.postApplyChecksum });
    this.#ltx = null;
    this.#state = "open";
    return { type: "ltx-end", db: begin.db, size };
  }
}

function checkLtxHeader(head: Uint8Array, begin: LtxBeginFrame): void {
  const fail = (detail: string): never => {
    throw new StreamViolation("ltx header", detail, begin.db);
  };
  for (let i = 0; i < MAGIC.length; i++) {
    if (head[i] !== MAGIC.charCodeAt(i)) fail("LTX bytes do not start with the magic LTX1");
  }
  const view = new DataView(head.buffer, head.byteOffset, HEADER_SIZE);
  const minTxid = view.getBigUint64(16);
  const maxTxid = view.getBigUint64(24);
  const pre = view.getBigUint64(40);
  if (minTxid !== begin.minTxid || maxTxid !== begin.maxTxid) {
    fail(`LTX header has TXIDs ${minTxid}-${maxTxid}, LTX_BEGIN says ${begin.minTxid}-${begin.maxTxid}`);
  }
  if (pre !== begin.preApplyChecksum) {
    fail(`LTX header's pre-apply checksum ${hex(pre)} is not LTX_BEGIN's ${hex(begin.preApplyChecksum)}`);
  }
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
