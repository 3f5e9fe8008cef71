// The replica's side of the stream: push the response body's bytes as they arrive, in chunks of any
// size, and get back the frames they complete. Every frame is checked whole — header CRC, limits,
// payload CRC, payload layout, order (stream-rules.ts) — before it is handed out, so a frame returned
// is a frame the primary sent; everything else throws a StreamError naming the byte offset where the
// offending frame starts and its index. Call `finish()` when the body ends: a stream that stops inside
// a frame, inside an LTX file or before END/ERROR is ESTREAMTRUNCATED.
//
// Memory: at most one frame's payload is held (≤ the chunk / control limits) plus what the caller
// pushed and the decoder has not reached yet. Ownership: pushed chunks are kept by reference — do not
// modify them after pushing; an LTX chunk frame's `data` may be a view into them.
//
// Errors are sticky: after one, every call throws the same error (the replica drops the connection).

import { ByteQueue } from "../ltx/byte-queue.js";
import { StreamError, StreamViolation } from "./stream-error.js";
import {
  crc32,
  decodeFrameHeader,
  FRAME_HEADER_SIZE,
  frameTypeName,
  payloadLimit,
  PREAMBLE_SIZE,
  preambleProblem,
  resolveStreamLimits,
  type FrameHeader,
  type FrameTypeName,
  type StreamFrame,
  type StreamLimits,
} from "./stream-frame.js";
import { decodePayload } from "./stream-payload.js";
import type { FrameObserver } from "./stream-encoder.js";
import { StreamRules } from "./stream-rules.js";

interface PendingFrame {
  readonly header: FrameHeader;
  readonly type: FrameTypeName;
  /** Stream offset of the frame's first header byte. */
  readonly offset: number;
}

export class StreamFrameDecoder {
  readonly #limits: StreamLimits;
  readonly #input = new ByteQueue();
  readonly #rules = new StreamRules();
  #preambleDone = false;
  #pending: PendingFrame | null = null;
  #frameIndex = 0;
  #failure: StreamError | null = null;
  #finished = false;
  readonly #onFrame: FrameObserver | undefined;

  /** `onFrame` sees each frame decoded with its bytes on the wire (the first's include the preamble). */
  constructor(limits: Partial<StreamLimits> = {}, onFrame?: FrameObserver) {
    this.#limits = resolveStreamLimits(limits);
    this.#onFrame = onFrame;
  }

  /** Bytes consumed so far (the stream offset of the next byte to decode). */
  get offset(): number {
    return this.#input.position;
  }

  /** Frames decoded so far. */
  get frameCount(): number {
    return this.#frameIndex;
  }

  /** True once END or ERROR was decoded: nothing may follow. */
  get ended(): boolean {
    return this.#rules.ended;
  }

  /** Decodes what `chunk` completes. Throws StreamError (and stays failed). */
  push(chunk: Uint8Array): StreamFrame[] {
    this.#checkUsable();
    const frames: StreamFrame[] = [];
    try {
      if (this.#rules.ended && chunk.length > 0) {
        throw this.#error("ESTREAMFRAME", "bytes after the END/ERROR frame", "trailing bytes", this.offset);
      }
      this.#input.push(chunk);
      while (!this.#rules.ended) {
        const frame = this.#next();
        if (frame === null) break;
        frames.push(frame);
      }
      if (this.#rules.ended && this.#input.length > 0) {
        throw this.#error("ESTREAMFRAME", "bytes after the END/ERROR frame", "trailing bytes", this.offset);
      }
    } catch (err) {
      throw this.#fail(err);
    }
    return frames;
  }

  /** Declares the end of the body. Throws ESTREAMTRUNCATED unless the stream ended whole. */
  finish(): void {
    this.#checkUsable();
    this.#finished = true;
    const at = this.offset + this.#input.length;
    let problem: string | null = null;
    if (!this.#preambleDone)
      problem = `stream ended after ${at} bytes, inside the ${PREAMBLE_SIZE}-byte preamble`;
    else if (this.#pending !== null) {
      const { header, type, offset } = this.#pending;
      problem = `stream ended inside ${type} frame ${this.#frameIndex} (payload ${header.payloadLength} bytes, ${at - offset - FRAME_HEADER_SIZE} arrived)`;
    } else if (this.#input.length > 0) {
      problem = `stream ended inside the header of frame ${this.#frameIndex} (${this.#input.length} of ${FRAME_HEADER_SIZE} bytes)`;
    } else problem = this.#rules.endProblem();
    if (problem !== null) {
      throw this.#fail(
        new StreamError("ESTREAMTRUNCATED", problem, {
          offset: at,
          frameIndex: this.#frameIndex,
          rule: "complete stream",
          db: this.#rules.openDb ?? undefined,
        }),
      );
    }
  }

