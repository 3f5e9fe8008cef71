// A database's recent history as its LTX files tell it (TXID ranges with the checksums before and
// after each), for a replica to report when it connects: the primary compares it with its own to find
// where the two last agreed (divergence.ts). Reads only each file's header and trailer.

import { readLtxHeaderAndTrailer } from "./ltx-file-reader.js";
import { listLtxFiles } from "./ltx-directory.js";
import type { ChainLink } from "./divergence.js";

/**
 * The last `max` LTX files in `ltxDir` up to TXID `upTo`, ascending. A file whose header or trailer
 * cannot be read ends the list there (only the files after it are reported): a history with a hole
 * reported as whole would be a lie.
 */
export function recentHistoryLinks(ltxDir: string, upTo: bigint, max: number): ChainLink[] {
  const files = listLtxFiles(ltxDir).filter((f) => f.maxTxid <= upTo);
  const out: ChainLink[] = [];
  for (let i = files.length - 1; i >= 0 && out.length < max; i--) {
    let link: ChainLink;
    try {
      const { header, trailer } = readLtxHeaderAndTrailer(files[i].path);
      link = {
        minTxid: header.minTxid,
        maxTxid: header.maxTxid,
        preApplyChecksum: header.preApplyChecksum,
        postApplyChecksum: trailer.postApplyChecksum,
      };
    } catch {
      break;
    }
    if (out.length > 0 && link.maxTxid >= out[out.length - 1].minTxid) break; // overlapping names
    out.push(link);
  }
  return out.reverse();
}
