// SQLite's write-ahead log file (`-wal`): a 32-byte header, then frames of a 24-byte frame header and
// one page each. All integers are big-endian. Every frame carries the header's two salts and a running
// checksum over everything before it, so a reader finds the valid prefix of the log by walking frames
// until a salt or checksum does not match; a frame whose "db size after commit" field is non-zero ends
// a transaction, and only frames up to the last such frame are committed. This module does exactly
// that walk (scanWal), plus the checksum, header and frame codecs and a builder of valid logs.
//
// Pure: takes bytes (or a read callback), returns data.

import { SqliteFormatError, isValidPageSize } from "./sqlite-header.js";

export const WAL_HEADER_SIZE = 32;
export const WAL_FRAME_HEADER_SIZE = 24;
/** Magic with the low bit clear: checksums read 32-bit words little-endian (written by x86/ARM hosts). */
export const WAL_MAGIC_LE = 0x377f0682;
/** Magic with the low bit set: checksums read 32-bit words big-endian. */
export const WAL_MAGIC_BE = 0x377f0683;
/** The only WAL format version (3.7.0). */
export const WAL_FORMAT_VERSION = 3007000;

/** The running checksum: two unsigned 32-bit sums (s0, s1). */
export type WalChecksum = readonly [number, number];

export interface WalHeader {
  readonly magic: number;
  /** True for WAL_MAGIC_BE: checksum words are read big-endian. */
  readonly bigEndianChecksum: boolean;
  readonly version: number;
  readonly pageSize: number;
  readonly checkpointSeq: number;
  readonly salt1: number;
  readonly salt2: number;
  /** Checksum of the header's first 24 bytes; the seed of the first frame's checksum. */
  readonly checksum: WalChecksum;
}

