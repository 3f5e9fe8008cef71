// What a running node tells the outside about itself: its Prometheus metrics (`GET /metrics`, LiteFS's
// names, src/metrics/litefs-metrics.ts) and its events (`GET /events`, NDJSON, events.ts), both on the
// node API and fed from the same places:
//
//   - the store's commit subscription: every transaction committed here (journal, WAL, delete, import)
//     or applied from the primary (replication) → `litefs_db_txid`, commit count / LTX applied, LTX
//     files and bytes, commit duration or lag, and one `tx` event;
//   - the mount's writes (a hook the node passes to the file system) → the per-file-kind write counts;
//   - the replica client's quarantines → quarantine metrics and a `quarantine` event;
//   - role changes → `litefs_is_primary` and a `primaryChange` event.
//
// Stream frames, bytes, snapshots and ERROR codes are counted as they pass (the stream server's and
// the replica client's `onFrame` hooks call streamFrameSent / streamFrameReceived). Sampled at each
// scrape instead: the database count, `litefs_is_primary`, every database's TXID, the lag
// (`litefs_lag_seconds`, read from the replica's state), the replicas streaming from this primary now
// (`litefs_subscriber_count`; `litefs_stream_replica_connections_total` then grows by the increases seen
// between scrapes, so streams that came and went between two scrapes are missed), whether a replica's
// stream is open, and its reconnects (exact: the client counts its connections).
//
// LTX files on disk are counted at start; commits and applies add to the count, retention subtracts
// what it removed (`ltxRetired`), and a database whose files were moved or removed otherwise
// (quarantine, a replicated snapshot) is counted again. (Before session 9 every file was listed and
// stat'ed again at each retention interval: a stall of the request thread that grows with the files
// retention keeps — ~1 s per 100,000 files.)
//
// Commit duration: from the LTX header's timestamp, taken as the store starts writing the file, to the
// commit event, emitted once the file is durable and the position moved.

import fs from "node:fs";
import type http from "node:http";

import type { WireFrame } from "../api/stream-frame.js";
import { handleMetricsRequest, LitefsMetrics, Registry } from "../metrics/index.js";
import type { CommitEvent } from "../store/commit-event.js";
import { listLtxFiles } from "../store/ltx-directory.js";
import type { QuarantineResult } from "../store/quarantine.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { EventBus, handleEventsRequest, txEventFromCommit, type BroadcastEvent } from "./events.js";

/** A route handler for the node API's `extraRoutes` (keyed "METHOD /path"). */
export type ObservabilityRoute = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
) => void | Promise<void>;

/** What a replica's stream client says about its connection, sampled at each scrape. */
export interface ReplicaStreamSample {
  readonly connected: boolean;
  /** Connections made to the primary since start (successful or not). */
  readonly connects: number;
}

export interface NodeObservabilityOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  readonly isPrimary: boolean;
  /** The primary's hostname (this node's own when primary); "" when unknown. */
  readonly primaryHostname: string;
  /** Milliseconds this node is behind the primary (0 on the primary); read at each scrape. */
  readonly lagMs: () => number;
  /** Replicas streaming from this node now; absent or null: not a primary. */
  readonly subscriberCount?: () => number | null;
  /** The replica's stream state; absent or null: not a replica. */
  readonly replicaStream?: () => ReplicaStreamSample | null;
  /** Clock in ms since the epoch (default Date.now): commit duration and replication lag. */
  readonly now?: () => number;
}

export class NodeObservability {
  readonly registry: Registry;
  readonly metrics: LitefsMetrics;
  readonly bus: EventBus;
  readonly #opts: NodeObservabilityOptions;
  readonly #now: () => number;
  readonly #unsubscribe: () => void;
  #isPrimary: boolean;
  #subscribersSeen = 0;
  #connectsSeen = 0;
  #closed = false;

  constructor(opts: NodeObservabilityOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#isPrimary = opts.isPrimary;
    this.registry = new Registry();
    this.metrics = new LitefsMetrics(this.registry);
    this.metrics.setPrimary(opts.isPrimary);
    this.metrics.setLagSource(() => Math.max(0, opts.lagMs()) / 1000);
    this.bus = new EventBus({ log: opts.log, isPrimary: opts.isPrimary, hostname: opts.primaryHostname });
    for (const db of opts.store.databases()) this.countLtxFiles(db.name);
    const unsubscribeCommits = opts.store.subscribe((event) => this.#onCommit(event));
    const unsubscribeRewrites = opts.store.onLtxFilesRewritten((db) => this.countLtxFiles(db));
    this.#unsubscribe = () => {
      unsubscribeCommits();
      unsubscribeRewrites();
    };
  }

  /** `GET /metrics` (and HEAD) and `GET /events`, for the node API. */
  routes(): ReadonlyMap<string, ObservabilityRoute> {
    const metrics: ObservabilityRoute = (req, res) => {
      this.sample();
      handleMetricsRequest(req, res, this.registry);
    };
    return new Map<string, ObservabilityRoute>([
      ["GET /metrics", metrics],
      ["HEAD /metrics", metrics],
      ["GET /events", (req, res) => handleEventsRequest(req, res, this.bus).then(() => undefined)],
    ]);
  }

