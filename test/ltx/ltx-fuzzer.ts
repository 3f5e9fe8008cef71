// A fuzzer for the LTX decoders, used by fuzz.test.ts (a few seconds) and scripts/fuzz-ltx.ts (as
// long as you like). Inputs are random bytes, random bodies behind valid headers, and mutations of
// valid files (the vectors and generated ones in every format): bit flips, interesting values at
// field-like positions, insertions, deletions, duplicated ranges, truncations, splices.
//
// The contract checked: decoding returns or throws LtxError — never another exception, never a
// hang — and whatever decodes is self-consistent (re-encoding it gives a file that decodes to the
// same content), and the streaming decoder, fed in random chunks, agrees.

import {
  decodeLtx,
  encodeLtx,
  LtxDecoder,
  LtxError,
  type DecodedLtx,
  type LtxFormat,
  type LtxWriteFormat,
} from "../../src/ltx/index.js";
import { Prng } from "../support/prng.js";
import { makeHeader, readVector, VECTOR_NAMES } from "./ltx-fixtures.js";

export interface FuzzStats {
  seed: number;
  inputs: number;
  decoded: number;
  rejected: Record<string, number>;
}

export class FuzzFailure extends Error {
  constructor(
    message: string,
    readonly input: Uint8Array,
    readonly seed: number,
  ) {
    super(
      `${message} (seed ${seed}; input ${input.length} bytes: ${Buffer.from(input.subarray(0, 256)).toString("hex")}${input.length > 256 ? "…" : ""})`,
    );
  }
}

function generatedSeeds(rng: Prng): Uint8Array[] {
  const seeds: Uint8Array[] = [];
  for (const format of ["v3", "v1", "v1-lz4"] as LtxWriteFormat[]) {
    for (const pageSize of [512, 1024]) {
      const commit = rng.int(1, 6);
      const pages = Array.from({ length: commit }, (_, i) => {
        const data = new Uint8Array(pageSize).fill(rng.int(0, 255));
        for (let k = 0; k < rng.int(0, 40); k++) data[rng.int(0, pageSize - 1)] = rng.int(0, 255);
        return { pgno: i + 1, data };
      });
      seeds.push(
        encodeLtx(makeHeader({ pageSize, commit, timestamp: rng.int(0, 1e9) }), pages, undefined, { format }),
      );
      const header = makeHeader({
        pageSize,
        commit: commit + 3,
        minTxid: 9n,
        maxTxid: 11n,
        preApplyChecksum: 0x8000000000000001n,
      });
      seeds.push(
        encodeLtx(
          header,
          pages.filter(() => rng.chance(0.6)),
          0x8000000000000002n,
          { format },
        ),
      );
    }
  }
  return seeds;
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff];

function mutate(rng: Prng, input: Uint8Array, seeds: Uint8Array[]): Uint8Array {
  let bytes = new Uint8Array(input);
  const count = rng.int(1, 8);
  for (let m = 0; m < count; m++) {
    const at = bytes.length === 0 ? 0 : rng.int(0, bytes.length - 1);
    switch (rng.int(0, 8)) {
      case 0:
        if (bytes.length > 0) bytes[at] ^= 1 << rng.int(0, 7);
        break;
      case 1:
        if (bytes.length > 0) bytes[at] = rng.int(0, 255);
        break;
      case 2: {
        // An interesting value in a field-sized run (u16/u32/u64 alignment is what the format uses).
        const width = rng.pick([2, 4, 8]);
        for (let i = 0; i < width && at + i < bytes.length; i++) bytes[at + i] = rng.pick(INTERESTING);
        break;
      }
      case 3: {
        const insert = Uint8Array.from({ length: rng.int(1, 16) }, () => rng.int(0, 255));
        bytes = Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]);
        break;
      }
      case 4:
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          bytes.subarray(Math.min(bytes.length, at + rng.int(1, 32))),
        ]);
        break;
      case 5: {
        const from = rng.int(0, Math.max(0, bytes.length - 1));
        const piece = bytes.subarray(from, from + rng.int(1, 64));
        bytes = Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)]);
        break;
      }
      case 6:
        bytes = bytes.subarray(0, at);
        break;
      case 7: {
        const other = rng.pick(seeds);
        bytes = Buffer.concat([bytes.subarray(0, at), other.subarray(rng.int(0, other.length))]);
        break;
      }
      default:
        // Grow a length field: the u32 size of a v3 frame, the u64 index length, or anything.
        if (at + 4 <= bytes.length)
          new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, rng.nextUint32());
        break;
    }
  }
  return new Uint8Array(bytes);
}

