// Payload layouts of the stream's frames (big-endian; docs/protocol.md, "Frames"). One function encodes
// a frame's fields, one decodes and validates them; the rules here concern one frame alone (ranges,
// names, flag/field agreement). Rules that relate frames to each other are in stream-rules.ts.
//
// Both directions throw StreamViolation; the decoder and the encoder say where. The encoder runs the
// decoder over what it produced, so nothing is ever sent that a replica would refuse.

import { databaseNameProblem } from "../store/database-name.js";
import { StreamViolation } from "./stream-error.js";
import { PayloadReader, PayloadWriter, utf8 } from "./stream-payload-bytes.js";
import {
  codeNames,
  END_REASON_CODE,
  FRAME_TYPE,
  HISTORY_VERDICT_CODE,
  LTX_BEGIN_FLAG,
  SNAPSHOT_REASON_CODE,
  type DbPosition,
  type FrameTypeName,
  type LtxBeginFrame,
  type SnapshotInfo,
  type StreamLimits,
  type WireFrame,
} from "./stream-frame.js";

/** An LTX file is at least its 100-byte header and 16-byte trailer. */
export const LTX_MIN_SIZE = 116;
const LTX_BEGIN_FIXED = 60;
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,31}$/;
const SNAPSHOT_REASONS = codeNames(SNAPSHOT_REASON_CODE);
const HISTORY_VERDICTS = codeNames(HISTORY_VERDICT_CODE);
const END_REASONS = codeNames(END_REASON_CODE);

export interface EncodedPayload {
  readonly typeCode: number;
  readonly flags: number;
  readonly payload: Uint8Array;
}

// ---- writing ----

function writeName(w: PayloadWriter, db: string): PayloadWriter {
  const bytes = utf8(db, "database name");
  return w.u16(bytes.length, "name length").bytes(bytes);
}

function optionalSnapshotCodes(info: SnapshotInfo | null): [number, number] {
  if (info === null) return [0, 0];
  return [SNAPSHOT_REASON_CODE[info.reason], HISTORY_VERDICT_CODE[info.verdict]];
}

/** Lays out a frame's payload. Checks ranges only; `decodePayload` checks the rest. */
export function encodePayload(frame: WireFrame): EncodedPayload {
  const w = new PayloadWriter();
  let flags = 0;
  switch (frame.type) {
    case "epoch":
      w.u64(frame.epoch, "epoch").u64(frame.primaryNodeId, "primary node id");
      break;
    case "ltx-begin": {
      const name = utf8(frame.db, "database name");
      const [reason, verdict] = optionalSnapshotCodes(frame.snapshot);
      const common = frame.snapshot?.common ?? null;
      if (frame.snapshot !== null) flags |= LTX_BEGIN_FLAG.snapshot;
      if (frame.size !== null) flags |= LTX_BEGIN_FLAG.sizeKnown;
      if (common !== null) flags |= LTX_BEGIN_FLAG.common;
      w.u8(reason).u8(verdict).u16(name.length, "name length");
      w.u64(frame.minTxid, "min TXID").u64(frame.maxTxid, "max TXID");
      w.u64(frame.preApplyChecksum, "pre-apply checksum").u64(frame.postApplyChecksum, "post-apply checksum");
      w.u64(BigInt(frame.size ?? 0), "size");
      w.u64(common?.txid ?? 0n, "common TXID").u64(common?.checksum ?? 0n, "common checksum");
      w.bytes(name);
      break;
    }
    case "ltx-chunk":
      w.bytes(frame.data);
      break;
    case "ltx-end":
      w.u64(BigInt(frame.size), "size");
      break;
    case "ready":
      break;
    case "heartbeat":
      w.u64(BigInt(frame.timeMs), "time").u32(frame.positions.length, "position count");
      for (const { db, pos } of frame.positions) {
        writeName(w, db).u64(pos.txid, "TXID").u64(pos.checksum, "checksum");
      }
      break;
    case "hwm":
      writeName(w.u64(frame.txid, "TXID"), frame.db);
      break;
    case "handoff":
      w.u64(frame.toNodeId, "target node id").u64(frame.fromEpoch, "epoch");
      break;
    case "end":
      w.u8(END_REASON_CODE[frame.reason]);
      break;
    case "error": {
      const code = utf8(frame.code, "error code");
      const message = utf8(frame.message, "error message");
      w.u16(code.length, "code length").bytes(code).u16(message.length, "message length").bytes(message);
      break;
    }
  }
  return { typeCode: FRAME_TYPE[frame.type], flags, payload: w.finish() };
}

