// The primary → replica stream format (docs/protocol.md has every byte): an 8-byte preamble, then
// frames of a 20-byte header (type, flags, sequence, payload length, payload CRC-32, header CRC-32) and
// a payload. This file holds the vocabulary — frame types, their fields, limits — and the frame header;
// payload layouts are in stream-payload.ts, ordering rules in stream-rules.ts.
//
// Why CRC-32 (zlib's, native, ~4.8 GB/s here) rather than the LTX CRC-64: it only has to catch
// corruption per frame, and every LTX file carries its own CRC-64 end to end as well. The header has
// its own CRC so that a damaged length is refused at once instead of making the decoder wait for bytes.

import zlib from "node:zlib";

import type { Pos } from "../ltx/pos.js";
import type { CatchUpPlan, SnapshotReason } from "../store/catchup-plan.js";
import type { ChainLink, HistoryComparison } from "../store/divergence.js";

export type { SnapshotReason };

/** "LFSTRM", version 1, one reserved zero byte. */
export const STREAM_MAGIC = Uint8Array.of(0x4c, 0x46, 0x53, 0x54, 0x52, 0x4d);
export const STREAM_VERSION = 1;
export const PREAMBLE_SIZE = 8;
export const FRAME_HEADER_SIZE = 20;

/** HTTP content type of the response body. */
export const STREAM_CONTENT_TYPE = "application/vnd.litefs.stream";

export const FRAME_TYPE = {
  epoch: 1,
  "ltx-begin": 2,
  "ltx-chunk": 3,
  "ltx-end": 4,
  ready: 5,
  heartbeat: 6,
  hwm: 7,
  handoff: 8,
  end: 9,
  error: 10,
} as const;
export type FrameTypeName = keyof typeof FRAME_TYPE;

const FRAME_TYPE_NAMES = new Map<number, FrameTypeName>(
  Object.entries(FRAME_TYPE).map(([name, code]) => [code, name as FrameTypeName]),
);

export function frameTypeName(code: number): FrameTypeName | undefined {
  return FRAME_TYPE_NAMES.get(code);
}

/** LTX_BEGIN flag bits; every other frame type has flags 0. */
export const LTX_BEGIN_FLAG = { snapshot: 0x01, sizeKnown: 0x02, common: 0x04 } as const;

/** Wire codes of the snapshot reasons (catchup-plan.ts says what each means); 0 = incremental. */
export const SNAPSHOT_REASON_CODE: Readonly<Record<SnapshotReason, number>> = Object.freeze({
  new: 1,
  "replica-ahead": 2,
  "checksum-mismatch": 3,
  "pre-apply-mismatch": 4,
  "files-unavailable": 5,
});

/** What the primary found out about the replica's own history (divergence.ts). */
export type HistoryVerdict = HistoryComparison["verdict"];
export const HISTORY_VERDICT_CODE: Readonly<Record<HistoryVerdict, number>> = Object.freeze({
  shared: 0, // every transaction the replica has is in the primary's history: nothing to quarantine
  diverged: 1, // the replica has transactions the primary's history does not have
  unverifiable: 2, // the primary no longer holds the files that would tell
});

export interface SnapshotInfo {
  readonly reason: SnapshotReason;
  readonly verdict: HistoryVerdict;
  /** The last position the replica's history shares with the primary's, when one is known. */
  readonly common: Pos | null;
}

/** Why the primary ends a stream. */
export type EndReason =
  | "shutdown" // the primary is stopping
  | "lease-lost" // the primary lost its lease: find the new primary
  | "handed-off" // the primary handed its lease to another node
  | "replaced"; // the same replica opened a newer stream
export const END_REASON_CODE: Readonly<Record<EndReason, number>> = Object.freeze({
  shutdown: 1,
  "lease-lost": 2,
  "handed-off": 3,
  replaced: 4,
});

/** The reverse of a code table: wire code → name. */
export function codeNames<K extends string>(table: Readonly<Record<K, number>>): ReadonlyMap<number, K> {
  return new Map(Object.entries(table).map(([name, code]) => [code as number, name as K]));
}

