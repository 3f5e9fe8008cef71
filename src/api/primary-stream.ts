// One replica's stream on the primary, from the first frame to the last:
//
//   EPOCH → catch-up of every database (missing LTX files, or a snapshot — catchup-plan.ts decides)
//   → READY → live: each committed transaction's LTX file as the store commits it, HEARTBEAT when
//   nothing else was sent for a heartbeat interval → END when the primary stops (or ERROR).
//
// The store is subscribed to before the catch-up is planned, so no commit falls between the two:
// commits during the catch-up queue up and go out after it, skipped when the catch-up already covered
// them. A commit that does not continue what this stream sent last (its file was missed, the queue
// overflowed behind a slow replica, retention removed a file before it went out) makes the stream plan
// that database's catch-up again from what it sent — which may mean a snapshot.
//
// Snapshots are encoded from the database file while the node holds a reader's locks (plus CKPT), so
// they are consistent at one position and never held in memory (snapshot-sender.ts).

import fs from "node:fs";

import type { LtxWriteFormat } from "../ltx/format.js";
import { decodeHeader, HEADER_SIZE } from "../ltx/header.js";
import { formatPos, posEqual, type Pos } from "../ltx/pos.js";
import { decodeTrailer, TRAILER_SIZE } from "../ltx/trailer.js";
import { planCatchUp, type CatchUpPlan } from "../store/catchup-plan.js";
import type { CommitEvent } from "../store/commit-event.js";
import type { Database } from "../store/database.js";
import type { ChainLink } from "../store/divergence.js";
import { listLtxFiles } from "../store/ltx-directory.js";
import { readLtxHeaderAndTrailer } from "../store/ltx-file-reader.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { RECENT_LINKS_KEPT } from "../store/transaction-log.js";
import { sendSnapshot } from "./snapshot-sender.js";
import type { PrimaryIdentity } from "./stream-admission.js";
import type { EndReason, SnapshotInfo, WireFrame } from "./stream-frame.js";
import type { ReplicaDatabase, StreamRequest } from "./stream-request.js";
import type { StreamSink } from "./stream-sink.js";

/** Commits queued beyond this many make the stream re-plan instead (a replica far behind). */
const MAX_QUEUED_COMMITS = 4096;
/** Bytes read from an LTX file per chunk sent. */
const FILE_CHUNK_BYTES = 256 * 1024;

export interface PrimaryStreamContext {
  readonly store: Store;
  readonly locks: { snapshotRead(db: string, timeoutMs: number): Promise<() => void> };
  readonly log: StoreLogger;
  readonly identity: PrimaryIdentity;
  /** LTX format of snapshots this primary encodes. */
  readonly snapshotFormat: LtxWriteFormat;
  readonly heartbeatIntervalMs: number;
  /** How long a snapshot waits for the database's reader locks. */
  readonly snapshotLockTimeoutMs: number;
  readonly now: () => number;
}

interface PrimaryFile extends ChainLink {
  readonly path: string;
}

export class PrimaryStream {
  readonly replicaNodeId: bigint;
  readonly remote: string;
  readonly connectedAtMs: number;
  readonly #ctx: PrimaryStreamContext;
  readonly #request: StreamRequest;
  readonly #sink: StreamSink;
  /** Where each database stands on the replica as far as this stream knows: what it sent last. */
  readonly #sent = new Map<string, Pos>();
  #queue: CommitEvent[] = [];
  readonly #replan = new Set<string>();
  #wake: (() => void) | null = null;
  #stopped = false;
  #endReason: EndReason | null = null;
  #ready = false;
  #snapshots = 0;
  /** A handoff to this stream's replica, waiting to go out after what is queued. */
  #handoff: { fromEpoch: bigint; sent: () => void; failed: (err: Error) => void } | null = null;
  /** Per database, the first TXID of a file of ours the replica refused (SNAPSHOT_WANTED_HEADER). */
  readonly #refused: ReadonlyMap<string, bigint>;

  constructor(
    ctx: PrimaryStreamContext,
    request: StreamRequest,
    sink: StreamSink,
    remote: string,
    refused: ReadonlyMap<string, bigint> = new Map(),
  ) {
    this.#ctx = ctx;
    this.#request = request;
    this.#refused = refused;
    this.#sink = sink;
    this.replicaNodeId = request.nodeId;
    this.remote = remote;
    this.connectedAtMs = ctx.now();
    for (const { db, pos } of request.databases) this.#sent.set(db, pos);
  }

