// `POST /stream` on the node API (docs/protocol.md): the primary's side of replication. It checks the
// request before sending a byte (bearer token, node and cluster ids, lease epoch: stream-admission.ts),
// answers 200 with the stream (`Litefs-Id` / `Litefs-Cluster-Id` headers name the primary), and runs
// one PrimaryStream per replica until the replica goes away or the node stops. A replica that opens a
// new stream replaces its old one (END "replaced"). A node that is not the primary answers 503
// ENOTPRIMARY with the primary it knows of — except to the replica it just handed its lease to, which
// may have lost the end of its stream: that one gets a last stream as from the primary this node was,
// the catch-up and then HANDOFF (node/handoff-tail.ts says when).

import type http from "node:http";

import type { LtxWriteFormat } from "../ltx/format.js";
import { formatPos } from "../ltx/pos.js";
import type { EpochChange } from "../store/epoch-history.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { PrimaryStream } from "./primary-stream.js";
import {
  admitStreamRequest,
  checkBearerToken,
  httpStatusOf,
  type PrimaryIdentity,
} from "./stream-admission.js";
import { StreamError } from "./stream-error.js";
import { STREAM_CONTENT_TYPE } from "./stream-frame.js";
import { HEARTBEAT_INTERVAL_MS } from "./stream-backoff.js";
import {
  CLUSTER_ID_HEADER,
  decodeSnapshotWantedHeader,
  ADVERTISE_URL_HEADER,
  CANDIDATE_HEADER,
  decodeStreamRequest,
  DEFAULT_REQUEST_LIMITS,
  encodeEpochsHeader,
  EPOCHS_HEADER,
  formatNodeId,
  httpUrlOrNull,
  NODE_ID_HEADER,
  parseNodeId,
  SNAPSHOT_WANTED_HEADER,
  type StreamRequest,
} from "./stream-request.js";
import { StreamSink } from "./stream-sink.js";
import { endAfterBody } from "./request-guard.js";
import type { FrameObserver } from "./stream-encoder.js";

/** Bytes of a refused request's body read and dropped before the connection is cut. */
const REFUSED_DISCARD_BYTES = 64 << 20;

export interface StreamServerOptions {
  readonly store: Store;
  readonly locks: { snapshotRead(db: string, timeoutMs: number): Promise<() => void> };
  readonly log: StoreLogger;
  /** This node as a primary, or null while it is not one (then requests get 503). */
  readonly identity: () => PrimaryIdentity | null;
  /** Where the primary is when this node is not it (for the 503 answer). */
  readonly primaryUrl?: () => string | null;
  /**
   * While this node is not the primary: whether it owes replica `nodeId` the end of a handoff — the
   * identity it was primary under, or null — and the news that such a stream sent its HANDOFF frame.
   */
  readonly handoffTail?: {
    owedTo(nodeId: bigint): PrimaryIdentity | null;
    sent(epoch: bigint): void;
  };
  readonly authToken: string | null;
  readonly snapshotFormat: LtxWriteFormat;
  readonly heartbeatIntervalMs?: number;
  readonly snapshotLockTimeoutMs?: number;
  readonly now?: () => number;
  /** Sees every frame sent to any replica with its bytes on the wire (stream metrics). */
  readonly onFrame?: FrameObserver;
  /**
   * This node's epoch history of `db` from `fromTxid` on (epochHistoryFrom), sent in the answer's
   * EPOCHS_HEADER; absent: no header.
   */
  readonly epochLines?: (db: string, fromTxid: bigint) => readonly EpochChange[];
}

/** A connected replica, for `/status`. */
export interface ReplicaStreamStatus {
  readonly nodeId: string;
  readonly remote: string;
  readonly connectedAt: string;
  readonly ready: boolean;
  readonly bytesSent: number;
  readonly snapshotsSent: number;
  /** Its positions (`%016x/%016x`) as far as the stream knows: what it had, then what was sent. */
  readonly positions: Record<string, string>;
  /** The replica may take the lease (a handoff target). */
  readonly candidate: boolean;
  /** The replica's API URL as it told it (`Litefs-Advertise-URL`); null when it did not, or not as a URL. */
  readonly advertiseUrl: string | null;
}