export interface DbPosition {
  readonly db: string;
  readonly pos: Pos;
}

export interface EpochFrame {
  readonly type: "epoch";
  /** The lease epoch the primary holds; every frame after this one is sent under it. ≥ 1. */
  readonly epoch: bigint;
  readonly primaryNodeId: bigint;
}
export interface LtxBeginFrame {
  readonly type: "ltx-begin";
  readonly db: string;
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly preApplyChecksum: bigint;
  readonly postApplyChecksum: bigint;
  /** Byte length of the LTX file, or null when the primary encodes it on the fly. */
  readonly size: number | null;
  /** Set for a snapshot (min TXID 1), null for an incremental file. */
  readonly snapshot: SnapshotInfo | null;
}
export interface LtxChunkWireFrame {
  readonly type: "ltx-chunk";
  readonly data: Uint8Array;
}
export interface LtxEndWireFrame {
  readonly type: "ltx-end";
  /** Total bytes of the LTX file (the sum of its chunks). */
  readonly size: number;
}
export interface ReadyFrame {
  readonly type: "ready";
}
export interface HeartbeatFrame {
  readonly type: "heartbeat";
  /** The primary's wall clock, ms since the Unix epoch (replicas compute lag from it). */
  readonly timeMs: number;
  /** The primary's positions (may be empty). */
  readonly positions: readonly DbPosition[];
}
export interface HwmFrame {
  readonly type: "hwm";
  readonly db: string;
  readonly txid: bigint;
}
export interface HandoffFrame {
  readonly type: "handoff";
  /** The node the lease is handed to: only that replica receives this frame. */
  readonly toNodeId: bigint;
  /** The epoch of the primary that hands off; equals the stream's epoch. */
  readonly fromEpoch: bigint;
}
export interface EndFrame {
  readonly type: "end";
  readonly reason: EndReason;
}
export interface ErrorFrame {
  readonly type: "error";
  /** A stable code, `[A-Z][A-Z0-9_]{0,31}` (e.g. ESTREAMEPOCH). */
  readonly code: string;
  readonly message: string;
}

/** A frame as it travels: what the encoder takes. */
export type WireFrame =
  | EpochFrame
  | LtxBeginFrame
  | LtxChunkWireFrame
  | LtxEndWireFrame
  | ReadyFrame
  | HeartbeatFrame
  | HwmFrame
  | HandoffFrame
  | EndFrame
  | ErrorFrame;

/** A decoded LTX chunk, with the file it belongs to and its byte offset in that file. */
export interface LtxChunkFrame extends LtxChunkWireFrame {
  readonly db: string;
  readonly offset: number;
}
export interface LtxEndFrame extends LtxEndWireFrame {
  readonly db: string;
}

/** A frame as the decoder hands it out: chunks and ends name their database. */
export type StreamFrame =
  Exclude<WireFrame, LtxChunkWireFrame | LtxEndWireFrame> | LtxChunkFrame | LtxEndFrame;

/** The first TXID of the replica's that it must quarantine, or null when nothing is to be. */
export function firstUnsharedTxid(info: SnapshotInfo): bigint | null {
  if (info.verdict === "shared") return null;
  return info.common === null ? 1n : info.common.txid + 1n;
}

/** What an LTX_BEGIN says about a snapshot the catch-up planner chose. */
export function snapshotInfoOf(plan: Extract<CatchUpPlan<ChainLink>, { kind: "snapshot" }>): SnapshotInfo {
  if (plan.history === null) return { reason: plan.reason, verdict: "shared", common: null };
  return { reason: plan.reason, verdict: plan.history.verdict, common: plan.history.common };
}

// ---- limits ----

