// Compaction: several contiguous LTX files into one that has the same effect. Inputs are streamed
// side by side and merged by page number — the latest input holding a page wins, pages past the final
// commit are dropped — so memory is one page per input however large the files are.
//
// Rules (ltx.md): inputs sorted by TXID must be contiguous (`min ≤ prevMax + 1 && max > prevMax`) and
// share a page size; where one starts exactly after the previous (and both track checksums) its
// pre-apply checksum must be the previous post-apply checksum. The header takes page size, min TXID and
// pre-apply checksum from the first input, commit, max TXID and timestamp from the last; WAL fields
// and node ID are zero; NoChecksum if any input has it. The post-apply checksum is the last input's.
//
// Output is written as it is produced: when compaction fails (a bad input, inputs that disagree) the
// sink holds an incomplete file, which the caller discards — compactLtxFiles does so itself.

import type { Writable } from "node:stream";
import { openLtxFile, type LtxDecoder, type LtxPage } from "./decoder.js";
import { LtxStreamEncoder, writeFileAtomically, type ByteSink } from "./encode-stream.js";
import { LtxError } from "./errors.js";
import type { LtxWriteFormat } from "./format.js";
import { hasNoChecksum, HEADER_FLAG_NO_CHECKSUM, isSnapshot, type Header } from "./header.js";
import type { Trailer } from "./trailer.js";

export interface CompactOptions {
  /** Output format; default "v3". */
  format?: LtxWriteFormat;
  /** Output name, for errors. */
  file?: string;
}

export interface CompactResult {
  header: Header;
  trailer: Trailer;
  pageCount: number;
  size: number;
}

interface Input {
  decoder: LtxDecoder;
  header: Header;
  /** The page waiting to be merged; undefined = read the next one; null = input exhausted. */
  current: LtxPage | undefined | null;
}

function compactError(rule: string, detail: string, file?: string, cause?: unknown): LtxError {
  return new LtxError("ELTXCOMPACT", detail, { file, rule, cause });
}

/** The output header for inputs sorted by TXID (see the file comment). */
export function compactedHeader(headers: readonly Header[]): Header {
  const first = headers[0];
  const last = headers[headers.length - 1];
  const noChecksum = headers.some(hasNoChecksum);
  return {
    flags: noChecksum ? HEADER_FLAG_NO_CHECKSUM : 0,
    pageSize: first.pageSize,
    commit: last.commit,
    minTxid: first.minTxid,
    maxTxid: last.maxTxid,
    timestamp: last.timestamp,
    preApplyChecksum: noChecksum || isSnapshot(first) ? 0n : first.preApplyChecksum,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
}

/**
 * Compacts the files read by `decoders` into `sink`. The decoders are read to their ends (so every
 * input is verified) and closed.
 */
export async function compactLtx(
  decoders: readonly LtxDecoder[],
  sink: Writable | ByteSink,
  options: CompactOptions = {},
): Promise<CompactResult> {
  if (decoders.length === 0) throw compactError("inputs", "nothing to compact: no inputs");
  const inputs: Input[] = [];
  try {
    for (const decoder of decoders)
      inputs.push({ decoder, header: await decoder.readHeader(), current: undefined });
    inputs.sort((a, b) =>
      a.header.minTxid < b.header.minTxid ? -1 : a.header.minTxid > b.header.minTxid ? 1 : 0,
    );
    checkContiguous(inputs);

    const header = compactedHeader(inputs.map((input) => input.header));
    const encoder = new LtxStreamEncoder(sink, { format: options.format ?? "v3", file: options.file });
    await encoder.writeHeader(header);
    let pageCount = 0;
    for (;;) {
      let pgno = Infinity;
      for (const input of inputs) {
        if (input.current === undefined) input.current = (await input.decoder.readPage()) ?? null;
        if (input.current !== null && input.current.pgno < pgno) pgno = input.current.pgno;
      }
      if (pgno === Infinity) break;
      let winner: LtxPage | undefined;
      for (const input of inputs) {
        if (input.current?.pgno !== pgno) continue;
        winner = input.current; // later inputs overwrite earlier ones
        input.current = undefined;
      }
      if (pgno <= header.commit) {
        await encoder.writePage(pgno, winner!.data);
        pageCount++;
      }
    }

    checkChecksumsChain(inputs);
    const last = inputs[inputs.length - 1];
    const postApply = hasNoChecksum(header) ? 0n : last.decoder.summary!.trailer.postApplyChecksum;
    const trailer = await encoder.finish(postApply);
    return { header: encoder.header, trailer, pageCount, size: encoder.size };
  } catch (err) {
    if (err instanceof LtxError && err.code === "ELTXENCODE") {
      throw compactError(
        "inputs consistent",
        `the inputs do not compact to a valid file: ${err.detail}`,
        options.file,
        err,
      );
    }
    throw err;
  } finally {
    for (const decoder of decoders) await decoder.close();
  }
}

function checkContiguous(inputs: readonly Input[]): void {
  for (let i = 1; i < inputs.length; i++) {
    const prev = inputs[i - 1];
    const { header, decoder } = inputs[i];
    if (header.pageSize !== prev.header.pageSize) {
      throw compactError(
        "page sizes match",
        `page size ${header.pageSize} after ${prev.header.pageSize}`,
        decoder.file,
      );
    }
    if (header.minTxid > prev.header.maxTxid + 1n || header.maxTxid <= prev.header.maxTxid) {
      throw compactError(
        "contiguous TXIDs",
        `TXIDs ${header.minTxid}-${header.maxTxid} do not continue ${prev.header.minTxid}-${prev.header.maxTxid}`,
        decoder.file,
      );
    }
  }
}

function checkChecksumsChain(inputs: readonly Input[]): void {
  for (let i = 1; i < inputs.length; i++) {
    const prev = inputs[i - 1];
    const { header, decoder } = inputs[i];
    if (header.minTxid !== prev.header.maxTxid + 1n || hasNoChecksum(header) || hasNoChecksum(prev.header))
      continue;
    const post = prev.decoder.summary!.trailer.postApplyChecksum;
    if (header.preApplyChecksum !== post) {
      throw compactError(
        "checksums chain",
        `pre-apply checksum ${header.preApplyChecksum.toString(16)} is not the previous file's post-apply ${post.toString(16)}`,
        decoder.file,
      );
    }
  }
}

/** Compacts LTX files on disk into `outPath`, written crash-safely (nothing is left on failure). */
export async function compactLtxFiles(
  paths: readonly string[],
  outPath: string,
  options: Omit<CompactOptions, "file"> = {},
): Promise<CompactResult> {
  return writeFileAtomically(outPath, (sink) =>
    compactLtx(
      paths.map((path) => openLtxFile(path)),
      sink,
      { ...options, file: outPath },
    ),
  );
}
