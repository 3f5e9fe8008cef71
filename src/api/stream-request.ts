// The body of `POST /stream` (docs/protocol.md, "Request"): who the replica is, which cluster it
// belongs to, the highest lease epoch it has seen, and per database its position plus its most recent
// LTX files (so the primary can tell which of the replica's transactions its own history lacks).
// Big-endian, ending in a CRC-32 of everything before it. Bodies are small (≤ a few MiB) and read whole.
//
// Also the node-to-node header values: `Litefs-Id` (16 hex digits) and `Litefs-Cluster-Id`.

import { formatHex64 } from "../ltx/hex64.js";
import type { Pos } from "../ltx/pos.js";
import { ChainError, checkChain, type ChainLink } from "../store/divergence.js";
import { StreamError, StreamViolation } from "./stream-error.js";
import { crc32 } from "./stream-frame.js";
import { PayloadReader, PayloadWriter, utf8 } from "./stream-payload-bytes.js";
import { databaseNameProblem } from "../store/database-name.js";
import type { EpochChange } from "../store/epoch-history.js";

/** "LFSREQ", version 1, one reserved zero byte. */
const REQUEST_MAGIC = Uint8Array.of(0x4c, 0x46, 0x53, 0x52, 0x45, 0x51);
const REQUEST_VERSION = 1;

export const REQUEST_CONTENT_TYPE = "application/vnd.litefs.stream-request";
export const NODE_ID_HEADER = "Litefs-Id";
export const CLUSTER_ID_HEADER = "Litefs-Cluster-Id";
/** "true" when the replica may take the lease (`lease.candidate`); absent or anything else: not one. */
export const CANDIDATE_HEADER = "Litefs-Candidate";
/**
 * The replica's own API URL (`lease.advertise-url`): where a primary handing its lease to it asks its
 * position (src/node/handoff-pacer.ts). Advisory: not an http(s) URL, it is ignored.
 */
export const ADVERTISE_URL_HEADER = "Litefs-Advertise-URL";

/** `text` when it is an http(s) URL (of at most `maxChars`), else null. */
export function httpUrlOrNull(text: string | null | undefined, maxChars = 2048): string | null {
  if (text === null || text === undefined || text.length > maxChars || !URL.canParse(text)) return null;
  const { protocol } = new URL(text);
  return protocol === "http:" || protocol === "https:" ? text : null;
}
/**
 * Answer header of a stream: per database the primary's epoch history from the replica's position on
 * (store/epoch-history.ts, epochHistoryFrom), so that the replica attributes the transactions a catch-up
 * brings to the epochs they were written under. URI-encoded JSON {"<db>": ["<epoch>/<txid hex>", …]}.
 * Absent (an older primary): the replica attributes them to the stream's epoch.
 */
export const EPOCHS_HEADER = "Litefs-Epochs";

/** Lines per database at most in EPOCHS_HEADER (the latest ones are kept). */
const EPOCH_LINES_SENT = 64;

/**
 * Longest EPOCHS_HEADER value sent (characters): far below the 16 KiB Node allows for all of an answer's
 * headers. Databases that do not fit are left out — their replica attributes what the stream brings to
 * the stream's epoch, as without the header.
 */
export const EPOCHS_HEADER_MAX_CHARS = 8192;

export function encodeEpochsHeader(lines: ReadonlyMap<string, readonly EpochChange[]>): string {
  const out: Record<string, string[]> = {};
  let encoded = encodeURIComponent("{}");
  for (const [db, history] of lines) {
    out[db] = history
      .slice(-EPOCH_LINES_SENT)
      .map((l) => `${l.epoch.toString()}/${l.firstTxid.toString(16)}`);
    const next = encodeURIComponent(JSON.stringify(out));
    if (next.length > EPOCHS_HEADER_MAX_CHARS) delete out[db];
    else encoded = next;
  }
  return encoded;
}