  /** The mount wrote to a database's file of `kind` (the `-shm` index is not counted). */
  countWrite(db: string, kind: string): void {
    switch (kind) {
      case "database":
        return this.metrics.databaseWrite(db);
      case "journal":
        return this.metrics.journalWrite(db);
      case "wal":
        return this.metrics.walWrite(db);
    }
  }

  /**
   * Primary: a stream frame went out to a replica (`StreamServerOptions.onFrame`): frames and bytes
   * by type, snapshots by database, and the error code of an ERROR frame.
   */
  streamFrameSent(frame: WireFrame, bytes: number): void {
    const stream = this.metrics.stream;
    stream.frameSent(frame.type, bytes);
    if (frame.type === "ltx-begin" && frame.snapshot !== null) stream.snapshotSent(frame.db);
    else if (frame.type === "error") stream.error(frame.code);
  }

  /** Replica: a stream frame came in from the primary (`ReplicaClientOptions.onFrame`). */
  streamFrameReceived(frame: WireFrame, bytes: number): void {
    const stream = this.metrics.stream;
    stream.frameReceived(frame.type, bytes);
    if (frame.type === "ltx-begin" && frame.snapshot !== null) stream.snapshotReceived(frame.db);
    else if (frame.type === "error") stream.error(frame.code);
  }

  /** A replica moved diverged transactions of `db` to quarantine. */
  quarantined(db: string, result: QuarantineResult): void {
    const count = result.toTxid >= result.fromTxid ? Number(result.toTxid - result.fromTxid + 1n) : 0;
    this.metrics.quarantined(db, count);
    this.#publish({
      type: "quarantine",
      db,
      file: result.dir,
      reason: `TXIDs ${result.fromTxid}..${result.toTxid} diverged from the primary's history`,
    });
  }

  /** The node's role or the primary changed: `litefs_is_primary` and a `primaryChange` event. */
  primaryChanged(isPrimary: boolean, primaryHostname: string): void {
    this.#isPrimary = isPrimary;
    this.metrics.setPrimary(isPrimary);
    this.#publish({ type: "primaryChange", isPrimary, hostname: primaryHostname });
  }

  /** Counts `db`'s LTX files and their bytes on disk (replaces the running totals). */
  countLtxFiles(db: string): void {
    const database = this.#opts.store.db(db);
    if (database === undefined) return;
    let count = 0;
    let bytes = 0;
    try {
      for (const file of listLtxFiles(database.dir.ltxDir)) {
        const st = fs.statSync(file.path, { throwIfNoEntry: false });
        if (st === undefined) continue; // removed by retention meanwhile
        count++;
        bytes += st.size;
      }
    } catch (err) {
      this.#opts.log.warn("cannot count LTX files for metrics", { db, error: (err as Error).message });
      return;
    }
    this.metrics.setLtxFiles(db, count, bytes);
  }

  /** Retention removed `files` LTX files (`bytes` in all) of `db`. */
  ltxRetired(db: string, files: number, bytes: number): void {
    this.metrics.ltxRetired(db, files, bytes);
  }

  /** Brings the sampled metrics up to date (called at each scrape). */
  sample(): void {
    const dbs = this.#opts.store.databases();
    this.metrics.setDatabaseCount(dbs.length);
    for (const db of dbs) this.metrics.setTxid(db.name, db.pos.txid);
    this.metrics.setPrimary(this.#isPrimary);
    const subscribers = this.#opts.subscriberCount?.() ?? null;
    if (subscribers !== null) {
      for (; this.#subscribersSeen < subscribers; this.#subscribersSeen++)
        this.metrics.stream.replicaConnected();
      for (; this.#subscribersSeen > subscribers; this.#subscribersSeen--)
        this.metrics.stream.replicaDisconnected();
    }
    const replica = this.#opts.replicaStream?.() ?? null;
    if (replica !== null) {
      this.metrics.stream.setPrimaryConnected(replica.connected);
      // The first connection is not a reconnect.
      const reconnects = Math.max(0, replica.connects - 1);
      for (; this.#connectsSeen < reconnects; this.#connectsSeen++) this.metrics.stream.reconnect();
    }
  }

  /** Ends every `/events` response cleanly and stops following the store; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.bus.close();
  }

  #onCommit(event: CommitEvent): void {
    const elapsedMs = Math.max(0, this.#now() - event.timestamp);
    this.metrics.setTxid(event.db, event.pos.txid);
    if (event.source === "replication") this.metrics.ltxApplied(event.db, event.ltxBytes, elapsedMs);
    else this.metrics.commit(event.db, event.ltxBytes, elapsedMs);
    this.#publish(txEventFromCommit(event));
  }

  #publish(event: BroadcastEvent): void {
    if (this.#closed) return;
    try {
      this.bus.publish(event);
    } catch (err) {
      this.#opts.log.error("cannot publish an event", { type: event.type, error: (err as Error).message });
    }
  }
}
