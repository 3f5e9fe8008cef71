// Errors of the LTX library. Every failure has a stable `code` that callers match on, and says
// where it happened: the file (when known), the byte offset, and the rule that was broken.

export type LtxErrorCode =
  | "ELTXHEADER" // a header field breaks a rule of the format
  | "ELTXFRAME" // a page frame is malformed (pgno, flags, size, order, duplicates, lock page…)
  | "ELTXINDEX" // the v3 page index does not match the frames
  | "ELTXCHECKSUM" // file checksum or post-apply checksum mismatch
  | "ELTXTRUNCATED" // the input ended before the format said it would
  | "ELTXTRAILING" // bytes after the trailer
  | "ELTXLZ4" // an LZ4 block or frame is corrupt (lengths, offsets, checksums)
  | "ELTXENCODE" // the encoder was asked to write something the format forbids
  | "ELTXAPPLY" // an LTX file does not follow the database's position
  | "ELTXCOMPACT" // inputs to the compactor are not contiguous or disagree
  | "ELTXDATABASE"; // a SQLite database file given to encode/apply/checksum is not whole valid pages

export interface LtxErrorDetails {
  /** The file being read or written, when known. */
  file?: string;
  /** Byte offset in the (decompressed, for v1 LZ4) LTX stream where the problem was found. */
  offset?: number;
  /** Short name of the rule that was broken, e.g. "pages ascending". */
  rule?: string;
  cause?: unknown;
}

export class LtxError extends Error {
  override readonly name = "LtxError";
  readonly code: LtxErrorCode;
  file: string | undefined;
  readonly offset: number | undefined;
  readonly rule: string | undefined;
  readonly detail: string;

  constructor(code: LtxErrorCode, detail: string, details: LtxErrorDetails = {}) {
    super(
      LtxError.format(code, detail, details),
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.code = code;
    this.detail = detail;
    this.file = details.file;
    this.offset = details.offset;
    this.rule = details.rule;
  }

  /** Returns a copy of this error that names `file` (decoders learn the name after the fact). */
  withFile(file: string): LtxError {
    if (this.file !== undefined) return this;
    return new LtxError(this.code, this.detail, {
      file,
      offset: this.offset,
      rule: this.rule,
      cause: this.cause,
    });
  }

  private static format(code: LtxErrorCode, detail: string, d: LtxErrorDetails): string {
    const where: string[] = [];
    if (d.file !== undefined) where.push(d.file);
    if (d.offset !== undefined) where.push(`offset ${d.offset}`);
    const rule = d.rule === undefined ? "" : ` [rule: ${d.rule}]`;
    return `${where.length > 0 ? where.join(" at ") + ": " : ""}${detail}${rule} (${code})`;
  }
}
