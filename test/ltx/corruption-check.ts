// Exhaustive corruption of a vector, shared by the two corruption test files (split so that the
// runner's two workers share the ~1.5 million decodes).
//
// Every single-byte change (all 255 other values at every offset) and every truncation must fail
// with an LtxError — a typed error with a known code; any other exception is a bug. One class of
// change cannot be caught by checksums: LZ4 allows several encodings of the same bytes (inside a run
// of one byte value a match offset of 1 and of 2 produce the same output), and the file checksum
// covers decompressed pages. Such a variant decodes to exactly the original pages; the test checks
// that it does, and that the canonicalLz4 option rejects it.

import assert from "node:assert/strict";
import { decodeLtx, LtxDecoder, LtxError, type DecodedLtx, type LtxErrorCode } from "../../src/ltx/index.js";

const CODES = new Set<LtxErrorCode>([
  "ELTXHEADER",
  "ELTXFRAME",
  "ELTXINDEX",
  "ELTXCHECKSUM",
  "ELTXTRUNCATED",
  "ELTXTRAILING",
  "ELTXLZ4",
]);

function assertLtxError(err: unknown, what: string): LtxError {
  if (!(err instanceof LtxError))
    throw new assert.AssertionError({ message: `${what}: not an LtxError: ${String(err)}` });
  assert.ok(CODES.has(err.code), `${what}: unexpected code ${err.code}`);
  assert.ok(
    err.offset === undefined || (err.offset >= 0 && Number.isInteger(err.offset)),
    `${what}: offset ${err.offset}`,
  );
  return err;
}

function sameDecoding(a: DecodedLtx, b: DecodedLtx): boolean {
  try {
    assert.deepEqual(a.header, b.header);
    assert.deepEqual(a.trailer, b.trailer);
    assert.deepEqual(
      a.pages.map((p) => [p.pgno, p.data]),
      b.pages.map((p) => [p.pgno, p.data]),
    );
    return true;
  } catch {
    return false;
  }
}

export interface CorruptionReport {
  mutations: number;
  /** Mutations accepted by default: equivalent LZ4 encodings of the same pages. */
  equivalentLz4: number;
  codes: Partial<Record<LtxErrorCode, number>>;
}

/** Every single-byte change and truncation of `bytes`, decoded in memory. */
export function checkEveryMutation(name: string, bytes: Uint8Array): CorruptionReport {
  const original = decodeLtx(bytes, { file: name });
  const report: CorruptionReport = { mutations: 0, equivalentLz4: 0, codes: {} };
  const mutated = new Uint8Array(bytes);
  for (let i = 0; i < bytes.length; i++) {
    for (let value = 0; value < 256; value++) {
      if (value === bytes[i]) continue;
      mutated[i] = value;
      report.mutations++;
      let decoded: DecodedLtx | undefined;
      try {
        decoded = decodeLtx(mutated, { file: name });
      } catch (err) {
        const code = assertLtxError(err, `${name} byte ${i} = 0x${value.toString(16)}`).code;
        report.codes[code] = (report.codes[code] ?? 0) + 1;
      }
      if (decoded !== undefined) {
        assert.ok(
          sameDecoding(decoded, original),
          `${name}: byte ${i} = 0x${value.toString(16)} decodes to different content`,
        );
        report.equivalentLz4++;
        assert.throws(
          () => decodeLtx(mutated, { file: name, canonicalLz4: true }),
          (err) => assertLtxError(err, `${name} byte ${i} canonical`).rule === "canonical lz4",
          `${name}: byte ${i} = 0x${value.toString(16)} accepted with canonicalLz4`,
        );
      }
    }
    mutated[i] = bytes[i];
  }
  for (let length = 0; length < bytes.length; length++) {
    assert.throws(
      () => decodeLtx(bytes.subarray(0, length), { file: name }),
      (err) => assertLtxError(err, `${name} truncated to ${length}`) !== undefined,
    );
  }
  for (const extra of [0x00, 0x01, 0xff]) {
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    longer[bytes.length] = extra;
    assert.throws(
      () => decodeLtx(longer, { file: name }),
      (err) => assertLtxError(err, `${name} + 1 byte`).code === "ELTXTRAILING",
    );
  }
  return report;
}

/** The streaming decoder, fed in 13-byte chunks, on one change per offset and on every truncation. */
export async function checkStreamingMutations(name: string, bytes: Uint8Array): Promise<void> {
  const original = decodeLtx(bytes, { file: name });
  const feed = async (input: Uint8Array): Promise<DecodedLtx> => {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < input.length; i += 13) chunks.push(input.subarray(i, i + 13));
    const decoder = new LtxDecoder(chunks, { file: name });
    await decoder.readHeader();
    const pages = [];
    for await (const page of decoder.pages()) pages.push(page);
    return { ...decoder.summary!, pages };
  };
  for (let i = 0; i < bytes.length; i++) {
    const mutated = new Uint8Array(bytes);
    mutated[i] ^= 0xff;
    try {
      const decoded = await feed(mutated);
      assert.ok(
        sameDecoding(decoded, original),
        `${name}: streaming byte ${i} ^ 0xff decodes to different content`,
      );
    } catch (err) {
      assertLtxError(err, `${name} streaming byte ${i}`);
    }
  }
  for (let length = 0; length < bytes.length; length++) {
    await assert.rejects(
      feed(bytes.subarray(0, length)),
      (err) => assertLtxError(err, `${name} streaming truncated`) !== undefined,
    );
  }
}