export interface WalFrameHeader {
  readonly pgno: number;
  /** Database size in pages after this commit; 0 when the frame does not end a transaction. */
  readonly commitDbSize: number;
  readonly salt1: number;
  readonly salt2: number;
  readonly checksum: WalChecksum;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// Scratch for the checksum loop's result, so that the per-frame path allocates nothing.
const sums = new Int32Array(2);

/**
 * Adds `bytes` (length a multiple of 8) to the running sums in `sums`: for each pair of 32-bit words
 * (x0, x1): s0 += x0 + s1; s1 += x1 + s0, modulo 2^32. Words are read little- or big-endian as asked.
 */
function accumulate(bytes: Uint8Array, bigEndian: boolean): void {
  let s0 = sums[0];
  let s1 = sums[1];
  const n = bytes.length >>> 2;
  if ((bytes.byteOffset & 3) === 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
    if (bigEndian !== HOST_LITTLE_ENDIAN) {
      for (let i = 0; i < n; i += 2) {
        s0 = (s0 + w[i] + s1) | 0;
        s1 = (s1 + w[i + 1] + s0) | 0;
      }
    } else {
      for (let i = 0; i < n; i += 2) {
        const a = w[i];
        const b = w[i + 1];
        s0 = (s0 + (((a << 24) | ((a & 0xff00) << 8) | ((a >>> 8) & 0xff00) | (a >>> 24)) >>> 0) + s1) | 0;
        s1 = (s1 + (((b << 24) | ((b & 0xff00) << 8) | ((b >>> 8) & 0xff00) | (b >>> 24)) >>> 0) + s0) | 0;
      }
    }
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const little = !bigEndian;
    for (let i = 0; i < n; i += 2) {
      s0 = (s0 + view.getUint32(i * 4, little) + s1) | 0;
      s1 = (s1 + view.getUint32(i * 4 + 4, little) + s0) | 0;
    }
  }
  sums[0] = s0;
  sums[1] = s1;
}

/**
 * SQLite's WAL checksum of `bytes` (length a multiple of 8), continuing from `seed` ([0, 0] for a
 * header). Also used, in the host's byte order, for the wal-index header in `-shm`.
 */
export function walChecksum(bytes: Uint8Array, bigEndian: boolean, seed: WalChecksum = [0, 0]): WalChecksum {
  if ((bytes.length & 7) !== 0) {
    throw new RangeError(`walChecksum: length ${bytes.length} is not a multiple of 8`);
  }
  sums[0] = seed[0];
  sums[1] = seed[1];
  accumulate(bytes, bigEndian);
  return [sums[0] >>> 0, sums[1] >>> 0];
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Why `bytes` is not a valid WAL header (as SQLite's recovery judges it), or undefined. */
export function walHeaderProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length < WAL_HEADER_SIZE) return `WAL header needs ${WAL_HEADER_SIZE} bytes, got ${bytes.length}`;
  const view = viewOf(bytes);
  const magic = view.getUint32(0, false);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return `bad WAL magic 0x${magic.toString(16)}`;
  const version = view.getUint32(4, false);
  if (version !== WAL_FORMAT_VERSION) return `WAL version ${version} is not ${WAL_FORMAT_VERSION}`;
  const pageSize = view.getUint32(8, false);
  if (!isValidPageSize(pageSize)) return `bad WAL page size ${pageSize}`;
  const sum = walChecksum(bytes.subarray(0, 24), magic === WAL_MAGIC_BE);
  if (sum[0] !== view.getUint32(24, false) || sum[1] !== view.getUint32(28, false)) {
    return "WAL header checksum mismatch";
  }
  return undefined;
}

/** Parses and validates a WAL header; throws SqliteFormatError EWALHEADER when it is not valid. */
export function parseWalHeader(bytes: Uint8Array): WalHeader {
  const problem = walHeaderProblem(bytes);
  if (problem !== undefined) throw new SqliteFormatError("EWALHEADER", problem, 0);
  const view = viewOf(bytes);
  const magic = view.getUint32(0, false);
  return {
    magic,
    bigEndianChecksum: magic === WAL_MAGIC_BE,
    version: WAL_FORMAT_VERSION,
    pageSize: view.getUint32(8, false),
    checkpointSeq: view.getUint32(12, false),
    salt1: view.getUint32(16, false),
    salt2: view.getUint32(20, false),
    checksum: [view.getUint32(24, false), view.getUint32(28, false)],
  };
}

export interface WalHeaderFields {
  readonly pageSize: number;
  readonly checkpointSeq: number;
  readonly salt1: number;
  readonly salt2: number;
  /** Default false: little-endian checksums, what SQLite writes on x86 and ARM. */
  readonly bigEndianChecksum?: boolean;
}

/** Builds a valid 32-byte WAL header (checksum included) and returns it with its parsed form. */
export function encodeWalHeader(fields: WalHeaderFields): { bytes: Uint8Array; header: WalHeader } {
  if (!isValidPageSize(fields.pageSize)) {
    throw new SqliteFormatError("EWALHEADER", `encodeWalHeader: bad page size ${fields.pageSize}`);
  }
  const bigEndian = fields.bigEndianChecksum === true;
  const bytes = new Uint8Array(WAL_HEADER_SIZE);
  const view = viewOf(bytes);
  const magic = bigEndian ? WAL_MAGIC_BE : WAL_MAGIC_LE;
  view.setUint32(0, magic, false);
  view.setUint32(4, WAL_FORMAT_VERSION, false);
  view.setUint32(8, fields.pageSize, false);
  view.setUint32(12, fields.checkpointSeq >>> 0, false);
  view.setUint32(16, fields.salt1 >>> 0, false);
  view.setUint32(20, fields.salt2 >>> 0, false);
  const checksum = walChecksum(bytes.subarray(0, 24), bigEndian);
  view.setUint32(24, checksum[0], false);
  view.setUint32(28, checksum[1], false);
  return { bytes, header: parseWalHeader(bytes) };
}

/** Reads a 24-byte frame header (no validation: scanWal decides validity). */
export function parseWalFrameHeader(bytes: Uint8Array): WalFrameHeader {
  if (bytes.length < WAL_FRAME_HEADER_SIZE) {
    throw new SqliteFormatError("EWALFRAME", `frame header needs 24 bytes, got ${bytes.length}`);
  }
  const view = viewOf(bytes);
  return {
    pgno: view.getUint32(0, false),
    commitDbSize: view.getUint32(4, false),
    salt1: view.getUint32(8, false),
    salt2: view.getUint32(12, false),
    checksum: [view.getUint32(16, false), view.getUint32(20, false)],
  };
}

/** Byte offset of frame `index` (0-based) in a WAL with `pageSize`-byte pages. */
export function walFrameOffset(pageSize: number, index: number): number {
  return WAL_HEADER_SIZE + index * (WAL_FRAME_HEADER_SIZE + pageSize);
}

export interface WalFrameInput {
  readonly pgno: number;
  /** The page; exactly pageSize bytes. */
  readonly page: Uint8Array;
  /** Database size in pages after this commit, or 0 (default) for a frame inside a transaction. */
  readonly commitDbSize?: number;
}

/**
 * Builds one frame (24-byte header + page) that follows a frame (or the header) whose running
 * checksum is `previous`. Returns the bytes and the new running checksum.
 */
export function encodeWalFrame(
  header: WalHeader,
  previous: WalChecksum,
  frame: WalFrameInput,
): { bytes: Uint8Array; checksum: WalChecksum } {
  if (!Number.isInteger(frame.pgno) || frame.pgno < 1 || frame.pgno > 0xffffffff) {
    throw new SqliteFormatError("EWALFRAME", `encodeWalFrame: bad page number ${frame.pgno}`);
  }
  if (frame.page.length !== header.pageSize) {
    throw new SqliteFormatError(
      "EWALFRAME",
      `encodeWalFrame: page is ${frame.page.length} bytes, not ${header.pageSize}`,
    );
  }
  const bytes = new Uint8Array(WAL_FRAME_HEADER_SIZE + header.pageSize);
  const view = viewOf(bytes);
  view.setUint32(0, frame.pgno, false);
  view.setUint32(4, (frame.commitDbSize ?? 0) >>> 0, false);
  view.setUint32(8, header.salt1, false);
  view.setUint32(12, header.salt2, false);
  bytes.set(frame.page, WAL_FRAME_HEADER_SIZE);
  sums[0] = previous[0];
  sums[1] = previous[1];
  accumulate(bytes.subarray(0, 8), header.bigEndianChecksum);
  accumulate(bytes.subarray(WAL_FRAME_HEADER_SIZE), header.bigEndianChecksum);
  const checksum: WalChecksum = [sums[0] >>> 0, sums[1] >>> 0];
  view.setUint32(16, checksum[0], false);
  view.setUint32(20, checksum[1], false);
  return { bytes, checksum };
}

/** Builds a whole WAL file: a header and the frames in order. For tests and fault injection. */
export function buildWal(fields: WalHeaderFields, frames: readonly WalFrameInput[]): Uint8Array {
  const { bytes: headerBytes, header } = encodeWalHeader(fields);
  const out = new Uint8Array(walFrameOffset(header.pageSize, frames.length));
  out.set(headerBytes, 0);
  let checksum = header.checksum;
  frames.forEach((frame, i) => {
    const encoded = encodeWalFrame(header, checksum, frame);
    out.set(encoded.bytes, walFrameOffset(header.pageSize, i));
    checksum = encoded.checksum;
  });
  return out;
}

/** Random access to WAL bytes, e.g. over a file descriptor with readSync. */
export interface WalByteSource {
  /** Bytes available (the WAL's size); the scan never reads at or past it. */
  readonly size: number;
  /**
   * Returns exactly `length` bytes at `offset` (offset + length ≤ size). The scan reads each frame
   * once, in order, and does not keep the returned view past the next call, so it may be reused.
   */
  read(offset: number, length: number): Uint8Array;
}

/** A WalByteSource over bytes held in memory (zero-copy views). */
export function walBytesSource(bytes: Uint8Array): WalByteSource {
  return { size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Where a scan starts: the byte offset of the next frame and the running checksum before it. */
export interface WalPosition {
  readonly offset: number;
  readonly checksum: WalChecksum;
}

/** The position of the first frame of a WAL with `header`. */
export function walStartPosition(header: WalHeader): WalPosition {
  return { offset: WAL_HEADER_SIZE, checksum: header.checksum };
}

/** One committed transaction found by scanWal. */
export interface WalCommit {
  /** Frame numbers, 1-based as SQLite counts them (mxFrame): first and last (the commit frame). */
  readonly firstFrame: number;
  readonly lastFrame: number;
  /** Byte offset of the first frame's header. */
  readonly startOffset: number;
  /** Byte offset just past the commit frame: where the next transaction's frames start. */
  readonly endOffset: number;
  /** Database size in pages after this transaction (the commit frame's field). */
  readonly dbPageCount: number;
  /**
   * Every page the transaction wrote → byte offset of the header of its last frame in this
   * transaction (the page itself is at +WAL_FRAME_HEADER_SIZE). May include pages past dbPageCount
   * (written, then cut off by a shrinking commit such as VACUUM); a caller building the database
   * image must drop those.
   */
  readonly pages: ReadonlyMap<number, number>;
  /** Running checksum after the commit frame: the seed for the next frame. */
  readonly checksum: WalChecksum;
}

export type WalScanStop =
  | "end" // the source ended exactly on a frame boundary
  | "partial-frame" // fewer than a whole frame's bytes remained (a torn write, or a file being extended)
  | "salt" // a frame's salts differ from the header's: left over from an earlier generation of the log
  | "pgno" // a frame with page number 0
  | "checksum" // the running checksum does not match: torn, corrupt or stale
  | "max-frames"; // options.maxFrames reached

export interface WalScanResult {
  readonly commits: readonly WalCommit[];
  /** Position after the last commit found (or the start position when none): where the next scan starts. */
  readonly position: WalPosition;
  /** Why the scan stopped, and the byte offset of the frame it stopped at. */
  readonly stop: WalScanStop;
  readonly stopOffset: number;
  /** Valid frames after the last commit: a transaction still being written, or one that was abandoned. */
  readonly uncommittedFrames: number;
}

export interface WalScanOptions {
  /** Stop after examining this many frames (a bound on the work of one call). Default: no bound. */
  readonly maxFrames?: number;
}

/**
 * Walks the frames of a WAL from `from` (default: the first frame) and returns the committed
 * transactions after that point, judging validity exactly as SQLite's recovery does: a frame counts
 * only if its salts equal the header's, its page number is non-zero and its checksum equals the
 * running checksum over the previous frames (seeded by `from.checksum`); the first frame that fails
 * ends the scan. Frames after the last commit frame are reported as uncommitted, not returned.
 *
 * `header` must be the header the frames belong to (parseWalHeader of the log's first 32 bytes);
 * `from.offset` must be a frame boundary of that log.
 */
export function scanWal(
  source: WalByteSource | Uint8Array,
  header: WalHeader,
  from: WalPosition = walStartPosition(header),
  options: WalScanOptions = {},
): WalScanResult {
  const src = source instanceof Uint8Array ? walBytesSource(source) : source;
  const pageSize = header.pageSize;
  const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
  if (from.offset < WAL_HEADER_SIZE || (from.offset - WAL_HEADER_SIZE) % frameSize !== 0) {
    throw new SqliteFormatError(
      "EWALFRAME",
      `scanWal: start ${from.offset} is not a frame boundary`,
      from.offset,
    );
  }
  const maxFrames = options.maxFrames ?? Number.POSITIVE_INFINITY;
  const bigEndian = header.bigEndianChecksum;

  const commits: WalCommit[] = [];
  let position: WalPosition = from;
  let pending = new Map<number, number>();
  let pendingStart = from.offset;
  let offset = from.offset;
  let s0 = from.checksum[0] | 0;
  let s1 = from.checksum[1] | 0;
  let examined = 0;
  let stop: WalScanStop;

  for (;;) {
    if (examined >= maxFrames) {
      stop = "max-frames";
      break;
    }
    const left = src.size - offset;
    if (left < frameSize) {
      stop = left <= 0 ? "end" : "partial-frame";
      break;
    }
    examined++;
    const frame = src.read(offset, frameSize);
    if (frame.length !== frameSize) {
      throw new SqliteFormatError(
        "EWALFRAME",
        `scanWal: source returned ${frame.length} of ${frameSize} bytes`,
        offset,
      );
    }
    const view = viewOf(frame);
    if (view.getUint32(8, false) !== header.salt1 || view.getUint32(12, false) !== header.salt2) {
      stop = "salt";
      break;
    }
    const pgno = view.getUint32(0, false);
    if (pgno === 0) {
      stop = "pgno";
      break;
    }
    sums[0] = s0;
    sums[1] = s1;
    accumulate(frame.subarray(0, 8), bigEndian);
    accumulate(frame.subarray(WAL_FRAME_HEADER_SIZE), bigEndian);
    if (sums[0] >>> 0 !== view.getUint32(16, false) || sums[1] >>> 0 !== view.getUint32(20, false)) {
      stop = "checksum";
      break;
    }
    s0 = sums[0];
    s1 = sums[1];
    pending.set(pgno, offset);
    offset += frameSize;
    const commitDbSize = view.getUint32(4, false);
    if (commitDbSize !== 0) {
      const checksum: WalChecksum = [s0 >>> 0, s1 >>> 0];
      commits.push({
        firstFrame: (pendingStart - WAL_HEADER_SIZE) / frameSize + 1,
        lastFrame: (offset - WAL_HEADER_SIZE) / frameSize,
        startOffset: pendingStart,
        endOffset: offset,
        dbPageCount: commitDbSize,
        pages: pending,
        checksum,
      });
      position = { offset, checksum };
      pending = new Map();
      pendingStart = offset;
    }
  }
  return {
    commits,
    position,
    stop,
    stopOffset: offset,
    uncommittedFrames: (offset - position.offset) / frameSize,
  };
}

/**
 * The last version of every page across `commits` (in order), limited to the final commit's database
 * size: pgno → frame header offset. What a checkpoint of those commits writes into the database file.
 */
export function walPagesAfter(commits: readonly WalCommit[]): Map<number, number> {
  const out = new Map<number, number>();
  if (commits.length === 0) return out;
  for (const commit of commits) for (const [pgno, offset] of commit.pages) out.set(pgno, offset);
  const dbPageCount = commits[commits.length - 1].dbPageCount;
  for (const pgno of out.keys()) if (pgno > dbPageCount) out.delete(pgno);
  return out;
}
