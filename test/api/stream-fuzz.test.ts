// A bounded fuzz run (about 5 s) of the stream decoder on random bytes and on mutated valid streams —
// byte flips, insertions, deletions, frames dropped, repeated or reordered, with the CRCs and sequence
// numbers recomputed so that the mutations reach the layout and order rules. Set LITEFS_TEST_SEED to
// replay a failure.
//
// For every input, pushed in random pieces: only StreamErrors are thrown, and whatever the decoder
// hands out re-encodes (with the real encoder) to exactly the bytes it came from — a prefix of the
// input when the decoder stopped with an error, the whole input when it accepted the stream. So an
// accepted frame is always one a correct primary would have sent, byte for byte.

import assert from "node:assert/strict";
import { test } from "node:test";

import { StreamFrameDecoder } from "../../src/api/stream-decoder.js";
import { StreamFrameEncoder } from "../../src/api/stream-encoder.js";
import { StreamError } from "../../src/api/stream-error.js";
import {
  encodePreamble,
  FRAME_HEADER_SIZE,
  type StreamFrame,
  type WireFrame,
} from "../../src/api/stream-frame.js";
import { Prng, testSeed } from "../support/prng.js";
import { encodeItems, frameOffsets, randomItems, randomPieces, resealInPlace } from "./stream-kit.js";

function toWire(frame: StreamFrame): WireFrame {
  if (frame.type === "ltx-chunk") return { type: "ltx-chunk", data: frame.data };
  if (frame.type === "ltx-end") return { type: "ltx-end", size: frame.size };
  return frame;
}

function reencode(frames: readonly StreamFrame[]): Buffer {
  const encoder = new StreamFrameEncoder();
  return Buffer.concat(frames.flatMap((frame) => encoder.encode(toWire(frame))));
}

/** Splits an encoded stream into its frames (as far as the length fields go). */
function splitFrames(bytes: Uint8Array): Uint8Array[] {
  const offsets = frameOffsets(bytes);
  return offsets.map((start, i) =>
    bytes.subarray(start, i + 1 < offsets.length ? offsets[i + 1] : bytes.length),
  );
}

/** Rewrites every frame's sequence number to its index, then the CRCs. */
function renumberAndReseal(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let index = 0;
  for (let at = 8; at + FRAME_HEADER_SIZE <= bytes.length; at += FRAME_HEADER_SIZE + view.getUint32(at + 8)) {
    view.setUint32(at + 4, index++);
  }
  resealInPlace(bytes);
}

function mutate(prng: Prng, valid: Uint8Array): Uint8Array {
  switch (prng.int(0, 6)) {
    case 0: {
      const out = new Uint8Array(prng.int(0, 400));
      for (let i = 0; i < out.length; i++) out[i] = prng.int(0, 255);
      if (prng.chance(0.5)) out.set(encodePreamble().subarray(0, Math.min(8, out.length)));
      return out;
    }
    case 1:
    case 2: {
      const out = Uint8Array.from(valid);
      const flips = prng.int(1, 4);
      for (let i = 0; i < flips; i++) out[prng.int(8, out.length - 1)] = prng.int(0, 255);
      if (prng.chance(0.8)) resealInPlace(out);
      return out;
    }
    case 3: {
      const at = prng.int(0, valid.length);
      const extra = Uint8Array.from({ length: prng.int(1, 8) }, () => prng.int(0, 255));
      return Buffer.concat([valid.subarray(0, at), extra, valid.subarray(at)]);
    }
    case 4: {
      const at = prng.int(0, valid.length - 1);
      return Buffer.concat([valid.subarray(0, at), valid.subarray(at + prng.int(1, 8))]);
    }
    default: {
      const frames = splitFrames(valid);
      const i = prng.int(0, frames.length - 1);
      const j = prng.int(0, frames.length - 1);
      const op = prng.int(0, 2);
      if (op === 0) frames.splice(i, 1);
      else if (op === 1) frames.splice(i, 0, frames[j]);
      else [frames[i], frames[j]] = [frames[j], frames[i]];
      const out = Uint8Array.from(Buffer.concat([encodePreamble(), ...frames]));
      if (prng.chance(0.8)) renumberAndReseal(out);
      return out;
    }
  }
}

test("fuzzing the stream decoder: only StreamErrors, and only frames that re-encode byte for byte", (t) => {
  const seed = testSeed();
  t.diagnostic(`seed ${seed} (LITEFS_TEST_SEED=${seed} replays it)`);
  const prng = new Prng(seed);
  const deadline = Date.now() + 5000;
  const outcomes = new Map<string, number>();
  let inputs = 0;
  while (Date.now() < deadline) {
    const valid = encodeItems(randomItems(prng, 8, 150), prng.int(1, 100));
    const input = mutate(prng, valid);
    const decoder = new StreamFrameDecoder({ maxChunkBytes: 4096, maxControlBytes: 4096 });
    const frames: StreamFrame[] = [];
    let outcome = "accepted";
    try {
      for (const piece of randomPieces(prng, input, prng.chance(0.1) ? 1 : 97))
        frames.push(...decoder.push(piece));
      decoder.finish();
    } catch (err) {
      if (!(err instanceof StreamError)) {
        assert.fail(`seed ${seed}, input ${inputs}: ${String(err)}\n${Buffer.from(input).toString("hex")}`);
      }
      outcome = `${err.code} ${err.rule}`;
      assert.throws(
        () => decoder.push(Uint8Array.of(0)),
        (e) => e === err,
        "errors are sticky",
      );
    }
    const again = reencode(frames);
    if (outcome === "accepted") {
      assert.ok(
        again.equals(input),
        `seed ${seed}, input ${inputs}: accepted a stream the encoder does not produce`,
      );
    } else if (frames.length > 0) {
      assert.ok(
        again.equals(input.subarray(0, again.length)),
        `seed ${seed}, input ${inputs}: frame not in the input`,
      );
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    inputs++;
  }
  const table = [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`);
  t.diagnostic(`${inputs} inputs; ${table.join(", ")}`);
  assert.ok(inputs > 100);
});