/** The lines in an EPOCHS_HEADER value; undefined when it is absent or not one. */
export function decodeEpochsHeader(value: string | undefined): Map<string, EpochChange[]> | undefined {
  if (value === undefined || value === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeURIComponent(value));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const out = new Map<string, EpochChange[]>();
  for (const [db, list] of Object.entries(parsed as Record<string, unknown>)) {
    if (!Array.isArray(list)) return undefined;
    const history: EpochChange[] = [];
    for (const item of list) {
      const match = typeof item === "string" ? /^([0-9]{1,20})\/([0-9a-f]{1,16})$/.exec(item) : null;
      if (match === null) return undefined;
      history.push({ epoch: BigInt(match[1]), firstTxid: BigInt(`0x${match[2]}`) });
    }
    out.set(db, history);
  }
  return out;
}

/**
 * Request header of a stream: the databases whose catch-up the replica wants as a snapshot rather than
 * as LTX files, each with the first TXID of the primary's file it refused twice in a row (the file did
 * not decode or did not apply there: damaged on the primary's disk, say, or a format the replica
 * misreads). URI-encoded JSON {"<db>": "<txid hex>"}. Absent: none. A primary that does not know the
 * header streams the files again, as before it existed.
 */
export const SNAPSHOT_WANTED_HEADER = "Litefs-Snapshot-Wanted";

/** Longest SNAPSHOT_WANTED_HEADER value sent (characters); databases past it wait for a later stream. */
const SNAPSHOT_WANTED_MAX_CHARS = 8192;

export function encodeSnapshotWantedHeader(wanted: ReadonlyMap<string, bigint>): string {
  const out: Record<string, string> = {};
  let encoded = encodeURIComponent("{}");
  for (const [db, txid] of wanted) {
    out[db] = txid.toString(16);
    const next = encodeURIComponent(JSON.stringify(out));
    if (next.length > SNAPSHOT_WANTED_MAX_CHARS) delete out[db];
    else encoded = next;
  }
  return encoded;
}

/**
 * The databases a SNAPSHOT_WANTED_HEADER value names, with their refused TXIDs; empty when the header
 * is absent. Throws ESTREAMREQUEST when it is not one (the primary answers 400, naming the header).
 */
export function decodeSnapshotWantedHeader(value: string | undefined): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (value === undefined) return out;
  const refuse = (why: string): never => {
    throw new StreamError("ESTREAMREQUEST", `${SNAPSHOT_WANTED_HEADER} ${why}`, { rule: "snapshot wanted" });
  };
  if (value.length > SNAPSHOT_WANTED_MAX_CHARS)
    refuse(`is longer than ${SNAPSHOT_WANTED_MAX_CHARS} characters`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeURIComponent(value));
  } catch {
    return refuse("is not URI-encoded JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return refuse("is not a JSON object");
  }
  for (const [db, txid] of Object.entries(parsed as Record<string, unknown>)) {
    const problem = databaseNameProblem(db);
    if (problem !== null) refuse(`names a database that cannot exist: ${problem}`);
    if (typeof txid !== "string" || !/^[0-9a-f]{1,16}$/.test(txid) || /^0+$/.test(txid)) {
      refuse(
        `gives ${JSON.stringify(db)} the TXID ${JSON.stringify(txid)}, not 1..16 lowercase hex digits above 0`,
      );
    }
    out.set(db, BigInt(`0x${txid as string}`));
  }
  return out;
}

/** How many of its most recent LTX files a replica reports per database. */
export const RECENT_LINKS_SENT = 256;

const CLUSTER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface ReplicaDatabase {
  readonly db: string;
  readonly pos: Pos;
  /** The replica's most recent LTX files for the database, ascending (the epoch is not sent). */
  readonly recent: readonly ChainLink[];
}

export interface StreamRequest {
  readonly nodeId: bigint;
  /** The replica's cluster id; "" when it has none yet (it adopts the primary's). */
  readonly clusterId: string;
  /** The highest lease epoch the replica has seen; 0 when none. */
  readonly epochSeen: bigint;
  readonly databases: readonly ReplicaDatabase[];
}