  get ready(): boolean {
    return this.#ready;
  }

  get bytesSent(): number {
    return this.#sink.bytes;
  }

  get snapshotsSent(): number {
    return this.#snapshots;
  }

  /** The replica's positions as far as this stream knows (its own at connect, then what was sent). */
  positions(): Map<string, Pos> {
    return new Map(this.#sent);
  }

  /**
   * True when everything this primary has committed has been sent on this stream: READY was sent,
   * nothing is queued, and every database's sent position equals the primary's.
   */
  caughtUp(): boolean {
    if (!this.#ready || this.#stopped || this.#queue.length > 0 || this.#replan.size > 0) return false;
    return this.#ctx.store.databases().every((db) => {
      const sent = this.#sent.get(db.name);
      return db.pos.txid === 0n
        ? sent === undefined || sent.txid === 0n
        : sent !== undefined && posEqual(sent, db.pos);
    });
  }

  /**
   * Sends HANDOFF (this replica is to take the lease) after everything queued, then ends the stream
   * with END "handed-off". Resolves once the frame was written; rejects if the stream ends first.
   */
  handOff(fromEpoch: bigint): Promise<void> {
    if (this.#stopped) return Promise.reject(new Error("the stream has ended; cannot hand off on it"));
    return new Promise<void>((sent, failed) => {
      this.#handoff = { fromEpoch, sent, failed };
      this.#wake?.();
    });
  }

  /** Ends the stream after the frame being sent: END with `reason`. */
  stop(reason: EndReason): void {
    this.#endReason ??= reason;
    this.#stopped = true;
    this.#wake?.();
  }

  /** Runs the stream until it is stopped or the replica goes away. Never rejects. */
  async run(): Promise<void> {
    const { store, log } = this.#ctx;
    const unsubscribe = store.subscribe((event) => this.#onCommit(event));
    try {
      await this.#sink.send({
        type: "epoch",
        epoch: this.#ctx.identity.epoch,
        primaryNodeId: this.#ctx.identity.nodeId,
      });
      const known = new Map<string, ReplicaDatabase>(this.#request.databases.map((d) => [d.db, d]));
      for (const db of store.databases()) {
        if (this.#stopped) break;
        const replica = known.get(db.name);
        await this.#catchUp(db.name, replica?.pos ?? null, replica?.recent ?? [], this.#refused.get(db.name));
      }
      if (!this.#stopped) {
        await this.#sink.send({ type: "ready" });
        this.#ready = true;
        log.info("replica caught up", { replica: this.#replicaName(), remote: this.remote });
      }
      while (!this.#stopped && !this.#sink.closed) {
        await this.#liveStep();
        if (this.#handoff !== null && this.#queue.length === 0 && this.#replan.size === 0) {
          const handoff = this.#handoff;
          this.#handoff = null;
          await this.#sink.send({
            type: "handoff",
            toNodeId: this.replicaNodeId,
            fromEpoch: handoff.fromEpoch,
          });
          handoff.sent();
          this.stop("handed-off");
        }
      }
      await this.#sink.finish({ type: "end", reason: this.#endReason ?? "shutdown" });
    } catch (err) {
      if ((err as { code?: string }).code === "ESTREAMCLOSED") return;
      log.error("replication stream failed", {
        replica: this.#replicaName(),
        error: (err as Error).message,
      });
      const code = (err as { code?: unknown }).code;
      await this.#sink.finish({
        type: "error",
        code: typeof code === "string" && /^[A-Z][A-Z0-9_]{0,31}$/.test(code) ? code : "ESTREAMPRIMARY",
        message: (err as Error).message.slice(0, 1000),
      });
    } finally {
      unsubscribe();
      this.#stopped = true;
      this.#handoff?.failed(new Error("the stream ended before the handoff was sent"));
      this.#handoff = null;
    }
  }

