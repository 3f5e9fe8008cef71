// The stream format: round trips of random streams through any chunking, every single-byte corruption
// and every truncation of encoded streams, and each rule of the format broken on purpose.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";

import { StreamFrameDecoder } from "../../src/api/stream-decoder.js";
import { StreamFrameEncoder } from "../../src/api/stream-encoder.js";
import { isStreamError, StreamError } from "../../src/api/stream-error.js";
import { encodePreamble, FRAME_TYPE, LTX_BEGIN_FLAG, type StreamFrame } from "../../src/api/stream-frame.js";
import { Prng } from "../support/prng.js";
import {
  encodeItems,
  FLAG,
  frameOffsets,
  ltxBytes,
  normalizeDecoded,
  normalizeItems,
  randomItems,
  randomPieces,
  rawFrame,
  type StreamItem,
} from "./stream-kit.js";

function decodeAll(pieces: readonly Uint8Array[], decoder = new StreamFrameDecoder()): StreamFrame[] {
  const frames: StreamFrame[] = [];
  for (const piece of pieces) frames.push(...decoder.push(piece));
  decoder.finish();
  return frames;
}

function expectStreamError(fn: () => unknown, codes: readonly string[], rule?: string): StreamError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StreamError, `expected a StreamError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `code ${err.code} (${err.message}) not in ${codes.join(",")}`);
    if (rule !== undefined) assert.equal(err.rule, rule, err.message);
    return err;
  }
  assert.fail(`expected ${codes.join("/")}${rule === undefined ? "" : ` [${rule}]`}, nothing was thrown`);
}

test("random streams round-trip through random chunking (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 1, max: 700 }),
      (seed, chunkBytes, maxPiece) => {
        const prng = new Prng(seed);
        const items = randomItems(prng);
        const bytes = encodeItems(items, chunkBytes);
        const decoder = new StreamFrameDecoder();
        const frames = decodeAll(randomPieces(prng, bytes, maxPiece), decoder);
        assert.deepEqual(normalizeDecoded(frames), normalizeItems(items));
        assert.ok(decoder.ended);
        assert.equal(decoder.offset, bytes.length);
        assert.equal(decoder.frameCount, frameOffsets(bytes).length);
        for (const frame of frames) {
          if (frame.type === "ltx-chunk")
            assert.ok(frame.data.length >= 1 && frame.data.length <= chunkBytes);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("1-byte chunks decode the same frames as one chunk", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const items = randomItems(new Prng(seed));
    const bytes = encodeItems(items, 50);
    const whole = normalizeDecoded(decodeAll([bytes]));
    const bytewise = normalizeDecoded(decodeAll(Array.from(bytes, (b) => Uint8Array.of(b))));
    assert.deepEqual(bytewise, whole);
    assert.deepEqual(whole, normalizeItems(items));
  }
});

/** A small stream touching every frame type. */
function everyTypeItems(): StreamItem[] {
  const post = FLAG | 7n;
  const bytes = ltxBytes({ minTxid: 1n, maxTxid: 2n, pre: 0n, post, bodyBytes: 10 });
  const next = ltxBytes({ minTxid: 3n, maxTxid: 3n, pre: post, post: FLAG | 9n, bodyBytes: 3 });
  return [
    { kind: "frame", frame: { type: "epoch", epoch: 3n, primaryNodeId: 0xabcn } },
    {
      kind: "ltx",
      begin: {
        type: "ltx-begin",
        db: "db",
        minTxid: 1n,
        maxTxid: 2n,
        preApplyChecksum: 0n,
        postApplyChecksum: post,
        size: bytes.length,
        snapshot: { reason: "replica-ahead", verdict: "diverged", common: { txid: 1n, checksum: FLAG | 5n } },
      },
      bytes,
    },
    {
      kind: "ltx",
      begin: {
        type: "ltx-begin",
        db: "db",
        minTxid: 3n,
        maxTxid: 3n,
        preApplyChecksum: post,
        postApplyChecksum: FLAG | 9n,
        size: null,
        snapshot: null,
      },
      bytes: next,
    },
    { kind: "frame", frame: { type: "ready" } },
    {
      kind: "frame",
      frame: {
        type: "heartbeat",
        timeMs: 1700000000000,
        positions: [{ db: "db", pos: { txid: 3n, checksum: FLAG | 9n } }],
      },
    },
    { kind: "frame", frame: { type: "hwm", db: "db", txid: 2n } },
    { kind: "frame", frame: { type: "epoch", epoch: 4n, primaryNodeId: 0xabcn } },
    { kind: "frame", frame: { type: "handoff", toNodeId: 0x77n, fromEpoch: 4n } },
    { kind: "frame", frame: { type: "end", reason: "handed-off" } },
  ];
}

test("every single-byte corruption is refused at the frame that holds it, never later, never accepted", () => {
  const bytes = encodeItems(everyTypeItems(), 64);
  const offsets = frameOffsets(bytes);
  const original = decodeAll([bytes]);
  // ~200,000 errors: capturing a stack for each is most of the cost and tells nothing here.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let cases = 0;
  try {
    let checkedPrefix = -2;
    for (let at = 0; at < bytes.length; at++) {
      let frameIndex = -1;
      while (frameIndex + 1 < offsets.length && offsets[frameIndex + 1] <= at) frameIndex++;
      const frameStart = frameIndex < 0 ? 0 : offsets[frameIndex];
      if (checkedPrefix !== frameIndex) {
        // Everything before the damaged frame is untouched and decodes as before (same bytes for every
        // position inside this frame, so checked once per frame).
        const before = new StreamFrameDecoder().push(bytes.subarray(0, frameStart));
        assert.deepEqual(
          normalizeDecoded(before),
          normalizeDecoded(original.slice(0, Math.max(0, frameIndex))),
        );
        checkedPrefix = frameIndex;
      }
      for (let xor = 1; xor <= 255; xor++) {
        const corrupt = Uint8Array.from(bytes);
        corrupt[at] ^= xor;
        const decoder = new StreamFrameDecoder();
        decoder.push(corrupt.subarray(0, frameStart));
        // The damaged frame is refused whole: nothing of it or after it is handed out.
        const err = expectStreamError(
          () => decoder.push(corrupt.subarray(frameStart)),
          ["ESTREAMCHECKSUM", "ESTREAMFRAME"],
        );
        assert.equal(err.offset, frameStart, err.message);
        if (frameIndex >= 0) assert.equal(err.frameIndex, frameIndex, err.message);
        // Sticky: the decoder stays failed.
        assert.throws(
          () => decoder.finish(),
          (e) => e === err,
        );
        cases++;
      }
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  assert.equal(cases, bytes.length * 255);
});

test("single-byte corruption of random streams: a typed error and only a prefix of the frames", () => {
  const prng = new Prng(42);
  for (let round = 0; round < 300; round++) {
    const items = randomItems(prng, 8, 200);
    const bytes = encodeItems(items, prng.int(1, 128));
    const original = normalizeDecoded(decodeAll([bytes]));
    const corrupt = Uint8Array.from(bytes);
    const at = prng.int(0, bytes.length - 1);
    corrupt[at] ^= prng.int(1, 255);
    const frames: StreamFrame[] = [];
    const decoder = new StreamFrameDecoder();
    expectStreamError(() => {
      for (const piece of randomPieces(prng, corrupt, 64)) frames.push(...decoder.push(piece));
      decoder.finish();
    }, ["ESTREAMCHECKSUM", "ESTREAMFRAME"]);
    const got = normalizeDecoded(frames);
    // Complete frames decoded before the error are exactly the original's (an open LTX file may be partial).
    for (let i = 0; i < got.length; i++) {
      const frame = got[i];
      if (frame.type === "ltx-data" && i === got.length - 1) {
        const want = original[i];
        assert.equal(want.type, "ltx-data");
        assert.ok((want as { bytes: Buffer }).bytes.subarray(0, frame.bytes.length).equals(frame.bytes));
      } else {
        assert.deepEqual(frame, original[i]);
      }
    }
  }
});

test("every truncation of an encoded stream is ESTREAMTRUNCATED at finish, after a prefix of the frames", () => {
  for (let seed = 100; seed < 106; seed++) {
    const bytes = encodeItems(randomItems(new Prng(seed), 10, 60), 32);
    const original = decodeAll([bytes]);
    for (let length = 0; length < bytes.length; length++) {
      const decoder = new StreamFrameDecoder();
      const frames = decoder.push(bytes.subarray(0, length));
      assert.deepEqual(normalizeDecoded(frames), normalizeDecoded(original.slice(0, frames.length)));
      const err = expectStreamError(() => decoder.finish(), ["ESTREAMTRUNCATED"]);
      assert.equal(err.offset, length);
      assert.equal(err.frameIndex, frames.length);
    }
    decodeAll([bytes]);
  }
});

// ---- each rule broken on purpose ----

const u64 = (...values: bigint[]): Uint8Array => {
  const out = new Uint8Array(values.length * 8);
  values.forEach((v, i) => new DataView(out.buffer).setBigUint64(i * 8, v));
  return out;
};
const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
const epochFrame = rawFrame(FRAME_TYPE.epoch, u64(1n, 9n), 0);

function beginPayload(fields: {
  reason?: number;
  verdict?: number;
  name?: Uint8Array;
  min?: bigint;
  max?: bigint;
  pre?: bigint;
  post?: bigint;
  size?: bigint;
  commonTxid?: bigint;
  commonChecksum?: bigint;
}): Uint8Array {
  const name = fields.name ?? Buffer.from("db");
  const head = new Uint8Array(4);
  head[0] = fields.reason ?? 0;
  head[1] = fields.verdict ?? 0;
  new DataView(head.buffer).setUint16(2, name.length);
  const body = u64(
    fields.min ?? 2n,
    fields.max ?? 2n,
    fields.pre ?? FLAG,
    fields.post ?? FLAG | 1n,
    fields.size ?? 0n,
    fields.commonTxid ?? 0n,
    fields.commonChecksum ?? 0n,
  );
  return cat(head, body, name);
}

function decodeRaw(...frames: Uint8Array[]): StreamFrame[] {
  return decodeAll([cat(encodePreamble(), ...frames)]);
}

test("frame header rules: preamble, header CRC, type, reserved, sequence, limits", () => {
  expectStreamError(() => decodeAll([Buffer.from("HTTP/1.1 200 OK\r\n")]), ["ESTREAMFRAME"], "preamble");
  const badVersion = encodePreamble();
  badVersion[6] = 2;
  expectStreamError(() => decodeAll([badVersion]), ["ESTREAMFRAME"], "preamble");
  const badHeader = Uint8Array.from(epochFrame);
  badHeader[16] ^= 1;
  expectStreamError(() => decodeRaw(badHeader), ["ESTREAMCHECKSUM"], "header checksum");
  expectStreamError(() => decodeRaw(rawFrame(99, new Uint8Array(0), 0)), ["ESTREAMFRAME"], "frame type");
  expectStreamError(() => decodeRaw(rawFrame(0, new Uint8Array(0), 0)), ["ESTREAMFRAME"], "frame type");
  expectStreamError(
    () => decodeRaw(rawFrame(FRAME_TYPE.epoch, u64(1n, 9n), 0, { reserved: 1 })),
    ["ESTREAMFRAME"],
    "reserved",
  );
  expectStreamError(
    () => decodeRaw(rawFrame(FRAME_TYPE.epoch, u64(1n, 9n), 0, { flags: 1 })),
    ["ESTREAMFRAME"],
    "flags",
  );
  expectStreamError(
    () => decodeRaw(epochFrame, rawFrame(FRAME_TYPE.ready, new Uint8Array(0), 2)),
    ["ESTREAMFRAME"],
    "sequence",
  );
  expectStreamError(() => decodeRaw(epochFrame, epochFrame), ["ESTREAMFRAME"], "sequence");
  expectStreamError(
    () => decodeRaw(rawFrame(FRAME_TYPE.epoch, u64(1n, 9n), 0, { payloadCrc: 5 })),
    ["ESTREAMCHECKSUM"],
    "payload checksum",
  );
  // A length beyond the limit is refused from the header alone, before any payload byte arrives.
  const decoder = new StreamFrameDecoder({ maxControlBytes: 64 });
  decoder.push(cat(encodePreamble(), epochFrame));
  expectStreamError(
    () => decoder.push(rawFrame(FRAME_TYPE.heartbeat, new Uint8Array(0), 1, { length: 65 }).subarray(0, 20)),
    ["ESTREAMFRAME"],
    "payload limit",
  );
  const small = new StreamFrameDecoder({ maxChunkBytes: 8 });
  small.push(cat(encodePreamble(), epochFrame, rawFrame(FRAME_TYPE["ltx-begin"], beginPayload({}), 1)));
  expectStreamError(
    () => small.push(rawFrame(FRAME_TYPE["ltx-chunk"], new Uint8Array(9), 2)),
    ["ESTREAMFRAME"],
    "payload limit",
  );
});

test("payload rules: lengths, names, ranges, codes", () => {
  const frame = (type: keyof typeof FRAME_TYPE, payload: Uint8Array, flags = 0) =>
    rawFrame(FRAME_TYPE[type], payload, 1, { flags });
  const cases: [string, Uint8Array, string][] = [
    ["epoch 0", rawFrame(FRAME_TYPE.epoch, u64(0n, 9n), 0), "field range"],
    ["short epoch", rawFrame(FRAME_TYPE.epoch, u64(1n), 0), "payload length"],
    ["ready with payload", cat(epochFrame, frame("ready", Uint8Array.of(0))), "payload length"],
    ["end reason 0", cat(epochFrame, frame("end", Uint8Array.of(0))), "end reason"],
    ["end reason 5", cat(epochFrame, frame("end", Uint8Array.of(5))), "end reason"],
    ["empty chunk", cat(epochFrame, frame("ltx-chunk", new Uint8Array(0))), "payload length"],
    ["hwm 0", cat(epochFrame, frame("hwm", cat(u64(0n), Uint8Array.of(0, 1, 0x61)))), "field range"],
    [
      "hwm trailing byte",
      cat(epochFrame, frame("hwm", cat(u64(1n), Uint8Array.of(0, 1, 0x61, 0)))),
      "payload layout",
    ],
    [
      "hwm name past end",
      cat(epochFrame, frame("hwm", cat(u64(1n), Uint8Array.of(0, 9, 0x61)))),
      "payload layout",
    ],
    ["empty name", cat(epochFrame, frame("hwm", cat(u64(1n), Uint8Array.of(0, 0)))), "name length"],
    ["bad UTF-8 name", cat(epochFrame, frame("hwm", cat(u64(1n), Uint8Array.of(0, 1, 0xff)))), "utf-8"],
    [
      "name with slash",
      cat(epochFrame, frame("hwm", cat(u64(1n), Uint8Array.of(0, 3, 0x61, 0x2f, 0x62)))),
      "database name",
    ],
    [
      "reserved suffix",
      cat(epochFrame, frame("hwm", cat(u64(1n), Buffer.from("\x00\x05a-wal")))),
      "database name",
    ],
    [
      "error code lowercase",
      cat(epochFrame, frame("error", Buffer.from("\x00\x03bad\x00\x00"))),
      "error code",
    ],
    ["error bad message", cat(epochFrame, frame("error", Buffer.from([0, 1, 0x45, 0, 1, 0xc3]))), "utf-8"],
    ["handoff to 0", cat(epochFrame, frame("handoff", u64(0n, 1n))), "field range"],
    [
      "heartbeat dup",
      cat(
        epochFrame,
        frame(
          "heartbeat",
          cat(
            u64(0n),
            Uint8Array.of(0, 0, 0, 2),
            Buffer.from("\x00\x01a"),
            u64(0n, 0n),
            Buffer.from("\x00\x01a"),
            u64(0n, 0n),
          ),
        ),
      ),
      "unique names",
    ],
    [
      "heartbeat txid 0 checksum",
      cat(
        epochFrame,
        frame("heartbeat", cat(u64(0n), Uint8Array.of(0, 0, 0, 1), Buffer.from("\x00\x01a"), u64(0n, 5n))),
      ),
      "position",
    ],
    [
      "heartbeat time > 2^53",
      cat(epochFrame, frame("heartbeat", cat(u64(1n << 60n), Uint8Array.of(0, 0, 0, 0)))),
      "field range",
    ],
    ["begin min 0", cat(epochFrame, frame("ltx-begin", beginPayload({ min: 0n }))), "TXID range"],
    [
      "begin max < min",
      cat(epochFrame, frame("ltx-begin", beginPayload({ min: 5n, max: 4n }))),
      "TXID range",
    ],
    [
      "snapshot flag at TXID 2",
      cat(epochFrame, frame("ltx-begin", beginPayload({ reason: 1 }), LTX_BEGIN_FLAG.snapshot)),
      "snapshot",
    ],
    [
      "TXID 1 without snapshot flag",
      cat(epochFrame, frame("ltx-begin", beginPayload({ min: 1n, pre: 0n }))),
      "snapshot",
    ],
    [
      "snapshot with pre-apply",
      cat(epochFrame, frame("ltx-begin", beginPayload({ min: 1n, reason: 1 }), LTX_BEGIN_FLAG.snapshot)),
      "snapshot",
    ],
    [
      "incremental with reason",
      cat(epochFrame, frame("ltx-begin", beginPayload({ reason: 1 }))),
      "incremental",
    ],
    [
      "incremental with common",
      cat(epochFrame, frame("ltx-begin", beginPayload({}), LTX_BEGIN_FLAG.common)),
      "incremental",
    ],
    ["size without flag", cat(epochFrame, frame("ltx-begin", beginPayload({ size: 200n }))), "size"],
    [
      "size below 116",
      cat(epochFrame, frame("ltx-begin", beginPayload({ size: 115n }), LTX_BEGIN_FLAG.sizeKnown)),
      "size",
    ],
    [
      "common fields without flag",
      cat(epochFrame, frame("ltx-begin", beginPayload({ commonTxid: 1n }))),
      "common position",
    ],
    [
      "unknown reason",
      cat(
        epochFrame,
        frame("ltx-begin", beginPayload({ min: 1n, pre: 0n, reason: 6 }), LTX_BEGIN_FLAG.snapshot),
      ),
      "snapshot reason",
    ],
    [
      "unknown verdict",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 5, verdict: 3 }),
          LTX_BEGIN_FLAG.snapshot,
        ),
      ),
      "history verdict",
    ],
    [
      "new with diverged",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 1, verdict: 1 }),
          LTX_BEGIN_FLAG.snapshot,
        ),
      ),
      "history verdict",
    ],
    [
      "ahead but shared",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 2, verdict: 0 }),
          LTX_BEGIN_FLAG.snapshot,
        ),
      ),
      "history verdict",
    ],
    [
      "common beyond max",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 2, verdict: 1, commonTxid: 3n, commonChecksum: FLAG }),
          LTX_BEGIN_FLAG.snapshot | LTX_BEGIN_FLAG.common,
        ),
      ),
      "common position",
    ],
    [
      "common at max, other checksum",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 2, verdict: 1, commonTxid: 2n, commonChecksum: FLAG }),
          LTX_BEGIN_FLAG.snapshot | LTX_BEGIN_FLAG.common,
        ),
      ),
      "common position",
    ],
    [
      "common TXID 0 with checksum",
      cat(
        epochFrame,
        frame(
          "ltx-begin",
          beginPayload({ min: 1n, pre: 0n, reason: 2, verdict: 1, commonTxid: 0n, commonChecksum: FLAG }),
          LTX_BEGIN_FLAG.snapshot | LTX_BEGIN_FLAG.common,
        ),
      ),
      "position",
    ],
  ];
  for (const [name, bytes, rule] of cases) {
    const err = expectStreamError(() => decodeRaw(bytes), ["ESTREAMFRAME"]);
    assert.equal(err.rule, rule, `${name}: ${err.message}`);
  }
});

test("order rules across frames", () => {
  const seq = (n: number, type: keyof typeof FRAME_TYPE, payload: Uint8Array, flags = 0) =>
    rawFrame(FRAME_TYPE[type], payload, n, { flags });
  const ready = (n: number) => seq(n, "ready", new Uint8Array(0));
  const end = (n: number) => seq(n, "end", Uint8Array.of(1));
  const ltx = ltxBytes({ minTxid: 2n, maxTxid: 2n, pre: FLAG, post: FLAG | 1n, bodyBytes: 4 });
  const begin = (n: number) => seq(n, "ltx-begin", beginPayload({}));
  const chunk = (n: number, bytes: Uint8Array) => seq(n, "ltx-chunk", bytes);
  const ltxEnd = (n: number, size: number) => seq(n, "ltx-end", u64(BigInt(size)));
  const cases: [string, Uint8Array[], string][] = [
    ["READY before EPOCH", [ready(0)], "order"],
    ["END before EPOCH", [end(0)], "order"],
    ["second READY", [epochFrame, ready(1), ready(2)], "order"],
    ["chunk outside LTX", [epochFrame, chunk(1, ltx)], "order"],
    ["LTX_END outside LTX", [epochFrame, ltxEnd(1, 4)], "order"],
    ["READY inside LTX", [epochFrame, begin(1), ready(2)], "order"],
    ["END inside LTX", [epochFrame, begin(1), end(2)], "order"],
    ["BEGIN inside LTX", [epochFrame, begin(1), begin(2)], "order"],
    ["frame after END", [epochFrame, end(1), ready(2)], "trailing bytes"],
    ["epoch not raised", [epochFrame, seq(1, "epoch", u64(1n, 9n))], "epoch"],
    ["primary changed", [epochFrame, seq(1, "epoch", u64(2n, 8n))], "epoch"],
    ["handoff from other epoch", [epochFrame, seq(1, "handoff", u64(5n, 2n))], "handoff epoch"],
    ["LTX after handoff", [epochFrame, seq(1, "handoff", u64(5n, 1n)), begin(2)], "order"],
    ["bad LTX magic", [epochFrame, begin(1), chunk(2, new Uint8Array(100))], "ltx header"],
    [
      "LTX header TXIDs differ",
      [
        epochFrame,
        begin(1),
        chunk(2, ltxBytes({ minTxid: 2n, maxTxid: 3n, pre: FLAG, post: FLAG | 1n, bodyBytes: 0 })),
      ],
      "ltx header",
    ],
    [
      "LTX header pre-apply differs",
      [
        epochFrame,
        begin(1),
        chunk(2, ltxBytes({ minTxid: 2n, maxTxid: 2n, pre: FLAG | 3n, post: FLAG | 1n, bodyBytes: 0 })),
      ],
      "ltx header",
    ],
    [
      "LTX trailer post-apply differs",
      [
        epochFrame,
        begin(1),
        chunk(2, ltxBytes({ minTxid: 2n, maxTxid: 2n, pre: FLAG, post: FLAG | 2n, bodyBytes: 0 })),
        ltxEnd(3, 116),
      ],
      "ltx trailer",
    ],
    ["LTX_END size differs", [epochFrame, begin(1), chunk(2, ltx), ltxEnd(3, ltx.length + 1)], "ltx size"],
    ["LTX too short", [epochFrame, begin(1), chunk(2, ltx.subarray(0, 50)), ltxEnd(3, 50)], "ltx size"],
    [
      "past the declared size",
      [
        epochFrame,
        seq(1, "ltx-begin", beginPayload({ size: 119n }), LTX_BEGIN_FLAG.sizeKnown),
        chunk(2, ltx),
      ],
      "ltx size",
    ],
    [
      "short of the declared size",
      [
        epochFrame,
        seq(1, "ltx-begin", beginPayload({ size: 200n }), LTX_BEGIN_FLAG.sizeKnown),
        chunk(2, ltx),
        ltxEnd(3, ltx.length),
      ],
      "ltx size",
    ],
    [
      "incremental skips a TXID",
      [
        epochFrame,
        begin(1),
        chunk(2, ltx),
        ltxEnd(3, ltx.length),
        seq(4, "ltx-begin", beginPayload({ min: 4n, max: 4n, pre: FLAG | 1n })),
      ],
      "ltx continuity",
    ],
    [
      "incremental on another checksum",
      [
        epochFrame,
        begin(1),
        chunk(2, ltx),
        ltxEnd(3, ltx.length),
        seq(4, "ltx-begin", beginPayload({ min: 3n, max: 3n, pre: FLAG | 7n })),
      ],
      "ltx continuity",
    ],
  ];
  for (const [name, frames, rule] of cases) {
    const err = expectStreamError(() => decodeRaw(...frames), ["ESTREAMFRAME"]);
    assert.equal(err.rule, rule, `${name}: ${err.message}`);
    assert.equal(err.frameIndex, frames.length - 1, `${name}: the last frame is the culprit`);
  }
  // The same file decodes when nothing is wrong, and the bytes after END are refused.
  const good = [epochFrame, begin(1), chunk(2, ltx), ltxEnd(3, ltx.length), end(4)];
  assert.equal(decodeRaw(...good).length, 5);
  expectStreamError(() => decodeRaw(...good, Uint8Array.of(0)), ["ESTREAMFRAME"], "trailing bytes");
  const d = new StreamFrameDecoder();
  d.push(cat(encodePreamble(), ...good));
  expectStreamError(() => d.push(Uint8Array.of(1)), ["ESTREAMFRAME"], "trailing bytes");
  // An ERROR frame may abandon an LTX file; a HEARTBEAT may come between its chunks.
  const abandoned = decodeRaw(
    epochFrame,
    begin(1),
    chunk(2, ltx.subarray(0, 10)),
    seq(3, "heartbeat", cat(u64(1n), new Uint8Array(4))),
    seq(4, "error", Buffer.from("\x00\x01E\x00\x00")),
  );
  assert.deepEqual(
    abandoned.map((f) => f.type),
    ["epoch", "ltx-begin", "ltx-chunk", "heartbeat", "error"],
  );
});

test("the encoder refuses what the decoder would refuse, and then stays failed", () => {
  const refuse = (fn: (enc: StreamFrameEncoder) => unknown, rule?: string) => {
    const enc = new StreamFrameEncoder();
    const err = expectStreamError(() => fn(enc), ["ESTREAMENCODE"], rule);
    expectStreamError(() => enc.encode({ type: "ready" }), ["ESTREAMENCODE"]);
    return err;
  };
  refuse((enc) => enc.encode({ type: "ready" }), "order");
  refuse((enc) => enc.encode({ type: "epoch", epoch: 1n << 64n, primaryNodeId: 1n }), "field range");
  refuse((enc) => {
    enc.encode({ type: "epoch", epoch: 1n, primaryNodeId: 1n });
    enc.encode({ type: "hwm", db: "bad\ud800", txid: 1n });
  }, "utf-8");
  refuse((enc) => {
    enc.encode({ type: "epoch", epoch: 1n, primaryNodeId: 1n });
    enc.encode({ type: "error", code: "E", message: "x".repeat(5000) });
  }, "message length");
  refuse((enc) => {
    enc.encode({ type: "epoch", epoch: 1n, primaryNodeId: 1n });
    const bytes = ltxBytes({ minTxid: 2n, maxTxid: 2n, pre: FLAG, post: FLAG | 1n, bodyBytes: 0 });
    enc.encode({
      type: "ltx-begin",
      db: "d",
      minTxid: 2n,
      maxTxid: 2n,
      preApplyChecksum: FLAG,
      postApplyChecksum: FLAG | 9n,
      size: null,
      snapshot: null,
    });
    enc.ltxData(bytes);
    enc.ltxEnd();
  }, "ltx trailer");
  refuse((enc) => {
    enc.encode({ type: "epoch", epoch: 1n, primaryNodeId: 1n });
    enc.encode({
      type: "ltx-begin",
      db: "d",
      minTxid: 2n,
      maxTxid: 2n,
      preApplyChecksum: FLAG,
      postApplyChecksum: FLAG,
      size: null,
      snapshot: null,
    });
    enc.encode({ type: "ltx-chunk", data: new Uint8Array(2 * 1024 * 1024) });
  }, "payload limit");
  assert.throws(() => new StreamFrameEncoder({ chunkBytes: 0 }), RangeError);
  assert.throws(() => new StreamFrameEncoder({ limits: { maxChunkBytes: 10 }, chunkBytes: 11 }), RangeError);
});

test("ltxData splits any input into chunk frames of at most chunkBytes, aliasing the input", () => {
  const enc = new StreamFrameEncoder({ chunkBytes: 100 });
  enc.encode({ type: "epoch", epoch: 1n, primaryNodeId: 1n });
  const bytes = ltxBytes({ minTxid: 1n, maxTxid: 1n, pre: 0n, post: FLAG, bodyBytes: 1000 });
  enc.encode({
    type: "ltx-begin",
    db: "d",
    minTxid: 1n,
    maxTxid: 1n,
    preApplyChecksum: 0n,
    postApplyChecksum: FLAG,
    size: bytes.length,
    snapshot: { reason: "new", verdict: "shared", common: null },
  });
  const parts = [...enc.ltxData(bytes.subarray(0, 7)), ...enc.ltxData(bytes.subarray(7))];
  assert.equal(parts.length, 2 * (1 + Math.ceil((bytes.length - 7) / 100)));
  assert.equal(parts[1].buffer, bytes.buffer, "payloads are views of the caller's bytes");
  assert.ok(enc.inLtx);
  enc.ltxEnd();
  assert.ok(!enc.inLtx);
  assert.deepEqual(enc.ltxData(new Uint8Array(0)), []);
});

test("errors are StreamErrors with code, offset and frame index in the message", () => {
  const err = expectStreamError(
    () => decodeRaw(epochFrame, rawFrame(FRAME_TYPE.ready, new Uint8Array(0), 7)),
    ["ESTREAMFRAME"],
  );
  assert.ok(isStreamError(err, "ESTREAMFRAME"));
  assert.match(err.message, /frame 1 \(ready\), offset 44: .*\[rule: sequence\] \(ESTREAMFRAME\)/);
});
