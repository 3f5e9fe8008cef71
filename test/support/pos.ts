// A replication position as the mount shows it in `<db>-pos`: "%016x/%016x\n" (TXID/checksum).

export interface Pos {
  txid: bigint;
  /** 16 lowercase hex digits. */
  checksum: string;
}

const POS_PATTERN = /^([0-9a-f]{16})\/([0-9a-f]{16})\n$/;

/** Parses the 34-byte content of a `-pos` file; `where` names the file in the error. */
export function parsePos(text: string, where: string): Pos {
  const match = POS_PATTERN.exec(text);
  if (match === null) throw new Error(`${where}: not a position "%016x/%016x\\n": ${JSON.stringify(text)}`);
  return { txid: BigInt("0x" + match[1]), checksum: match[2] };
}

export function formatPos(pos: Pos): string {
  return `${pos.txid.toString(16).padStart(16, "0")}/${pos.checksum}`;
}