export interface StreamLimits {
  /** Largest LTX_CHUNK payload. */
  readonly maxChunkBytes: number;
  /** Largest payload of every other frame type. */
  readonly maxControlBytes: number;
  /** Longest database name, in UTF-8 bytes (the store allows at most 247). */
  readonly maxNameBytes: number;
  /** Longest ERROR message, in UTF-8 bytes. */
  readonly maxMessageBytes: number;
  /** Most positions in one HEARTBEAT. */
  readonly maxHeartbeatPositions: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = Object.freeze({
  maxChunkBytes: 1024 * 1024,
  maxControlBytes: 1024 * 1024,
  maxNameBytes: 247,
  maxMessageBytes: 4096,
  maxHeartbeatPositions: 65536,
});

/** Hard ceilings: no option can raise a limit past these. */
export const STREAM_LIMITS_MAX: StreamLimits = Object.freeze({
  maxChunkBytes: 64 * 1024 * 1024,
  maxControlBytes: 64 * 1024 * 1024,
  maxNameBytes: 247,
  maxMessageBytes: 65535,
  maxHeartbeatPositions: 1 << 20,
});

/** Fills in defaults; throws RangeError for a limit below 1 or above its ceiling (a programming error). */
export function resolveStreamLimits(limits: Partial<StreamLimits> = {}): StreamLimits {
  const out = { ...DEFAULT_STREAM_LIMITS, ...limits };
  for (const key of Object.keys(DEFAULT_STREAM_LIMITS) as (keyof StreamLimits)[]) {
    const value = out[key];
    if (!Number.isInteger(value) || value < 1 || value > STREAM_LIMITS_MAX[key]) {
      throw new RangeError(`stream limit ${key} = ${value}: want an integer in 1..${STREAM_LIMITS_MAX[key]}`);
    }
  }
  return Object.freeze(out);
}

/** The payload limit that applies to a frame type. */
export function payloadLimit(type: FrameTypeName, limits: StreamLimits): number {
  return type === "ltx-chunk" ? limits.maxChunkBytes : limits.maxControlBytes;
}

// ---- preamble and frame header ----

export function encodePreamble(): Uint8Array {
  const bytes = new Uint8Array(PREAMBLE_SIZE);
  bytes.set(STREAM_MAGIC, 0);
  bytes[6] = STREAM_VERSION;
  return bytes;
}

/** Why `bytes` (8 bytes) is not our preamble, or null when it is. */
export function preambleProblem(bytes: Uint8Array): string | null {
  for (let i = 0; i < STREAM_MAGIC.length; i++) {
    if (bytes[i] !== STREAM_MAGIC[i]) return "not a LiteFS stream (magic is not LFSTRM)";
  }
  if (bytes[6] !== STREAM_VERSION) return `stream version ${bytes[6]}, this node speaks ${STREAM_VERSION}`;
  if (bytes[7] !== 0) return "reserved preamble byte is not 0";
  return null;
}

export interface FrameHeader {
  readonly typeCode: number;
  readonly flags: number;
  readonly reserved: number;
  readonly sequence: number;
  readonly payloadLength: number;
  readonly payloadCrc: number;
}

export function crc32(bytes: Uint8Array): number {
  return zlib.crc32(bytes) >>> 0;
}

export function encodeFrameHeader(
  typeCode: number,
  flags: number,
  sequence: number,
  payload: Uint8Array,
): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, typeCode);
  view.setUint8(1, flags);
  view.setUint16(2, 0);
  view.setUint32(4, sequence >>> 0);
  view.setUint32(8, payload.length);
  view.setUint32(12, crc32(payload));
  view.setUint32(16, crc32(bytes.subarray(0, 16)));
  return bytes;
}

/** Reads a 20-byte header; null when its CRC does not match (nothing in it can be trusted then). */
export function decodeFrameHeader(bytes: Uint8Array): FrameHeader | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_SIZE);
  if (view.getUint32(16) !== crc32(bytes.subarray(0, 16))) return null;
  return {
    typeCode: view.getUint8(0),
    flags: view.getUint8(1),
    reserved: view.getUint16(2),
    sequence: view.getUint32(4),
    payloadLength: view.getUint32(8),
    payloadCrc: view.getUint32(12),
  };
}
