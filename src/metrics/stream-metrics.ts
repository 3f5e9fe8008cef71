// Replication stream metrics, both ends. On the primary: replicas connected (LiteFS's
// `litefs_subscriber_count`) and accepted, frames and bytes sent, snapshots sent. On a replica: whether
// it is connected to the primary, reconnects, frames and bytes received, snapshots received. Either
// end: stream errors by their stable code (ESTREAMCHECKSUM, …).
//
// Label values are bounded by design: frame types and error codes are enumerations of the stream
// protocol, `db` is a managed database.

import type { Counter, CounterVec } from "./counter.js";
import type { Gauge } from "./gauge.js";
import type { Registry } from "./registry.js";

export class StreamMetrics {
  readonly #subscribers: Gauge;
  readonly #replicaConnections: Counter;
  readonly #primaryConnected: Gauge;
  readonly #reconnects: Counter;
  readonly #framesSent: CounterVec<"type">;
  readonly #framesReceived: CounterVec<"type">;
  readonly #bytesSent: Counter;
  readonly #bytesReceived: Counter;
  readonly #snapshotsSent: CounterVec<"db">;
  readonly #snapshotsReceived: CounterVec<"db">;
  readonly #errors: CounterVec<"code">;
  readonly #sentByType = new Map<string, Counter>();
  readonly #receivedByType = new Map<string, Counter>();

  constructor(registry: Registry) {
    this.#subscribers = registry.gauge({
      name: "litefs_subscriber_count",
      help: "Replicas streaming from this node now.",
    });
    this.#replicaConnections = registry.counter({
      name: "litefs_stream_replica_connections_total",
      help: "Replica streams this node has accepted.",
    });
    this.#primaryConnected = registry.gauge({
      name: "litefs_stream_primary_connected",
      help: "1 while this replica has a stream from the primary open, else 0.",
    });
    this.#reconnects = registry.counter({
      name: "litefs_stream_reconnects_total",
      help: "Times this replica connected to the primary again after a stream ended.",
    });
    this.#framesSent = registry.counterVec({
      name: "litefs_stream_frames_sent_total",
      help: "Stream frames sent to replicas, by frame type.",
      labelNames: ["type"],
    });
    this.#framesReceived = registry.counterVec({
      name: "litefs_stream_frames_received_total",
      help: "Stream frames received from the primary, by frame type.",
      labelNames: ["type"],
    });
    this.#bytesSent = registry.counter({
      name: "litefs_stream_sent_bytes_total",
      help: "Bytes of stream frames sent to replicas.",
    });
    this.#bytesReceived = registry.counter({
      name: "litefs_stream_received_bytes_total",
      help: "Bytes of stream frames received from the primary.",
    });
    this.#snapshotsSent = registry.counterVec({
      name: "litefs_stream_snapshots_sent_total",
      help: "Snapshots sent to replicas instead of incremental LTX files.",
      labelNames: ["db"],
    });
    this.#snapshotsReceived = registry.counterVec({
      name: "litefs_stream_snapshots_received_total",
      help: "Snapshots received from the primary.",
      labelNames: ["db"],
    });
    this.#errors = registry.counterVec({
      name: "litefs_stream_errors_total",
      help: "Streams ended by an error, by error code.",
      labelNames: ["code"],
    });
  }

  /** Primary: a replica's stream was accepted. Pair with `replicaDisconnected()`. */
  replicaConnected(): void {
    this.#subscribers.inc();
    this.#replicaConnections.inc();
  }

  replicaDisconnected(): void {
    this.#subscribers.dec();
  }

  /** Replica: the stream from the primary is open (true) or has ended (false). */
  setPrimaryConnected(connected: boolean): void {
    this.#primaryConnected.set(connected ? 1 : 0);
  }

  reconnect(): void {
    this.#reconnects.inc();
  }

  /** Primary: a frame of `type` ("ltx-begin", "heartbeat", …) of `bytes` bytes went out. */
  frameSent(type: string, bytes: number): void {
    counterFor(this.#sentByType, this.#framesSent, type).inc();
    this.#bytesSent.inc(bytes);
  }

  /** Replica: a frame of `type` of `bytes` bytes came in. */
  frameReceived(type: string, bytes: number): void {
    counterFor(this.#receivedByType, this.#framesReceived, type).inc();
    this.#bytesReceived.inc(bytes);
  }

  snapshotSent(db: string): void {
    this.#snapshotsSent.inc({ db });
  }

  snapshotReceived(db: string): void {
    this.#snapshotsReceived.inc({ db });
  }

  /** A stream ended with the error of this code, at either end. */
  error(code: string): void {
    this.#errors.inc({ code });
  }

  dropDatabase(db: string): void {
    this.#snapshotsSent.remove({ db });
    this.#snapshotsReceived.remove({ db });
  }
}

function counterFor(cache: Map<string, Counter>, vec: CounterVec<"type">, type: string): Counter {
  let counter = cache.get(type);
  if (counter === undefined) {
    counter = vec.labels({ type });
    cache.set(type, counter);
  }
  return counter;
}
