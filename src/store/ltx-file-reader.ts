// Synchronous reading of LTX files on local disk, for the store's recovery and apply paths (which run
// before the mount serves requests, or inside one): the ltx library's LtxParser fed by readSync, so
// pages stream through one at a time and every rule the parser checks is checked.

import fs from "node:fs";

import { decodeHeader, HEADER_SIZE, type Header } from "../ltx/header.js";
import type { LtxPage } from "../ltx/page-frame.js";
import { LtxParser, NEED_INPUT, type LtxSummary } from "../ltx/parser.js";
import { decodeTrailer, TRAILER_SIZE, type Trailer } from "../ltx/trailer.js";

const CHUNK_BYTES = 256 * 1024;

/**
 * Reads and verifies the whole file, calling `onPage` for each page in order (the page's bytes are the
 * callback's to keep). Pages are handed out before the final checksum is verified: a caller that acts
 * on them must be able to undo it if this throws. Throws LtxError for a bad file.
 */
export function readLtxFileSync(file: string, onPage?: (page: LtxPage, header: Header) => void): LtxSummary {
  const fd = fs.openSync(file, "r");
  try {
    const parser = new LtxParser({ file });
    let position = 0;
    let header: Header | undefined;
    for (;;) {
      const event = parser.next();
      if (event === NEED_INPUT) {
        const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
        const n = fs.readSync(fd, chunk, 0, CHUNK_BYTES, position);
        if (n === 0) parser.end();
        else parser.push(chunk.subarray(0, n));
        position += n;
        continue;
      }
      if (event === undefined) throw new Error(`LTX parser ended without a summary: ${file}`);
      if (event.kind === "header") header = event.header;
      else if (event.kind === "page") onPage?.(event.page, header!);
      else return event.summary;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The header and trailer of a file without reading the pages (no verification beyond the header's). */
export function readLtxHeaderAndTrailer(file: string): { header: Header; trailer: Trailer; size: number } {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(HEADER_SIZE);
    const tail = Buffer.alloc(TRAILER_SIZE);
    if (size < HEADER_SIZE + TRAILER_SIZE) {
      decodeHeader(head.subarray(0, 0), file); // throws a truncation error naming the file
    }
    fs.readSync(fd, head, 0, HEADER_SIZE, 0);
    fs.readSync(fd, tail, 0, TRAILER_SIZE, size - TRAILER_SIZE);
    return { header: decodeHeader(head, file), trailer: decodeTrailer(tail), size };
  } finally {
    fs.closeSync(fd);
  }
}