export interface StreamRequestLimits {
  readonly maxBodyBytes: number;
  readonly maxDatabases: number;
  readonly maxLinksPerDatabase: number;
}

export const DEFAULT_REQUEST_LIMITS: StreamRequestLimits = Object.freeze({
  maxBodyBytes: 8 * 1024 * 1024,
  maxDatabases: 65536,
  maxLinksPerDatabase: 1024,
});

/** Why `id` cannot be a cluster id, or null when it can ("" is allowed: not assigned yet). */
export function clusterIdProblem(id: string): string | null {
  if (id === "" || CLUSTER_ID.test(id)) return null;
  return `cluster id ${JSON.stringify(id.slice(0, 80))} is not 1..64 of [A-Za-z0-9_-]`;
}

export function formatNodeId(id: bigint): string {
  return formatHex64(id);
}

/** Parses a `Litefs-Id` value: 16 hex digits, not all zero. Throws ESTREAMNODE. */
export function parseNodeId(value: string | undefined): bigint {
  if (value === undefined || !/^[0-9a-fA-F]{16}$/.test(value)) {
    throw new StreamError(
      "ESTREAMNODE",
      `${NODE_ID_HEADER} ${value === undefined ? "is missing" : `${JSON.stringify(value.slice(0, 40))} is not 16 hex digits`}`,
      { rule: "node id" },
    );
  }
  const id = BigInt(`0x${value}`);
  if (id === 0n) throw new StreamError("ESTREAMNODE", `${NODE_ID_HEADER} is zero`, { rule: "node id" });
  return id;
}

/** Lays out a request body. Throws ESTREAMENCODE for a request the primary would refuse. */
export function encodeStreamRequest(request: StreamRequest, limits = DEFAULT_REQUEST_LIMITS): Uint8Array {
  let body: Uint8Array;
  try {
    const w = new PayloadWriter().bytes(REQUEST_MAGIC).u8(REQUEST_VERSION).u8(0);
    const cluster = utf8(request.clusterId, "cluster id");
    w.u64(request.nodeId, "node id").u64(request.epochSeen, "epoch").u16(cluster.length, "cluster id length");
    w.bytes(cluster).u32(request.databases.length, "database count");
    for (const { db, pos, recent } of request.databases) {
      const name = utf8(db, "database name");
      w.u16(name.length, "name length").bytes(name).u64(pos.txid, "TXID").u64(pos.checksum, "checksum");
      w.u16(recent.length, "link count").bytes(encodeLinks(recent));
    }
    const unsealed = w.finish();
    body = new PayloadWriter().bytes(unsealed).u32(crc32(unsealed), "crc").finish();
  } catch (err) {
    if (!(err instanceof StreamViolation)) throw err;
    throw new StreamError("ESTREAMENCODE", `cannot encode the stream request: ${err.message}`, {
      rule: err.rule,
    });
  }
  try {
    decodeStreamRequest(body, limits);
  } catch (err) {
    if (!(err instanceof StreamError)) throw err;
    throw new StreamError("ESTREAMENCODE", `the stream request would be refused: ${err.detail}`, {
      rule: err.rule,
      db: err.db,
      cause: err,
    });
  }
  return body;
}

/** Bytes of one link in a request: min and max TXID, pre- and post-apply checksum, u64 each. */
const LINK_BYTES = 32;
const U64_MAX = (1n << 64n) - 1n;

/**
 * The links of one database as one block (not a buffer per field: a request carries up to 256 links,
 * and it is built at every reconnection, in a handoff by every replica at once).
 */
function encodeLinks(links: readonly ChainLink[]): Uint8Array {
  const out = new Uint8Array(links.length * LINK_BYTES);
  const view = new DataView(out.buffer);
  let at = 0;
  const put = (value: bigint, what: string): void => {
    if (value < 0n || value > U64_MAX) {
      throw new StreamViolation("field range", `${what} ${value} does not fit in 64 bits`);
    }
    view.setBigUint64(at, value);
    at += 8;
  };
  for (const link of links) {
    put(link.minTxid, "min TXID");
    put(link.maxTxid, "max TXID");
    put(link.preApplyChecksum, "pre-apply checksum");
    put(link.postApplyChecksum, "post-apply checksum");
  }
  return out;
}