  #onCommit(event: CommitEvent): void {
    if (this.#stopped) return;
    if (this.#queue.length >= MAX_QUEUED_COMMITS) {
      for (const queued of this.#queue) this.#replan.add(queued.db);
      this.#replan.add(event.db);
      this.#queue = [];
    } else {
      this.#queue.push(event);
    }
    this.#wake?.();
  }

  /** Sends what is queued, or waits for a commit or the heartbeat interval and sends a heartbeat. */
  async #liveStep(): Promise<void> {
    if (this.#queue.length === 0 && this.#replan.size === 0) {
      if (this.#handoff !== null) return; // run() sends it now
      const idleMs = this.#ctx.heartbeatIntervalMs - (this.#ctx.now() - this.#sink.lastWriteMs);
      if (idleMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, idleMs);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = null;
        return;
      }
      await this.#sink.send({
        type: "heartbeat",
        timeMs: this.#ctx.now(),
        positions: this.#primaryPositions(),
      });
      return;
    }
    const events = this.#queue;
    this.#queue = [];
    for (const event of events) {
      if (this.#stopped) return;
      if (this.#replan.has(event.db)) continue;
      const sent = this.#sent.get(event.db);
      if (sent !== undefined && event.pos.txid <= sent.txid) continue; // the catch-up covered it
      const follows = sent === undefined ? event.prevPos.txid === 0n : posEqual(sent, event.prevPos);
      const pos = follows ? await this.#sendFile(event.db, event.ltxPath) : null;
      if (pos === null) this.#replan.add(event.db);
    }
    for (const db of [...this.#replan]) {
      if (this.#stopped) return;
      this.#replan.delete(db);
      await this.#catchUp(db, this.#sent.get(db) ?? null, []);
    }
  }

  /**
   * Plans and sends the catch-up of `name` for a replica at `replica` (null: does not have it) that
   * refused our file starting at `refused`, if it says so.
   */
  async #catchUp(
    name: string,
    replica: Pos | null,
    replicaLinks: readonly ChainLink[],
    refused?: bigint,
  ): Promise<void> {
    const db = this.#ctx.store.db(name);
    if (db === undefined) return;
    const lowest = replicaLinks.length > 0 ? replicaLinks[0].minTxid - 1n : (replica?.txid ?? 0n);
    const primary = db.pos;
    const plan: CatchUpPlan<PrimaryFile> = planCatchUp({
      replica,
      replicaLinks,
      primary,
      primaryFiles: replica === null || replica.txid === 0n ? [] : primaryFilesFrom(db, lowest),
      replicaRefused: refused,
    });
    switch (plan.kind) {
      case "none":
        if (replica !== null) this.#sent.set(name, replica);
        return;
      case "stream":
        for (const file of plan.files) {
          const pos = await this.#sendFile(name, file.path);
          if (pos === null) {
            // Retention removed it meanwhile: plan again from what went out (a snapshot, probably).
            return this.#catchUp(name, this.#sent.get(name) ?? replica, []);
          }
        }
        return;
      case "snapshot": {
        const info: SnapshotInfo =
          plan.history === null
            ? { reason: plan.reason, verdict: "shared", common: null }
            : { reason: plan.reason, verdict: plan.history.verdict, common: plan.history.common };
        if (plan.refused !== undefined) {
          // The file is ours and is what it was when the replica read it: damaged on this disk, or a
          // reading the replica gets wrong. Either way it will not apply there; the snapshot will.
          this.#ctx.log.warn(
            "a replica refused one of this node's LTX files twice: sending a snapshot instead",
            {
              db: name,
              replica: this.#replicaName(),
              file: plan.refused.path,
              hint: "check the file with `litefs ltx verify` (or compare it with the replicas' copies)",
            },
          );
        }
        this.#ctx.log.info("sending a snapshot", {
          db: name,
          replica: this.#replicaName(),
          reason: plan.reason,
          detail: plan.detail,
          verdict: info.verdict,
        });
        await this.#sendSnapshot(name, info);
        return;
      }
    }
  }

  async #sendSnapshot(name: string, info: SnapshotInfo): Promise<void> {
    const { store, locks, log } = this.#ctx;
    const started = performance.now();
    const release = await this.#withHeartbeats(locks.snapshotRead(name, this.#ctx.snapshotLockTimeoutMs));
    try {
      const db = store.db(name);
      if (db === undefined) return;
      const view = db.snapshotView();
      const { pos, bytes } = await sendSnapshot(this.#sink, {
        db: name,
        view,
        info,
        format: this.#ctx.snapshotFormat,
        nodeId: this.#ctx.identity.nodeId,
        nowMs: this.#ctx.now(),
      });
      this.#sent.set(name, pos);
      this.#snapshots++;
      log.info("snapshot sent", {
        db: name,
        replica: this.#replicaName(),
        pos: formatPos(pos),
        pages: view.pageCount,
        bytes,
        ms: Math.round(performance.now() - started),
      });
    } finally {
      release();
    }
  }

  /**
   * Waits for `work` while sending a HEARTBEAT every interval, so that the replica does not take a
   * long wait (a snapshot waiting for a writer's locks) for a dead primary.
   */
  async #withHeartbeats<T>(work: Promise<T>): Promise<T> {
    let sending = Promise.resolve();
    const timer = setInterval(() => {
      sending = sending
        .then(() =>
          this.#sink.send({
            type: "heartbeat",
            timeMs: this.#ctx.now(),
            positions: this.#primaryPositions(),
          }),
        )
        .catch(() => undefined); // a closed stream shows up at the next real send
    }, this.#ctx.heartbeatIntervalMs);
    try {
      return await work;
    } finally {
      clearInterval(timer);
      await sending;
    }
  }

  /**
   * Sends the LTX file at `file` as it is on disk. Returns the position it brings the replica to, or
   * null when the file is gone (retention) — then nothing was sent.
   */
  async #sendFile(name: string, file: string): Promise<Pos | null> {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    try {
      const size = fs.fstatSync(fd).size;
      const head = readAt(fd, 0, Math.min(size, FILE_CHUNK_BYTES));
      const header = decodeHeader(head.subarray(0, HEADER_SIZE), file);
      const trailer = decodeTrailer(readAt(fd, size - TRAILER_SIZE, TRAILER_SIZE));
      const snapshot: SnapshotInfo | null =
        header.minTxid === 1n ? { reason: "new", verdict: "shared", common: null } : null;
      const begin: WireFrame = {
        type: "ltx-begin",
        db: name,
        minTxid: header.minTxid,
        maxTxid: header.maxTxid,
        preApplyChecksum: header.preApplyChecksum,
        postApplyChecksum: trailer.postApplyChecksum,
        size,
        snapshot,
      };
      if (head.length === size) {
        await this.#sink.ltxFile(begin, head); // read whole: one write
      } else {
        await this.#sink.send(begin);
        await this.#sink.ltxData(head);
        for (let at = head.length; at < size; at += FILE_CHUNK_BYTES) {
          await this.#sink.ltxData(readAt(fd, at, Math.min(FILE_CHUNK_BYTES, size - at)));
        }
        await this.#sink.ltxEnd();
      }
      const pos = { txid: header.maxTxid, checksum: trailer.postApplyChecksum };
      this.#sent.set(name, pos);
      return pos;
    } finally {
      fs.closeSync(fd);
    }
  }

  #primaryPositions(): { db: string; pos: Pos }[] {
    return this.#ctx.store.databases().map((db) => ({ db: db.name, pos: db.pos }));
  }

  #replicaName(): string {
    return this.replicaNodeId.toString(16).padStart(16, "0");
  }
}

