// The 16-byte trailer: the database's rolling checksum after the file applies, then the checksum of
// the file itself. Same in every format generation.

import { CHECKSUM_FLAG, EMPTY_DATABASE_CHECKSUM } from "./checksum.js";
import { LtxError, type LtxErrorCode } from "./errors.js";
import { hasNoChecksum, type Header } from "./header.js";

export const TRAILER_SIZE = 16;

export interface Trailer {
  postApplyChecksum: bigint;
  fileChecksum: bigint;
}

export function encodeTrailer(trailer: Trailer): Uint8Array {
  const bytes = new Uint8Array(TRAILER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, trailer.postApplyChecksum);
  view.setBigUint64(8, trailer.fileChecksum);
  return bytes;
}

/** Reads a trailer from exactly 16 bytes. */
export function decodeTrailer(bytes: Uint8Array): Trailer {
  if (bytes.length !== TRAILER_SIZE)
    throw new RangeError(`trailer is ${TRAILER_SIZE} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, TRAILER_SIZE);
  return { postApplyChecksum: view.getBigUint64(0), fileChecksum: view.getBigUint64(8) };
}

export interface ValidatePostApplyOptions {
  file?: string;
  /** File offset of the trailer, for the error. */
  offset?: number;
  code?: LtxErrorCode;
}

/**
 * The post-apply checksum rules: zero under NoChecksum; otherwise bit 63 set, and exactly the empty
 * database's checksum when the file deletes the database (commit 0).
 */
export function validatePostApplyChecksum(
  header: Header,
  postApply: bigint,
  options: ValidatePostApplyOptions = {},
): void {
  const fail = (rule: string, detail: string): never => {
    throw new LtxError(options.code ?? "ELTXCHECKSUM", detail, {
      file: options.file,
      offset: options.offset,
      rule,
    });
  };
  if (hasNoChecksum(header)) {
    if (postApply !== 0n)
      fail("no-checksum post-apply zero", "post-apply checksum must be 0 when NoChecksum is set");
    return;
  }
  if ((postApply & CHECKSUM_FLAG) === 0n) {
    fail(
      "post-apply checksum flag",
      `post-apply checksum ${postApply.toString(16).padStart(16, "0")} lacks bit 63`,
    );
  }
  if (header.commit === 0 && postApply !== EMPTY_DATABASE_CHECKSUM) {
    fail(
      "commit 0 post-apply empty",
      `a deletion (commit 0) must have post-apply checksum 8000000000000000, not ${postApply.toString(16)}`,
    );
  }
}
