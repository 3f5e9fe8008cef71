// The LTX library's public API. Other layers import from here, not from the individual files.

export { LtxError, type LtxErrorCode, type LtxErrorDetails } from "./errors.js";
export { crc64, Crc64Hash } from "./crc64.js";
export {
  CHECKSUM_FLAG,
  EMPTY_DATABASE_CHECKSUM,
  checksumDatabaseBytes,
  checksumDatabaseFile,
  databaseChecksum,
  lockPgno,
  pageChecksum,
  pageSizeFromHeader,
  RollingChecksum,
} from "./checksum.js";
export { compressBlock, compressBlockBound, decompressBlock } from "./lz4-block.js";
export { Lz4FrameDecoder, Lz4FrameEncoder, lz4FrameCompress, lz4FrameDecompress } from "./lz4-frame.js";

export { formatHex64, parseHex64 } from "./hex64.js";
export { formatPos, isZeroPos, parsePos, posEqual, ZERO_POS, type Pos } from "./pos.js";
export { formatFileName, isLtxFileName, parseFileName, type TxidRange } from "./file-name.js";
export {
  decodeHeader,
  encodeHeader,
  hasNoChecksum,
  HEADER_FLAG_COMPRESS_LZ4,
  HEADER_FLAG_NO_CHECKSUM,
  HEADER_SIZE,
  headerLockPgno,
  isSnapshot,
  isValidPageSize,
  MAX_PAGE_SIZE,
  MIN_PAGE_SIZE,
  validateHeader,
  type Header,
} from "./header.js";
export {
  decodeTrailer,
  encodeTrailer,
  TRAILER_SIZE,
  validatePostApplyChecksum,
  type Trailer,
} from "./trailer.js";
export { detectFormat, isV1Format, LTX_FORMATS, type LtxFormat, type LtxWriteFormat } from "./format.js";
export { decodePageIndex, findPageIndexEntry, PageIndexBuilder, type PageIndexEntry } from "./page-index.js";

export { LtxParser, NEED_INPUT, type LtxParserOptions, type LtxSummary, type ParseEvent } from "./parser.js";
export {
  decodeLtx,
  fileSource,
  LtxDecoder,
  openLtxFile,
  readLtxFile,
  verifyLtxFile,
  type ByteSource,
  type DecodedLtx,
  type LtxDecoderOptions,
  type LtxPage,
} from "./decoder.js";
export { LtxPageReader, readPageAt } from "./page-reader.js";
export { encodeLtx, LtxEncoder, type LtxEncoderOptions } from "./encoder.js";
export {
  fileHandleSink,
  LtxStreamEncoder,
  writeFileAtomically,
  writeLtxFile,
  type ByteSink,
} from "./encode-stream.js";
export {
  compactedHeader,
  compactLtx,
  compactLtxFiles,
  type CompactOptions,
  type CompactResult,
} from "./compactor.js";
export { applyLtxFiles, type ApplyLtxOptions, type ApplyLtxResult } from "./apply.js";
export { planApply, type ApplyPlan, type PlannedFile } from "./apply-plan.js";
export {
  encodeDatabaseSnapshot,
  writeDatabaseSnapshotFile,
  type DatabaseSnapshotOptions,
  type DatabaseSnapshotResult,
} from "./database-snapshot.js";
export { readDatabaseShape, readDatabasePages, type DatabaseShape } from "./database-file.js";