// ---- reading ----

function readName(r: PayloadReader, limits: StreamLimits, length?: number): string {
  const n = length ?? r.u16("name length");
  if (n === 0 || n > limits.maxNameBytes) {
    throw new StreamViolation("name length", `database name of ${n} bytes: want 1..${limits.maxNameBytes}`);
  }
  const name = r.text(n, "database name");
  const problem = databaseNameProblem(name);
  if (problem !== null) throw new StreamViolation("database name", `invalid database name: ${problem}`, name);
  return name;
}

function nonZero(value: bigint, what: string): bigint {
  if (value === 0n) throw new StreamViolation("field range", `${what} is 0`);
  return value;
}

function checkPosition(txid: bigint, checksum: bigint, what: string, db?: string): void {
  if (txid === 0n && checksum !== 0n) {
    throw new StreamViolation("position", `${what} has TXID 0 but checksum ${checksum.toString(16)}`, db);
  }
}

function fixedSize(type: FrameTypeName): number | null {
  switch (type) {
    case "epoch":
    case "handoff":
      return 16;
    case "ltx-end":
      return 8;
    case "ready":
      return 0;
    case "end":
      return 1;
    default:
      return null;
  }
}

/** Which flag bits a frame type may set. */
function allowedFlags(type: FrameTypeName): number {
  return type === "ltx-begin"
    ? LTX_BEGIN_FLAG.snapshot | LTX_BEGIN_FLAG.sizeKnown | LTX_BEGIN_FLAG.common
    : 0;
}

/**
 * Decodes and validates one payload. `payload` may be a view into the caller's input: an LTX chunk's
 * `data` aliases it (no copy). Throws StreamViolation.
 */
export function decodePayload(
  type: FrameTypeName,
  flags: number,
  payload: Uint8Array,
  limits: StreamLimits,
): WireFrame {
  if ((flags & ~allowedFlags(type)) !== 0) {
    throw new StreamViolation("flags", `flags 0x${flags.toString(16)} not allowed on ${type}`);
  }
  const fixed = fixedSize(type);
  if (fixed !== null && payload.length !== fixed) {
    throw new StreamViolation("payload length", `${type} payload is ${payload.length} bytes, want ${fixed}`);
  }
  const r = new PayloadReader(payload);
  let frame: WireFrame;
  switch (type) {
    case "epoch":
      frame = {
        type,
        epoch: nonZero(r.u64("epoch"), "epoch"),
        primaryNodeId: nonZero(r.u64("node id"), "node id"),
      };
      break;
    case "ltx-begin":
      frame = readLtxBegin(r, flags, limits);
      break;
    case "ltx-chunk":
      if (payload.length === 0) throw new StreamViolation("payload length", "empty ltx-chunk");
      frame = { type, data: payload };
      r.take(payload.length, "data");
      break;
    case "ltx-end":
      frame = { type, size: r.safe("size") };
      break;
    case "ready":
      frame = { type };
      break;
    case "heartbeat":
      frame = readHeartbeat(r, limits);
      break;
    case "hwm": {
      const txid = nonZero(r.u64("TXID"), "high-water mark TXID");
      frame = { type, txid, db: readName(r, limits) };
      break;
    }
    case "handoff":
      frame = {
        type,
        toNodeId: nonZero(r.u64("target node id"), "target node id"),
        fromEpoch: nonZero(r.u64("epoch"), "epoch"),
      };
      break;
    case "end": {
      const code = r.u8("reason");
      const reason = END_REASONS.get(code);
      if (reason === undefined) throw new StreamViolation("end reason", `unknown END reason ${code}`);
      frame = { type, reason };
      break;
    }
    case "error": {
      const codeLength = r.u16("code length");
      const code = r.text(codeLength, "error code");
      if (!ERROR_CODE.test(code)) {
        throw new StreamViolation(
          "error code",
          `error code ${JSON.stringify(code)} is not [A-Z][A-Z0-9_]{0,31}`,
        );
      }
      const messageLength = r.u16("message length");
      if (messageLength > limits.maxMessageBytes) {
        throw new StreamViolation(
          "message length",
          `error message of ${messageLength} bytes: limit ${limits.maxMessageBytes}`,
        );
      }
      frame = { type, code, message: r.text(messageLength, "error message") };
      break;
    }
  }
  r.end();
  return frame;
}

