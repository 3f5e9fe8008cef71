// The primary's end of one stream: frames encoded (stream-encoder.ts) and written to the HTTP response
// in order, waiting for the socket to drain when it pushes back — so a slow replica slows its own
// stream down instead of making the primary buffer without bound. Remembers when it last wrote, for
// heartbeats. After the connection closes every send rejects with ESTREAMCLOSED.

import type http from "node:http";

import { drainedOrGone } from "./drained-or-gone.js";
import { StreamFrameEncoder, type FrameObserver } from "./stream-encoder.js";
import type { WireFrame } from "./stream-frame.js";

export class StreamClosedError extends Error {
  override readonly name = "StreamClosedError";
  readonly code = "ESTREAMCLOSED";
}

export class StreamSink {
  readonly #res: http.ServerResponse;
  readonly #encoder: StreamFrameEncoder;
  readonly #now: () => number;
  #closed = false;
  #lastWriteMs: number;
  #bytes = 0;

  /** `onFrame` sees every frame sent with its bytes (metrics). */
  constructor(res: http.ServerResponse, now: () => number = Date.now, onFrame?: FrameObserver) {
    this.#encoder = new StreamFrameEncoder({ onFrame });
    this.#res = res;
    this.#now = now;
    this.#lastWriteMs = now();
    res.once("close", () => {
      this.#closed = true;
    });
  }

  get closed(): boolean {
    return this.#closed || this.#res.destroyed;
  }

  /** Wall-clock ms of the last write (heartbeats go out after a quiet interval). */
  get lastWriteMs(): number {
    return this.#lastWriteMs;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True while an LTX file is open on the stream. */
  get inLtx(): boolean {
    return this.#encoder.inLtx;
  }

  send(frame: WireFrame): Promise<void> {
    return this.#write(this.#encoder.encode(frame));
  }

  /** Bytes of the open LTX file (split into chunk frames). */
  ltxData(data: Uint8Array): Promise<void> {
    return this.#write(this.#encoder.ltxData(data));
  }

  ltxEnd(): Promise<void> {
    return this.#write(this.#encoder.ltxEnd());
  }

  /**
   * A whole LTX file in one socket write: its LTX_BEGIN frame, the chunk frames of `data` (all of the
   * file) and LTX_END. For files small enough to hold in memory — a transaction's file, usually a few
   * KiB: three writes would wake the replica up to three times for one file, and cost the primary
   * three syscalls per replica at every commit.
   */
  ltxFile(begin: WireFrame, data: Uint8Array): Promise<void> {
    const opened = this.#encoder.encode(begin);
    const chunks = this.#encoder.ltxData(data);
    return this.#write([...opened, ...chunks, ...this.#encoder.ltxEnd()]);
  }

  /** Ends the response after `frame` (END or ERROR) when the connection is still open. */
  async finish(frame: WireFrame): Promise<void> {
    if (this.closed) return;
    if (!this.#encoder.ended && !this.#encoder.inLtx) await this.send(frame).catch(() => undefined);
    this.#res.end();
  }

  async #write(buffers: Uint8Array[]): Promise<void> {
    if (this.closed) throw new StreamClosedError("the replica closed the stream");
    let ok = true;
    this.#res.cork(); // a frame's header and payload leave in one write
    for (const buffer of buffers) {
      ok = this.#res.write(buffer);
      this.#bytes += buffer.length;
    }
    this.#res.uncork();
    this.#lastWriteMs = this.#now();
    if (ok) return;
    await drainedOrGone(this.#res, () => new StreamClosedError("the replica closed the stream"));
  }
}
