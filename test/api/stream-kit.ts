// Test material for the stream format: LTX-shaped byte strings, random valid streams built through
// the real encoder, raw frames that bypass it, and a normal form to compare frame sequences.

import assert from "node:assert/strict";

import { StreamFrameEncoder } from "../../src/api/stream-encoder.js";
import {
  crc32,
  FRAME_HEADER_SIZE,
  PREAMBLE_SIZE,
  type EndReason,
  type SnapshotInfo,
  type SnapshotReason,
  type StreamFrame,
  type WireFrame,
} from "../../src/api/stream-frame.js";
import type { Prng } from "../support/prng.js";

export const FLAG = 1n << 63n;

export interface LtxShape {
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly pre: bigint;
  readonly post: bigint;
  /** Bytes between header and trailer. */
  readonly bodyBytes: number;
}

/** Bytes shaped like an LTX file: magic, TXIDs and pre-apply in the header, post-apply in the trailer. */
export function ltxBytes(shape: LtxShape, fill = 0xa5): Uint8Array {
  const bytes = new Uint8Array(100 + shape.bodyBytes + 16);
  bytes.fill(fill, 100, 100 + shape.bodyBytes);
  bytes.set([0x4c, 0x54, 0x58, 0x31], 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, 4096);
  view.setBigUint64(16, shape.minTxid);
  view.setBigUint64(24, shape.maxTxid);
  view.setBigUint64(40, shape.pre);
  view.setBigUint64(bytes.length - 16, shape.post);
  view.setBigUint64(bytes.length - 8, FLAG | 0x1234n);
  return bytes;
}

/** A logical stream item: a whole LTX file or one other frame. */
export type StreamItem =
  | {
      readonly kind: "ltx";
      readonly begin: Extract<WireFrame, { type: "ltx-begin" }>;
      readonly bytes: Uint8Array;
    }
  | { readonly kind: "frame"; readonly frame: WireFrame };

/** Encodes items with a fresh encoder; `chunkBytes` bounds LTX chunk frames. */
export function encodeItems(items: readonly StreamItem[], chunkBytes = 64): Uint8Array {
  const encoder = new StreamFrameEncoder({ chunkBytes });
  const parts: Uint8Array[] = [];
  for (const item of items) {
    if (item.kind === "frame") {
      parts.push(...encoder.encode(item.frame));
    } else {
      parts.push(...encoder.encode(item.begin));
      parts.push(...encoder.ltxData(item.bytes));
      parts.push(...encoder.ltxEnd());
    }
  }
  return Buffer.concat(parts);
}

/** Frames in a comparable normal form: an LTX file's chunks merged into one byte string. */
export type NormalFrame =
  WireFrame | { readonly type: "ltx-data"; readonly db: string; readonly bytes: Buffer };

export function normalizeDecoded(frames: readonly StreamFrame[]): NormalFrame[] {
  const out: NormalFrame[] = [];
  let data: Buffer[] = [];
  let expectedOffset = 0;
  for (const frame of frames) {
    if (frame.type === "ltx-chunk") {
      assert.equal(frame.offset, expectedOffset, "chunk offsets run on without gaps");
      expectedOffset += frame.data.length;
      data.push(Buffer.from(frame.data));
    } else if (frame.type === "ltx-end") {
      out.push({ type: "ltx-data", db: frame.db, bytes: Buffer.concat(data) });
      out.push({ type: "ltx-end", size: frame.size });
      data = [];
      expectedOffset = 0;
    } else {
      out.push(frame);
    }
  }
  if (data.length > 0) out.push({ type: "ltx-data", db: "(open)", bytes: Buffer.concat(data) });
  return out;
}

export function normalizeItems(items: readonly StreamItem[]): NormalFrame[] {
  const out: NormalFrame[] = [];
  for (const item of items) {
    if (item.kind === "frame") out.push(item.frame);
    else {
      out.push(item.begin);
      out.push({ type: "ltx-data", db: item.begin.db, bytes: Buffer.from(item.bytes) });
      out.push({ type: "ltx-end", size: item.bytes.length });
    }
  }
  return out;
}

const NAMES = ["a.db", "b", "ünï.db", "x".repeat(40)];
const REASONS: SnapshotReason[] = [
  "new",
  "replica-ahead",
  "checksum-mismatch",
  "pre-apply-mismatch",
  "files-unavailable",
];
const ENDS: EndReason[] = ["shutdown", "lease-lost", "handed-off", "replaced"];

function randomChecksum(prng: Prng): bigint {
  return FLAG | (BigInt(prng.nextUint32()) << 16n) | BigInt(prng.int(0, 0xffff));
}

function randomSnapshotInfo(prng: Prng, maxTxid: bigint, post: bigint): SnapshotInfo {
  const reason = prng.pick(REASONS);
  if (reason === "new") return { reason, verdict: "shared", common: null };
  const verdict =
    reason === "files-unavailable" ? prng.pick(["shared", "diverged", "unverifiable"] as const) : "diverged";
  if (!prng.chance(0.7)) return { reason, verdict, common: null };
  const txid = BigInt(prng.int(0, Number(maxTxid)));
  const checksum = txid === 0n ? 0n : txid === maxTxid ? post : randomChecksum(prng);
  return { reason, verdict, common: { txid, checksum } };
}