function decodeLinks(block: Uint8Array): ChainLink[] {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const links: ChainLink[] = [];
  for (let at = 0; at < block.length; at += LINK_BYTES) {
    links.push({
      minTxid: view.getBigUint64(at),
      maxTxid: view.getBigUint64(at + 8),
      preApplyChecksum: view.getBigUint64(at + 16),
      postApplyChecksum: view.getBigUint64(at + 24),
    });
  }
  return links;
}

/** Decodes and validates a whole request body. Throws StreamError ESTREAMREQUEST naming the offset. */
export function decodeStreamRequest(body: Uint8Array, limits = DEFAULT_REQUEST_LIMITS): StreamRequest {
  const fail = (detail: string, rule: string, offset: number, db?: string): never => {
    throw new StreamError("ESTREAMREQUEST", detail, { offset, rule, db });
  };
  if (body.length > limits.maxBodyBytes) {
    fail(
      `request body of ${body.length} bytes: limit ${limits.maxBodyBytes}`,
      "body limit",
      limits.maxBodyBytes,
    );
  }
  if (body.length < 8 + 4)
    fail(`request body of ${body.length} bytes is too short`, "payload layout", body.length);
  for (let i = 0; i < REQUEST_MAGIC.length; i++) {
    if (body[i] !== REQUEST_MAGIC[i]) fail("not a stream request (magic is not LFSREQ)", "magic", 0);
  }
  if (body[6] !== REQUEST_VERSION)
    fail(`request version ${body[6]}, this node speaks ${REQUEST_VERSION}`, "version", 6);
  if (body[7] !== 0) fail("reserved byte is not 0", "reserved", 7);
  const sealed = body.length - 4;
  const expected = new DataView(body.buffer, body.byteOffset + sealed, 4).getUint32(0);
  if (crc32(body.subarray(0, sealed)) !== expected) fail("request CRC-32 does not match", "checksum", sealed);

  const r = new PayloadReader(body.subarray(8, sealed));
  let db: string | undefined;
  try {
    const nodeId = r.u64("node id");
    if (nodeId === 0n) fail("node id is zero", "node id", 8);
    const epochSeen = r.u64("epoch");
    const clusterId = r.text(r.u16("cluster id length"), "cluster id");
    const clusterProblem = clusterIdProblem(clusterId);
    if (clusterProblem !== null) fail(clusterProblem, "cluster id", 24);
    const count = r.u32("database count");
    if (count > limits.maxDatabases)
      fail(`${count} databases: limit ${limits.maxDatabases}`, "database count", 8 + r.at - 4);
    const databases: ReplicaDatabase[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const at = 8 + r.at;
      db = undefined;
      const name = r.text(r.u16("name length"), "database name");
      const problem = databaseNameProblem(name);
      if (problem !== null) fail(`invalid database name: ${problem}`, "database name", at, name);
      db = name;
      if (seen.has(name)) fail("database named twice", "unique names", at, name);
      seen.add(name);
      const pos = { txid: r.u64("TXID"), checksum: r.u64("checksum") };
      const linkCount = r.u16("link count");
      if (linkCount > limits.maxLinksPerDatabase) {
        fail(`${linkCount} LTX files: limit ${limits.maxLinksPerDatabase}`, "link count", at, name);
      }
      const recent = decodeLinks(r.take(linkCount * LINK_BYTES, "LTX files"));
      try {
        checkChain({ pos, links: recent }, "replica");
      } catch (err) {
        if (!(err instanceof ChainError)) throw err;
        fail(`the database's position and LTX files disagree: ${err.message}`, "history", at, name);
      }
      databases.push({ db: name, pos, recent });
    }
    r.end();
    return { nodeId, clusterId, epochSeen, databases };
  } catch (err) {
    if (!(err instanceof StreamViolation)) throw err;
    return fail(err.message, err.rule, 8 + r.at, db);
  }
}