/**
 * The primary's LTX files whose TXIDs reach `fromTxid` or beyond, with their checksums: from the chain
 * the database keeps in memory when it reaches back that far (the usual case: a replica reports at
 * most RECENT_LINKS_SENT links), else from the files.
 */
function primaryFilesFrom(db: Database, fromTxid: bigint): PrimaryFile[] {
  const links = db.recentHistory(RECENT_LINKS_KEPT);
  if (links.length > 0 && links[0].minTxid <= (fromTxid > 1n ? fromTxid : 1n)) {
    const dir = db.dir;
    // The path is named only for the files the plan streams (usually none or a few of ~256).
    return links
      .filter((l) => l.maxTxid >= fromTxid)
      .map((l) => ({
        ...l,
        get path(): string {
          return dir.ltxFile(l.minTxid, l.maxTxid);
        },
      }));
  }
  const out: PrimaryFile[] = [];
  for (const file of listLtxFiles(db.dir.ltxDir)) {
    if (file.maxTxid < fromTxid) continue;
    try {
      const { header, trailer } = readLtxHeaderAndTrailer(file.path);
      out.push({
        path: file.path,
        minTxid: header.minTxid,
        maxTxid: header.maxTxid,
        preApplyChecksum: header.preApplyChecksum,
        postApplyChecksum: trailer.postApplyChecksum,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // retention, just now
      throw err;
    }
  }
  return out;
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new Error(`LTX file ended at ${position + done} of ${position + length} bytes`);
    done += n;
  }
  return buf;
}
