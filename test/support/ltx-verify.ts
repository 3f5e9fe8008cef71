// The check every mount test ends with: the database's LTX chain, replayed onto an empty file,
// reproduces the database byte for byte; the position the mount reports is the last LTX's; and the
// database's checksum equals that position's checksum.
import * as fs from "node:fs";
import * as path from "node:path";
import {
  assertContiguousFromOne,
  describeDatabaseDifference,
  listLtxFiles,
  ltxChecksumOfDatabase,
  readLtxPostApplyChecksum,
  replayLtxFiles,
  type LtxFileInfo,
} from "./ltx-chain.js";
import { formatPos, parsePos, type Pos } from "./pos.js";

export interface LtxVerifyOptions {
  /** The database file to compare with (through the mount; in WAL mode checkpoint it first). */
  dbFile: string;
  /** Its `-pos` file in the mount. */
  posFile: string;
  /** The database's LTX folder in the data directory. */
  ltxDir: string;
  /** Where to build the replayed copy; a file named after the database is created and removed. */
  scratchDir: string;
}

export interface LtxVerification {
  files: LtxFileInfo[];
  pos: Pos;
}

/**
 * Throws an Error describing the first disagreement (which file, which TXID, which page) between the
 * database, its position and its LTX chain; resolves with the chain and position when all agree.
 */
export async function verifyLtxChainMatchesDatabase(options: LtxVerifyOptions): Promise<LtxVerification> {
  const where = options.dbFile;
  const pos = parsePos(fs.readFileSync(options.posFile, "utf8"), options.posFile);
  const files = listLtxFiles(options.ltxDir);
  assertContiguousFromOne(files, where);
  const last = files[files.length - 1];
  if (last.maxTxid !== pos.txid) {
    throw new Error(
      `${where}: position ${formatPos(pos)} but the last LTX file is ${path.basename(last.path)}`,
    );
  }
  const lastPostApply = readLtxPostApplyChecksum(last.path);
  if (lastPostApply !== pos.checksum) {
    throw new Error(
      `${where}: position checksum ${pos.checksum} != post-apply checksum ${lastPostApply} of ${path.basename(last.path)}`,
    );
  }
  const dbChecksum = await ltxChecksumOfDatabase(options.dbFile);
  if (dbChecksum !== pos.checksum) {
    throw new Error(
      `${where}: ltx checksum of the database is ${dbChecksum}, position says ${formatPos(pos)}`,
    );
  }
  const replayed = path.join(options.scratchDir, `${path.basename(options.dbFile)}.replayed`);
  try {
    await replayLtxFiles(
      files.map((file) => file.path),
      replayed,
    );
    const difference = describeDatabaseDifference(replayed, options.dbFile);
    if (difference !== undefined) {
      throw new Error(
        `${where}: replaying ${files.length} LTX files does not reproduce the database: ${difference}`,
      );
    }
  } finally {
    fs.rmSync(replayed, { force: true });
  }
  return { files, pos };
}