function readHeartbeat(r: PayloadReader, limits: StreamLimits): WireFrame {
  const timeMs = r.safe("time");
  const count = r.u32("position count");
  if (count > limits.maxHeartbeatPositions) {
    throw new StreamViolation(
      "position count",
      `heartbeat with ${count} positions: limit ${limits.maxHeartbeatPositions}`,
    );
  }
  const positions: DbPosition[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const db = readName(r, limits);
    if (seen.has(db))
      throw new StreamViolation("unique names", `heartbeat names ${JSON.stringify(db)} twice`, db);
    seen.add(db);
    const txid = r.u64("TXID");
    const checksum = r.u64("checksum");
    checkPosition(txid, checksum, "heartbeat position", db);
    positions.push({ db, pos: { txid, checksum } });
  }
  return { type: "heartbeat", timeMs, positions };
}

function readLtxBegin(r: PayloadReader, flags: number, limits: StreamLimits): LtxBeginFrame {
  if (r.bytes.length < LTX_BEGIN_FIXED + 1) {
    throw new StreamViolation("payload length", `ltx-begin payload is ${r.bytes.length} bytes, want ≥ 61`);
  }
  const reasonCode = r.u8("snapshot reason");
  const verdictCode = r.u8("history verdict");
  const nameLength = r.u16("name length");
  const minTxid = r.u64("min TXID");
  const maxTxid = r.u64("max TXID");
  const preApplyChecksum = r.u64("pre-apply checksum");
  const postApplyChecksum = r.u64("post-apply checksum");
  const size = r.safe("size");
  const commonTxid = r.u64("common TXID");
  const commonChecksum = r.u64("common checksum");
  const db = readName(r, limits, nameLength);
  const bad = (rule: string, detail: string): StreamViolation => new StreamViolation(rule, detail, db);

  if (minTxid === 0n || maxTxid < minTxid) throw bad("TXID range", `TXID range ${minTxid}-${maxTxid}`);
  const snapshot = (flags & LTX_BEGIN_FLAG.snapshot) !== 0;
  if (snapshot !== (minTxid === 1n)) {
    throw bad("snapshot", `snapshot flag ${snapshot} but min TXID ${minTxid} (a snapshot starts at TXID 1)`);
  }
  if (snapshot && preApplyChecksum !== 0n)
    throw bad("snapshot", "snapshot with a non-zero pre-apply checksum");
  if ((flags & LTX_BEGIN_FLAG.sizeKnown) === 0) {
    if (size !== 0) throw bad("size", `size ${size} without the size-known flag`);
  } else if (size < LTX_MIN_SIZE) {
    throw bad("size", `declared LTX size ${size} is below ${LTX_MIN_SIZE} bytes`);
  }
  const hasCommon = (flags & LTX_BEGIN_FLAG.common) !== 0;
  if (!hasCommon && (commonTxid !== 0n || commonChecksum !== 0n)) {
    throw bad("common position", "common position fields set without the common flag");
  }
  const base = { type: "ltx-begin", db, minTxid, maxTxid, preApplyChecksum, postApplyChecksum } as const;
  const sizeOrNull = (flags & LTX_BEGIN_FLAG.sizeKnown) === 0 ? null : size;
  if (!snapshot) {
    if (reasonCode !== 0 || verdictCode !== 0 || hasCommon) {
      throw bad("incremental", "an incremental file carries no snapshot reason, verdict or common position");
    }
    return { ...base, size: sizeOrNull, snapshot: null };
  }

  const reason = SNAPSHOT_REASONS.get(reasonCode);
  const verdict = HISTORY_VERDICTS.get(verdictCode);
  if (reason === undefined) throw bad("snapshot reason", `unknown snapshot reason ${reasonCode}`);
  if (verdict === undefined) throw bad("history verdict", `unknown history verdict ${verdictCode}`);
  if (reason === "new" && (verdict !== "shared" || hasCommon)) {
    throw bad("history verdict", "a replica without the database has no history to judge");
  }
  if ((reason === "replica-ahead" || reason.endsWith("-mismatch")) && verdict !== "diverged") {
    throw bad("history verdict", `snapshot reason ${reason} implies a diverged history, not ${verdict}`);
  }
  let common = null;
  if (hasCommon) {
    checkPosition(commonTxid, commonChecksum, "common position", db);
    if (commonTxid > maxTxid)
      throw bad("common position", `common TXID ${commonTxid} beyond max TXID ${maxTxid}`);
    if (commonTxid === maxTxid && commonChecksum !== postApplyChecksum) {
      throw bad(
        "common position",
        "common position at the max TXID with a checksum other than the post-apply",
      );
    }
    common = { txid: commonTxid, checksum: commonChecksum };
  }
  return { ...base, size: sizeOrNull, snapshot: { reason, verdict, common } };
}