/**
 * A random valid stream: EPOCH, then LTX files (incremental ones continue their database), READY,
 * HEARTBEAT, HWM, raised EPOCHs, maybe a HANDOFF, and an END or ERROR (sometimes inside an LTX file).
 */
export function randomItems(prng: Prng, maxItems = 12, maxBody = 300): StreamItem[] {
  const items: StreamItem[] = [];
  let epoch = BigInt(prng.int(1, 1000));
  const node = BigInt(prng.int(1, 0xffff));
  items.push({ kind: "frame", frame: { type: "epoch", epoch, primaryNodeId: node } });
  const positions = new Map<string, { txid: bigint; checksum: bigint }>();
  let ready = false;
  const count = prng.int(0, maxItems);
  for (let i = 0; i < count; i++) {
    const roll = prng.int(0, 9);
    if (roll <= 4) {
      const db = prng.pick(NAMES);
      const last = positions.get(db);
      const snapshot = last === undefined || prng.chance(0.25);
      const minTxid = snapshot ? 1n : last.txid + 1n;
      const maxTxid = snapshot ? BigInt(prng.int(1, 50)) : minTxid + BigInt(prng.int(0, 3));
      const pre = snapshot ? 0n : last.checksum;
      const post = randomChecksum(prng);
      const bytes = ltxBytes(
        { minTxid, maxTxid, pre, post, bodyBytes: prng.int(0, maxBody) },
        prng.int(0, 255),
      );
      const begin = {
        type: "ltx-begin",
        db,
        minTxid,
        maxTxid,
        preApplyChecksum: pre,
        postApplyChecksum: post,
        size: prng.chance(0.5) ? bytes.length : null,
        snapshot: snapshot ? randomSnapshotInfo(prng, maxTxid, post) : null,
      } as const;
      items.push({ kind: "ltx", begin, bytes });
      positions.set(db, { txid: maxTxid, checksum: post });
    } else if (roll === 5 && !ready) {
      ready = true;
      items.push({ kind: "frame", frame: { type: "ready" } });
    } else if (roll === 6) {
      const dbs = NAMES.filter(() => prng.chance(0.5));
      items.push({
        kind: "frame",
        frame: {
          type: "heartbeat",
          timeMs: prng.int(0, 2 ** 31) * 1000 + prng.int(0, 999),
          positions: dbs.map((db) => ({ db, pos: positions.get(db) ?? { txid: 0n, checksum: 0n } })),
        },
      });
    } else if (roll === 7) {
      items.push({
        kind: "frame",
        frame: { type: "hwm", db: prng.pick(NAMES), txid: BigInt(prng.int(1, 99)) },
      });
    } else if (roll === 8) {
      epoch += BigInt(prng.int(1, 5));
      items.push({ kind: "frame", frame: { type: "epoch", epoch, primaryNodeId: node } });
    }
  }
  if (prng.chance(0.2)) {
    items.push({
      kind: "frame",
      frame: { type: "handoff", toNodeId: BigInt(prng.int(1, 99)), fromEpoch: epoch },
    });
    if (prng.chance(0.5))
      items.push({ kind: "frame", frame: { type: "heartbeat", timeMs: 5, positions: [] } });
  }
  if (prng.chance(0.7)) items.push({ kind: "frame", frame: { type: "end", reason: prng.pick(ENDS) } });
  else
    items.push({
      kind: "frame",
      frame: { type: "error", code: "ESTREAMTEST", message: prng.string(prng.int(0, 40)) },
    });
  return items;
}

/** Splits `bytes` at random points into pieces of 1..maxPiece bytes. */
export function randomPieces(prng: Prng, bytes: Uint8Array, maxPiece: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = prng.int(1, maxPiece);
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

/** Start offsets of the frames in an encoded stream (walking the length fields). */
export function frameOffsets(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = PREAMBLE_SIZE; at < bytes.length; at += FRAME_HEADER_SIZE + view.getUint32(at + 8)) {
    offsets.push(at);
  }
  return offsets;
}

/** A frame with a header of our choosing (CRCs computed unless overridden). */
export function rawFrame(
  typeCode: number,
  payload: Uint8Array,
  sequence: number,
  options: { flags?: number; reserved?: number; payloadCrc?: number; length?: number } = {},
): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, typeCode);
  view.setUint8(1, options.flags ?? 0);
  view.setUint16(2, options.reserved ?? 0);
  view.setUint32(4, sequence);
  view.setUint32(8, options.length ?? payload.length);
  view.setUint32(12, options.payloadCrc ?? crc32(payload));
  view.setUint32(16, crc32(bytes.subarray(0, 16)));
  bytes.set(payload, FRAME_HEADER_SIZE);
  return bytes;
}

/**
 * Recomputes every frame's CRCs in place, as far as the length fields allow, so that a mutated stream
 * gets past the checksums and reaches the layout and order rules.
 */
export function resealInPlace(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = PREAMBLE_SIZE; at + FRAME_HEADER_SIZE <= bytes.length;) {
    const length = view.getUint32(at + 8);
    const end = Math.min(bytes.length, at + FRAME_HEADER_SIZE + length);
    view.setUint32(at + 12, crc32(bytes.subarray(at + FRAME_HEADER_SIZE, end)));
    view.setUint32(at + 16, crc32(bytes.subarray(at, at + 16)));
    if (length > bytes.length) break;
    at += FRAME_HEADER_SIZE + length;
  }
}
