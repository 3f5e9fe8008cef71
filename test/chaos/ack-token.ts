// The text every acknowledged chaos write leaves in its row, fixed width so that one id is never a
// prefix of another: the checker finds lost writes in raw LTX pages of quarantined files by it.

export function ackToken(id: number): string {
  return `chaos-token-${String(id).padStart(10, "0")}.`;
}

/** Matches every token in a text; group 1 is the id. */
export const ACK_TOKEN_PATTERN = /chaos-token-(\d{10})\./g;
