// Finds where an LZ4 frame ends in a byte stream, without decompressing it. LTX needs this because
// nothing in the file records a frame's length: in v1-lz4 the trailer follows the frame, and in early
// v3 the next page frame does. The scanner walks the frame's structure (descriptor, block sizes,
// optional checksums, end mark) and tells the caller how many of the bytes it is shown belong to the
// frame, so exactly those go to the decompressor. It checks only what it needs to find the end; the
// frame decoder checks everything else (version bits, checksums, block contents).

import { LtxError } from "./errors.js";

const MAGIC = 0x184d2204;
const FLG_DICT_ID = 0x01;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_CONTENT_SIZE = 0x08;
const FLG_BLOCK_CHECKSUM = 0x10;
const BLOCK_UNCOMPRESSED = 0x80000000;
/** Largest block size the frame format allows (BD code 7: 4 MiB). */
const MAX_BLOCK_SIZE = 4 << 20;

type ScanState = "descriptor" | "blockSize" | "blockData" | "contentChecksum" | "done";

export class Lz4FrameExtent {
  #state: ScanState = "descriptor";
  /** Bytes of a fixed-size field collected so far (descriptor up to 19 bytes, or a 4-byte size). */
  #field = new Uint8Array(19);
  #fieldLength = 0;
  #fieldWanted = 7;
  #blockChecksum = false;
  #contentChecksum = false;
  /** Bytes left in the current block (data plus its optional checksum). */
  #blockRemaining = 0;
  #length = 0;
  readonly #offsetBase: number;

  /** `offsetBase`: the file offset of the frame's first byte, added to offsets in errors. */
  constructor(offsetBase = 0) {
    this.#offsetBase = offsetBase;
  }

  /** True once the whole frame, content checksum included, has been seen. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** Frame bytes seen so far. */
  get length(): number {
    return this.#length;
  }

  /**
   * Consumes the frame's bytes from the start of `bytes` and returns how many belong to it (all of
   * them unless the frame ends inside). Throws LtxError ELTXLZ4 when the bytes cannot be a frame.
   */
  scan(bytes: Uint8Array): number {
    let pos = 0;
    while (pos < bytes.length && this.#state !== "done") {
      if (this.#state === "blockData") {
        const part = Math.min(this.#blockRemaining, bytes.length - pos);
        pos += part;
        this.#blockRemaining -= part;
        if (this.#blockRemaining === 0) this.#startField("blockSize", 4);
        continue;
      }
      const part = Math.min(this.#fieldWanted - this.#fieldLength, bytes.length - pos);
      this.#field.set(bytes.subarray(pos, pos + part), this.#fieldLength);
      this.#fieldLength += part;
      pos += part;
      if (this.#fieldLength === this.#fieldWanted) this.#fieldComplete(this.#length + pos);
    }
    this.#length += pos;
    return pos;
  }

  #startField(state: ScanState, wanted: number): void {
    this.#state = state;
    this.#fieldLength = 0;
    this.#fieldWanted = wanted;
  }

  #fieldComplete(frameOffset: number): void {
    const view = new DataView(this.#field.buffer, 0, this.#fieldWanted);
    switch (this.#state) {
      case "descriptor": {
        if (this.#fieldWanted === 7) {
          if (view.getUint32(0, true) !== MAGIC) {
            throw new LtxError("ELTXLZ4", "LZ4 frame magic 04 22 4D 18 missing", {
              rule: "lz4 frame magic",
              offset: this.#offsetBase + frameOffset - 7,
            });
          }
          const flg = this.#field[4];
          this.#blockChecksum = (flg & FLG_BLOCK_CHECKSUM) !== 0;
          this.#contentChecksum = (flg & FLG_CONTENT_CHECKSUM) !== 0;
          const extra = ((flg & FLG_CONTENT_SIZE) !== 0 ? 8 : 0) + ((flg & FLG_DICT_ID) !== 0 ? 4 : 0);
          if (extra > 0) {
            this.#fieldWanted += extra; // keep collecting; the header checksum byte is last
            return;
          }
        }
        this.#startField("blockSize", 4);
        return;
      }
      case "blockSize": {
        const word = view.getUint32(0, true);
        if (word === 0) {
          if (this.#contentChecksum) this.#startField("contentChecksum", 4);
          else this.#state = "done";
          return;
        }
        const size = (word & ~BLOCK_UNCOMPRESSED) >>> 0;
        if (size > MAX_BLOCK_SIZE) {
          throw new LtxError("ELTXLZ4", `LZ4 block size ${size} exceeds the 4 MiB maximum`, {
            rule: "lz4 block size",
            offset: this.#offsetBase + frameOffset - 4,
          });
        }
        this.#state = "blockData";
        this.#blockRemaining = size + (this.#blockChecksum ? 4 : 0);
        if (this.#blockRemaining === 0) this.#startField("blockSize", 4);
        return;
      }
      case "contentChecksum":
        this.#state = "done";
        return;
      default:
        throw new Error(`Lz4FrameExtent: field completed in state ${this.#state}`);
    }
  }
}
