// The primary's side of the stream: turns frames into bytes to write on the response, in order. Each
// call returns the buffers to write (the preamble goes out with the first frame). LTX files go out as
// `encode(ltx-begin)`, `ltxData(bytes)` any number of times with bytes of any size (split into chunk
// frames of at most `chunkBytes`, so a multi-GB snapshot streams through a bounded buffer), `ltxEnd()`.
//
// The encoder checks every frame with the decoder's own rules (payload decode + stream-rules.ts) before
// it is numbered, so a primary bug shows up as ESTREAMENCODE on the primary instead of a replica that
// disconnects. After an error the encoder is unusable (the sequence would have a hole): end the
// response. Payload bytes of an LTX chunk are not copied: the returned buffers alias `data`.

import { StreamError, StreamViolation } from "./stream-error.js";
import {
  encodeFrameHeader,
  encodePreamble,
  payloadLimit,
  resolveStreamLimits,
  type StreamLimits,
  type WireFrame,
} from "./stream-frame.js";
import { decodePayload, encodePayload } from "./stream-payload.js";
import { StreamRules } from "./stream-rules.js";

/** Default LTX chunk size: big enough that the 20-byte header is noise, small enough to bound memory. */
export const DEFAULT_CHUNK_BYTES = 256 * 1024;

export interface StreamEncoderOptions {
  /** Largest LTX_CHUNK payload this encoder emits; ≤ limits.maxChunkBytes. */
  readonly chunkBytes?: number;
  /** The limits the replica enforces (the encoder refuses anything beyond them). */
  readonly limits?: Partial<StreamLimits>;
  /** Told of every frame encoded, with its bytes on the wire (the first frame's include the preamble). */
  readonly onFrame?: FrameObserver;
}

/** Sees each frame of a stream and its size on the wire (metrics: stream-metrics.ts). */
export type FrameObserver = (frame: WireFrame, bytes: number) => void;

export class StreamFrameEncoder {
  readonly #limits: StreamLimits;
  readonly #chunkBytes: number;
  readonly #rules = new StreamRules();
  readonly #onFrame: FrameObserver | undefined;
  /** Frames encoded so far; the wire carries it mod 2^32 as the sequence number. */
  #frames = 0;
  #started = false;
  #ltxBytes = 0;
  #failure: StreamError | null = null;

  constructor(options: StreamEncoderOptions = {}) {
    this.#limits = resolveStreamLimits(options.limits);
    this.#chunkBytes = options.chunkBytes ?? Math.min(DEFAULT_CHUNK_BYTES, this.#limits.maxChunkBytes);
    this.#onFrame = options.onFrame;
    if (
      !Number.isInteger(this.#chunkBytes) ||
      this.#chunkBytes < 1 ||
      this.#chunkBytes > this.#limits.maxChunkBytes
    ) {
      throw new RangeError(`chunkBytes ${this.#chunkBytes}: want 1..${this.#limits.maxChunkBytes}`);
    }
  }

  /** Frames encoded so far. */
  get frameCount(): number {
    return this.#frames;
  }

  /** True once END or ERROR was encoded. */
  get ended(): boolean {
    return this.#rules.ended;
  }

  /** True while an LTX file is open (between ltx-begin and ltxEnd). */
  get inLtx(): boolean {
    return this.#rules.openDb !== null;
  }

  /** Encodes one frame. An ltx-chunk must fit the chunk limit; prefer `ltxData`. */
  encode(frame: WireFrame): Uint8Array[] {
    if (this.#failure !== null) throw this.#failure;
    try {
      return this.#encode(frame);
    } catch (err) {
      this.#failure =
        err instanceof StreamViolation
          ? new StreamError("ESTREAMENCODE", err.message, {
              frameIndex: this.#frames,
              frameType: frame.type,
              rule: err.rule,
              db: err.db ?? this.#rules.openDb ?? undefined,
            })
          : new StreamError("ESTREAMENCODE", `cannot encode ${frame.type}: ${String(err)}`, {
              frameIndex: this.#frames,
              frameType: frame.type,
              cause: err,
            });
      throw this.#failure;
    }
  }

  /** Bytes of the open LTX file, split into chunk frames (none for empty `data`). */
  ltxData(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let at = 0; at < data.length; at += this.#chunkBytes) {
      out.push(...this.encode({ type: "ltx-chunk", data: data.subarray(at, at + this.#chunkBytes) }));
    }
    return out;
  }

  /** Closes the open LTX file, declaring the bytes sent since its ltx-begin. */
  ltxEnd(): Uint8Array[] {
    return this.encode({ type: "ltx-end", size: this.#ltxBytes });
  }

  #encode(frame: WireFrame): Uint8Array[] {
    const { typeCode, flags, payload } = encodePayload(frame);
    const limit = payloadLimit(frame.type, this.#limits);
    if (payload.length > limit) {
      throw new StreamViolation(
        "payload limit",
        `payload of ${payload.length} bytes exceeds the ${frame.type} limit of ${limit}`,
      );
    }
    this.#rules.accept(decodePayload(frame.type, flags, payload, this.#limits));
    if (frame.type === "ltx-begin") this.#ltxBytes = 0;
    else if (frame.type === "ltx-chunk") this.#ltxBytes += payload.length;

    const out: Uint8Array[] = [];
    if (!this.#started) {
      out.push(encodePreamble());
      this.#started = true;
    }
    out.push(encodeFrameHeader(typeCode, flags, this.#frames >>> 0, payload));
    if (payload.length > 0) out.push(payload);
    this.#frames++;
    this.#onFrame?.(
      frame,
      out.reduce((sum, buffer) => sum + buffer.length, 0),
    );
    return out;
  }
}