function randomInput(rng: Prng, seeds: Uint8Array[]): Uint8Array {
  const kind = rng.int(0, 9);
  if (kind === 0) return Uint8Array.from({ length: rng.int(0, 600) }, () => rng.int(0, 255));
  if (kind === 1) {
    // A valid header from a seed, then random bytes.
    const seed = rng.pick(seeds);
    const tail = Uint8Array.from({ length: rng.int(0, 1500) }, () => rng.int(0, 255));
    return Buffer.concat([seed.subarray(0, 100 + rng.int(0, 12)), tail]);
  }
  return mutate(rng, rng.pick(seeds), seeds);
}

function sameContent(
  a: DecodedLtx,
  b: { header: unknown; pages: DecodedLtx["pages"]; trailer: unknown },
): boolean {
  if (a.pages.length !== b.pages.length) return false;
  if (JSON.stringify(a.header, big) !== JSON.stringify(b.header, big)) return false;
  if (JSON.stringify(a.trailer, big) !== JSON.stringify(b.trailer, big)) return false;
  return a.pages.every((p, i) => p.pgno === b.pages[i].pgno && Buffer.compare(p.data, b.pages[i].data) === 0);
}

function big(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString(16) : value;
}

async function decodeStreaming(
  rng: Prng,
  input: Uint8Array,
  options: { format?: LtxFormat; canonicalLz4: boolean },
): Promise<DecodedLtx> {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < input.length;) {
    const n = rng.int(1, 300);
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  const decoder = new LtxDecoder(chunks, options);
  await decoder.readHeader();
  const pages = [];
  for await (const page of decoder.pages()) pages.push(page);
  return { ...decoder.summary!, pages };
}

/** Fuzzes until `deadlineMs` (a Date.now() value). Throws FuzzFailure on a contract violation. */
export async function fuzzLtxDecoders(seed: number, deadlineMs: number): Promise<FuzzStats> {
  const rng = new Prng(seed);
  const seeds = [...VECTOR_NAMES.map(readVector), ...generatedSeeds(rng)];
  const stats: FuzzStats = { seed, inputs: 0, decoded: 0, rejected: {} };
  while (Date.now() < deadlineMs) {
    for (let batch = 0; batch < 50; batch++) {
      const input = randomInput(rng, seeds);
      stats.inputs++;
      let decoded: DecodedLtx | undefined;
      const canonicalLz4 = rng.chance(0.2);
      try {
        decoded = decodeLtx(input, { canonicalLz4 });
      } catch (err) {
        if (!(err instanceof LtxError)) throw new FuzzFailure(`decodeLtx threw ${String(err)}`, input, seed);
        stats.rejected[err.code] = (stats.rejected[err.code] ?? 0) + 1;
      }
      if (decoded !== undefined) {
        stats.decoded++;
        const format = decoded.format === "v3-frame" ? "v3" : decoded.format;
        const flags = format === "v1-lz4" ? decoded.header.flags : decoded.header.flags & ~1;
        let again: DecodedLtx;
        try {
          again = decodeLtx(
            encodeLtx({ ...decoded.header, flags }, decoded.pages, decoded.trailer.postApplyChecksum, {
              format,
            }),
          );
        } catch (err) {
          throw new FuzzFailure(`decoded content does not re-encode: ${String(err)}`, input, seed);
        }
        if (
          !sameContent(again, {
            ...decoded,
            header: { ...decoded.header, flags },
            trailer: { ...decoded.trailer, fileChecksum: again.trailer.fileChecksum },
          })
        ) {
          throw new FuzzFailure("re-encoded content differs", input, seed);
        }
      }
      if (rng.chance(0.1)) {
        try {
          const streamed = await decodeStreaming(rng, input, { format: decoded?.format, canonicalLz4 });
          if (decoded === undefined)
            throw new FuzzFailure("the streaming decoder accepted what decodeLtx rejected", input, seed);
          if (!sameContent(streamed, decoded))
            throw new FuzzFailure("streaming and whole-file decoding differ", input, seed);
        } catch (err) {
          if (err instanceof FuzzFailure) throw err;
          if (!(err instanceof LtxError))
            throw new FuzzFailure(`LtxDecoder threw ${String(err)}`, input, seed);
          if (decoded !== undefined)
            throw new FuzzFailure(`the streaming decoder rejected a valid file: ${err.message}`, input, seed);
        }
      }
    }
  }
  return stats;
}