  #checkUsable(): void {
    if (this.#failure !== null) throw this.#failure;
    if (this.#finished) {
      throw new StreamError("ESTREAMFRAME", "decoder used after finish()", {
        rule: "finished",
        offset: this.offset,
      });
    }
  }

  #fail(err: unknown): StreamError {
    // Anything else would be a bug in this file; keep it as the cause rather than lose it.
    const error =
      err instanceof StreamError
        ? err
        : new StreamError("ESTREAMFRAME", `internal decoder failure: ${String(err)}`, {
            offset: this.offset,
            frameIndex: this.#frameIndex,
            cause: err,
          });
    this.#failure = error;
    return error;
  }

  #error(
    code: "ESTREAMFRAME" | "ESTREAMCHECKSUM",
    detail: string,
    rule: string,
    offset: number,
    type?: string,
  ) {
    return new StreamError(code, detail, {
      offset,
      frameIndex: this.#frameIndex,
      frameType: type,
      rule,
      db: this.#rules.openDb ?? undefined,
    });
  }

  /** The next complete frame, or null when more input is needed. */
  #next(): StreamFrame | null {
    if (!this.#preambleDone) {
      if (this.#input.length < PREAMBLE_SIZE) return null;
      const problem = preambleProblem(this.#input.peek(PREAMBLE_SIZE));
      if (problem !== null) throw this.#error("ESTREAMFRAME", problem, "preamble", 0);
      this.#input.take(PREAMBLE_SIZE);
      this.#preambleDone = true;
    }
    if (this.#pending === null) {
      if (this.#input.length < FRAME_HEADER_SIZE) return null;
      this.#pending = this.#readHeader();
    }
    const { header, type, offset } = this.#pending;
    if (this.#input.length < header.payloadLength) return null;
    const payload = this.#input.take(header.payloadLength);
    if (crc32(payload) !== header.payloadCrc) {
      throw this.#error("ESTREAMCHECKSUM", "payload CRC-32 does not match", "payload checksum", offset, type);
    }
    let frame: StreamFrame;
    try {
      frame = this.#rules.accept(decodePayload(type, header.flags, payload, this.#limits));
    } catch (err) {
      if (!(err instanceof StreamViolation)) throw err;
      throw new StreamError("ESTREAMFRAME", err.message, {
        offset,
        frameIndex: this.#frameIndex,
        frameType: type,
        rule: err.rule,
        db: err.db ?? this.#rules.openDb ?? undefined,
      });
    }
    this.#pending = null;
    this.#onFrame?.(
      frame,
      FRAME_HEADER_SIZE + header.payloadLength + (this.#frameIndex === 0 ? PREAMBLE_SIZE : 0),
    );
    this.#frameIndex++;
    return frame;
  }

  #readHeader(): PendingFrame {
    const offset = this.#input.position;
    const header = decodeFrameHeader(this.#input.peek(FRAME_HEADER_SIZE));
    if (header === null)
      throw this.#error("ESTREAMCHECKSUM", "frame header CRC-32 does not match", "header checksum", offset);
    const type = frameTypeName(header.typeCode);
    if (type === undefined) {
      throw this.#error("ESTREAMFRAME", `unknown frame type ${header.typeCode}`, "frame type", offset);
    }
    if (header.reserved !== 0) {
      throw this.#error("ESTREAMFRAME", "reserved header bytes are not 0", "reserved", offset, type);
    }
    if (header.sequence !== this.#frameIndex >>> 0) {
      throw this.#error(
        "ESTREAMFRAME",
        `sequence number ${header.sequence}, expected ${this.#frameIndex >>> 0} (a frame was lost or repeated)`,
        "sequence",
        offset,
        type,
      );
    }
    const limit = payloadLimit(type, this.#limits);
    if (header.payloadLength > limit) {
      throw this.#error(
        "ESTREAMFRAME",
        `payload of ${header.payloadLength} bytes exceeds the ${type} limit of ${limit}`,
        "payload limit",
        offset,
        type,
      );
    }
    this.#input.take(FRAME_HEADER_SIZE);
    return { header, type, offset };
  }
}