interface StreamEntry {
  readonly stream: PrimaryStream;
  readonly done: Promise<void>;
  readonly candidate: boolean;
  readonly advertiseUrl: string | null;
}

export class StreamServer {
  readonly #opts: StreamServerOptions;
  readonly #streams = new Map<bigint, StreamEntry>();
  #closed = false;

  constructor(opts: StreamServerOptions) {
    this.#opts = opts;
  }

  /** EPOCHS_HEADER for the databases this node has, from where the replica stands on each. */
  #epochsHeader(request: StreamRequest): Record<string, string> {
    const epochLines = this.#opts.epochLines;
    if (epochLines === undefined) return {};
    const theirs = new Map(request.databases.map((d) => [d.db, d.pos.txid]));
    const lines = new Map<string, readonly EpochChange[]>();
    try {
      for (const db of this.#opts.store.databases()) {
        const history = epochLines(db.name, (theirs.get(db.name) ?? 0n) + 1n);
        if (history.length > 0) lines.set(db.name, history);
      }
    } catch (err) {
      this.#opts.log.warn("cannot read the epoch history for a stream", { error: (err as Error).message });
      return {};
    }
    return { [EPOCHS_HEADER]: encodeEpochsHeader(lines) };
  }

  /** Handles `POST /stream`; resolves when the stream has ended. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let identity = this.#opts.identity();
    let tail = false;
    if (identity === null && !this.#closed && this.#opts.handoffTail !== undefined) {
      const nodeId = parseNodeIdOrNull(header(req, NODE_ID_HEADER));
      identity = nodeId === null ? null : this.#opts.handoffTail.owedTo(nodeId);
      tail = identity !== null;
    }
    if (identity === null || this.#closed) {
      const primary = this.#opts.primaryUrl?.() ?? null;
      return json(res, 503, {
        error: `this node is not the primary${primary === null ? "" : `; the primary is ${primary}`}`,
        code: "ENOTPRIMARY",
        primary,
      });
    }
    let stream: PrimaryStream;
    try {
      checkBearerToken(req.headers.authorization, this.#opts.authToken);
      const request = decodeStreamRequest(await readBody(req, DEFAULT_REQUEST_LIMITS.maxBodyBytes));
      const refused = decodeSnapshotWantedHeader(header(req, SNAPSHOT_WANTED_HEADER));
      admitStreamRequest(
        { nodeId: header(req, NODE_ID_HEADER), clusterId: header(req, CLUSTER_ID_HEADER) },
        request,
        identity,
      );
      const remote = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
      res.writeHead(200, {
        "Content-Type": STREAM_CONTENT_TYPE,
        "Cache-Control": "no-store",
        [NODE_ID_HEADER]: formatNodeId(identity.nodeId),
        [CLUSTER_ID_HEADER]: identity.clusterId,
        ...this.#epochsHeader(request),
      });
      req.socket.setNoDelay(true);
      const now = this.#opts.now ?? Date.now;
      stream = new PrimaryStream(
        {
          store: this.#opts.store,
          locks: this.#opts.locks,
          log: this.#opts.log,
          identity,
          snapshotFormat: this.#opts.snapshotFormat,
          heartbeatIntervalMs: this.#opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS,
          snapshotLockTimeoutMs: this.#opts.snapshotLockTimeoutMs ?? 30_000,
          now,
        },
        request,
        new StreamSink(res, now, this.#opts.onFrame),
        remote,
        refused,
      );
    } catch (err) {
      if (!(err instanceof StreamError)) throw err;
      this.#opts.log.warn("replication stream refused", {
        code: err.code,
        error: err.message,
        remote: req.socket.remoteAddress,
      });
      return json(res, httpStatusOf(err), { error: err.message, code: err.code });
    }
    const previous = this.#streams.get(stream.replicaNodeId);
    previous?.stream.stop("replaced");
    this.#opts.log.info("replica connected", {
      replica: formatNodeId(stream.replicaNodeId),
      remote: stream.remote,
    });
    if (tail) {
      const epoch = identity.epoch;
      this.#opts.log.info(
        "the replica this node handed its lease to reconnected: sending the handoff target what it missed, then HANDOFF",
        {
          replica: formatNodeId(stream.replicaNodeId),
          epoch: epoch.toString(),
        },
      );
      stream.handOff(epoch).then(
        () => this.#opts.handoffTail?.sent(epoch),
        () => undefined, // the stream ended first: the target may ask again
      );
    }
    const done = stream.run();
    const entry: StreamEntry = {
      stream,
      done,
      candidate: header(req, CANDIDATE_HEADER) === "true",
      advertiseUrl: httpUrlOrNull(header(req, ADVERTISE_URL_HEADER)),
    };
    this.#streams.set(stream.replicaNodeId, entry);
    try {
      await done;
    } finally {
      if (this.#streams.get(stream.replicaNodeId) === entry) this.#streams.delete(stream.replicaNodeId);
      this.#opts.log.info("replica disconnected", { replica: formatNodeId(stream.replicaNodeId) });
    }
  }

  /** The connected replicas. */
  replicas(): ReplicaStreamStatus[] {
    return [...this.#streams.values()].map(({ stream, candidate, advertiseUrl }) => ({
      nodeId: formatNodeId(stream.replicaNodeId),
      remote: stream.remote,
      connectedAt: new Date(stream.connectedAtMs).toISOString(),
      ready: stream.ready,
      bytesSent: stream.bytesSent,
      snapshotsSent: stream.snapshotsSent,
      positions: Object.fromEntries([...stream.positions()].map(([db, pos]) => [db, formatPos(pos)])),
      candidate,
      advertiseUrl,
    }));
  }

  /** The open stream of replica `nodeId`, if it is connected. */
  streamOf(
    nodeId: bigint,
  ): { stream: PrimaryStream; candidate: boolean; advertiseUrl: string | null } | undefined {
    const entry = this.#streams.get(nodeId);
    if (entry === undefined) return undefined;
    return { stream: entry.stream, candidate: entry.candidate, advertiseUrl: entry.advertiseUrl };
  }

  /**
   * Ends every open stream with END `reason` (the node stopped being the primary: "lease-lost" or
   * "handed-off") without closing the server: it answers the next requests per `identity()`.
   */
  endStreams(reason: "lease-lost" | "handed-off" | "shutdown"): void {
    for (const { stream } of this.#streams.values()) stream.stop(reason);
  }

  /** Ends every stream with END "shutdown" and waits (≤ 2 s) for them to finish; refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    const done = [...this.#streams.values()].map(({ stream, done }) => {
      stream.stop("shutdown");
      return done;
    });
    await Promise.race([Promise.all(done), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }
}

function parseNodeIdOrNull(value: string | undefined): bigint | null {
  try {
    return parseNodeId(value);
  } catch {
    return null;
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads the request body, at most `limit` bytes. Past the limit it stops reading (without destroying
 * the request: the refusal must still reach the client, and json() drains what is left).
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) {
    // Refused before a byte is read: no 8 MiB buffered for nothing.
    return Promise.reject(
      new StreamError(
        "ESTREAMREQUEST",
        `request body of ${declared} bytes (Content-Length) over ${limit} bytes`,
        {
          rule: "body limit",
          offset: 0,
        },
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.off("end", onEnd);
        req.pause();
        reject(
          new StreamError("ESTREAMREQUEST", `request body over ${limit} bytes`, {
            rule: "body limit",
            offset: limit,
          }),
        );
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => resolve(Buffer.concat(chunks));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v)) + "\n";
  const headers: http.OutgoingHttpHeaders = {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  };
  if (status === 413) headers.Connection = "close";
  res.writeHead(status, headers);
  // Answer before the body is read to its end without a reset losing the answer (request-guard.ts),
  // draining further than other routes: a client that sends all of an oversized body before it reads
  // (most read as they send) still gets its answer for bodies up to REFUSED_DISCARD_BYTES.
  endAfterBody(res, text, REFUSED_DISCARD_BYTES);
}
