// Errors of the replication stream (docs/protocol.md). Every failure has a stable `code` that callers
// match on and says where it happened: the byte offset in the stream, the index of the frame, the rule
// that was broken and, where known, the database. Decoding errors are sticky: once a decoder has thrown,
// the stream is unusable and the replica reconnects.

export type StreamErrorCode =
  | "ESTREAMFRAME" // a frame (or the preamble) breaks a rule of the format: layout, limits, order
  | "ESTREAMCHECKSUM" // a frame's header or payload CRC-32 does not match
  | "ESTREAMTRUNCATED" // the stream ended inside a frame, inside an LTX file, or before END/ERROR
  | "ESTREAMENCODE" // the encoder was asked to send something the decoder would refuse
  | "ESTREAMREQUEST" // a malformed request body or header (primary side; HTTP 400)
  | "ESTREAMCLUSTER" // the two nodes belong to different clusters (HTTP 409)
  | "ESTREAMNODE" // a node id is missing, malformed, or names the primary itself (HTTP 400/409)
  | "ESTREAMAUTH" // the bearer token is missing or wrong (HTTP 401)
  | "ESTREAMEPOCH" // a lease epoch older than one already seen: a stale primary (fencing)
  | "ESTREAMTXID" // an incremental LTX file does not start right after the replica's TXID
  | "ESTREAMPREAPPLY"; // an incremental LTX file's pre-apply checksum is not the replica's checksum

export interface StreamErrorDetails {
  /** Byte offset in the stream (response body or request body) where the offending part starts. */
  offset?: number;
  /** 0-based index of the offending frame (the preamble is not a frame). */
  frameIndex?: number;
  /** Name of the frame type, when known ("ltx-begin", …). */
  frameType?: string;
  /** Short name of the rule that was broken, e.g. "payload checksum". */
  rule?: string;
  db?: string;
  cause?: unknown;
}

export class StreamError extends Error {
  override readonly name = "StreamError";
  readonly code: StreamErrorCode;
  readonly offset: number | undefined;
  readonly frameIndex: number | undefined;
  readonly frameType: string | undefined;
  readonly rule: string | undefined;
  readonly db: string | undefined;
  readonly detail: string;

  constructor(code: StreamErrorCode, detail: string, details: StreamErrorDetails = {}) {
    super(
      StreamError.#format(code, detail, details),
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.code = code;
    this.detail = detail;
    this.offset = details.offset;
    this.frameIndex = details.frameIndex;
    this.frameType = details.frameType;
    this.rule = details.rule;
    this.db = details.db;
  }

  static #format(code: StreamErrorCode, detail: string, d: StreamErrorDetails): string {
    const where: string[] = [];
    if (d.frameIndex !== undefined) {
      where.push(`frame ${d.frameIndex}${d.frameType === undefined ? "" : ` (${d.frameType})`}`);
    }
    if (d.offset !== undefined) where.push(`offset ${d.offset}`);
    if (d.db !== undefined) where.push(`db ${JSON.stringify(d.db)}`);
    const rule = d.rule === undefined ? "" : ` [rule: ${d.rule}]`;
    return `stream ${where.length > 0 ? where.join(", ") + ": " : ""}${detail}${rule} (${code})`;
  }
}

export function isStreamError(err: unknown, code?: StreamErrorCode): err is StreamError {
  return err instanceof StreamError && (code === undefined || err.code === code);
}

/**
 * A broken rule found by the shared payload and ordering checks. Internal: the decoder turns it into a
 * StreamError (ESTREAMFRAME, with offset and frame index), the encoder into ESTREAMENCODE.
 */
export class StreamViolation extends Error {
  override readonly name = "StreamViolation";
  constructor(
    readonly rule: string,
    detail: string,
    readonly db?: string,
  ) {
    super(detail);
  }
}
