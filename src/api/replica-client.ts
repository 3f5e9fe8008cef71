// The replica's side of replication: connect to the primary's `POST /stream` with this node's positions
// and recent history, then apply what the stream brings, frame by frame, until it ends — and connect
// again, with backoff (stream-backoff.ts), for as long as the node runs.
//
// Every LTX file is staged (store/ltx-stager.ts: written to a temporary file and verified as it
// arrives), checked against the database's position (store/replica-apply-plan.ts), and only then
// applied — through the node's applier, which holds the locks a SQLite writer would and invalidates the
// kernel's caches (node/replica-applier.ts). Anything wrong — a frame the decoder refuses, a file that
// does not verify or does not continue the position, a silent connection, a refusal of the request —
// ends the stream with one log line saying what and where; nothing of the bad file is applied, and the
// next connection starts from the position the replica really has (typically getting a snapshot).
//
// Before a snapshot replaces a history the primary's lacks, the replica's own transactions are moved
// to the quarantine directory (store/quarantine.ts). When the primary merely cannot vouch for them
// ("unverifiable", its files are gone) and every one of them was written by that very primary, they
// are in its history by construction and nothing is quarantined.

import http from "node:http";
import https from "node:https";
import path from "node:path";

import { formatFileName } from "../ltx/file-name.js";
import { formatHex64 } from "../ltx/hex64.js";
import { formatPos, posEqual, type Pos } from "../ltx/pos.js";
import type { Database } from "../store/database.js";
import { readLtxHeaderAndTrailer } from "../store/ltx-file-reader.js";
import { listLtxFiles } from "../store/ltx-directory.js";
import { discardStaged, LtxStager, type StagedLtx } from "../store/ltx-stager.js";
import { quarantineHistory, type QuarantineResult } from "../store/quarantine.js";
import type { AppliedReplica } from "../store/replica-apply.js";
import type { ReplicaApplyPlan } from "../store/replica-apply-plan.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { reconnectDelayMs, STREAM_IDLE_TIMEOUT_MS, type StreamEnding } from "./stream-backoff.js";
import { StreamFrameDecoder } from "./stream-decoder.js";
import type { FrameObserver } from "./stream-encoder.js";
import type { LtxBeginFrame, StreamFrame } from "./stream-frame.js";
import {
  admitEpoch,
  admitLtx,
  type LtxAdmission,
  type OwnLink,
  type QuarantineRange,
} from "./stream-ltx-admission.js";
import type { EpochChange } from "../store/epoch-history.js";
import {
  CLUSTER_ID_HEADER,
  ADVERTISE_URL_HEADER,
  CANDIDATE_HEADER,
  decodeEpochsHeader,
  encodeStreamRequest,
  encodeSnapshotWantedHeader,
  EPOCHS_HEADER,
  formatNodeId,
  NODE_ID_HEADER,
  RECENT_LINKS_SENT,
  REQUEST_CONTENT_TYPE,
  SNAPSHOT_WANTED_HEADER,
} from "./stream-request.js";
import { ReplicaLag } from "./replica-lag.js";

/**
 * Stream failures every handoff and failover brings for a moment: no primary known (the lease is
 * free, or a handoff target has not taken it yet), or the node asked is not primary (not yet, or no
 * longer). Logged at info, not as errors; a warning once they last ROLE_CHANGE_WARN_MS (default of
 * `noPrimaryWarnMs`).
 */
const ROLE_CHANGE_CODES: ReadonlySet<string> = new Set(["ENOPRIMARY", "ENOTPRIMARY"]);
const ROLE_CHANGE_WARN_MS = 15_000;

/**
 * Streams that end on the same LTX file refused (it does not decode, or does not apply: ELTX…,
 * EAPPLY) before the replica asks the primary for a snapshot of that database instead of the file
 * (SNAPSHOT_WANTED_HEADER). One refusal could be a fault on the way; the same file twice is the file.
 */
const REFUSALS_BEFORE_SNAPSHOT = 2;

/** True for the errors that say an LTX file from the stream cannot be applied here, whatever the link. */
function refusesFile(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith("ELTX") || code === "EAPPLY");
}

/** What the node does with a planned transaction: lock, apply, invalidate (node/replica-applier.ts). */
export interface ReplicaApplyHooks {
  /** The position `db` will be at once what the applier has queued for it is applied. */
  plannedPos(db: Database): Pos;
  /** Checks a staged file against the state `db` will be in once its queued transactions are applied. */
  plan(db: Database, staged: StagedLtx): ReplicaApplyPlan;
  /**
   * `more`: the next transaction of the same database is at hand already — the applier may queue this
   * one (null is returned) and apply both together (`flush`). Otherwise returns the last applied.
   */
  apply(
    db: Database,
    plan: ReplicaApplyPlan,
    signal: AbortSignal,
    opts?: { more?: boolean },
  ): Promise<AppliedReplica | null>;
  /** Applies what `apply` queued (called before anything else waits); its last transaction, or null. */
  flush(signal: AbortSignal): Promise<AppliedReplica | null>;
  /** Drops what `apply` queued without applying it (the stream ended). */
  discardQueued(): void;
  /** Releases what the applier keeps open (called once the client has stopped). */
  close(): Promise<void>;
}

export interface ReplicaClientOptions {
  readonly store: Store;
  /** The primary's API URL (its advertise URL), or null while no primary is known. */
  readonly primaryUrl: () => string | null;
  /** This node's cluster id (null before it has one) and how to adopt the primary's. */
  readonly clusterId: { get(): string | null; adopt(id: string): void };
  readonly authToken: string | null;
  readonly applier: ReplicaApplyHooks;
  readonly log: StoreLogger;
  /** `<data>/quarantine`. */
  readonly quarantineDir: string;
  readonly noSync?: boolean;
  readonly idleTimeoutMs?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Called after transactions were quarantined (events, metrics). */
  readonly onQuarantine?: (db: string, result: QuarantineResult) => void;
  /** The highest lease epoch seen before this client started (persisted by the node); default 0. */
  readonly initialEpochSeen?: bigint;
  /**
   * Called for each stream's admitted EPOCH frame, and awaited before anything after it in the stream
   * is handled: the node records a raised epoch durably here (so fencing survives a restart).
   */
  readonly onEpoch?: (epoch: bigint, primaryNodeId: bigint) => void | Promise<void>;
  /** This node may take the lease (`lease.candidate`): told to the primary, which hands off only to one. */
  readonly candidate?: boolean;
  /** This node's API URL as the others reach it, told to the primary (ADVERTISE_URL_HEADER). */
  readonly advertiseUrl?: string;
  /** Called when the primary hands its lease to `toNodeId` (a HANDOFF frame; only the target gets it). */
  readonly onHandoff?: (toNodeId: bigint, fromEpoch: bigint) => void;
  /** Sees every frame received with its bytes on the wire (stream metrics). */
  readonly onFrame?: FrameObserver;
  /** How long attempts may find no primary before a warning (ROLE_CHANGE_CODES); default 15 s. */
  readonly noPrimaryWarnMs?: number;
}

/** Why a stream attempt failed, with a stable code (the primary's refusal code, or ours). */
export class ReplicaStreamError extends Error {
  override readonly name = "ReplicaStreamError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${message} (${code})`, options);
  }
}

export interface ReplicaClientStatus {
  readonly primaryUrl: string | null;
  readonly connected: boolean;
  readonly synced: boolean;
  readonly lagMs: number;
  readonly epoch: string;
  readonly lastError: string | null;
  readonly connects: number;
  readonly quarantines: number;
  /**
   * Streamed LTX files this replica refused (could not decode or apply), by database: the file's
   * TXIDs, refusals in a row, and whether a snapshot of the database is asked for instead (from the
   * second refusal on). Empty when nothing is refused.
   */
  readonly refused: readonly RefusedFileStatus[];
}

export interface RefusedFileStatus {
  readonly db: string;
  readonly minTxid: string;
  readonly maxTxid: string;
  readonly refusals: number;
  readonly snapshotWanted: boolean;
}

interface OpenFile {
  /** performance.now() at LTX_BEGIN. */
  readonly startedMs: number;
  readonly begin: LtxBeginFrame;
  readonly db: Database;
  readonly admission: LtxAdmission;
  readonly stager: LtxStager;
}

export class ReplicaClient {
  /** Resolves when the first stream reached READY (every database caught up once). */
  readonly synced: Promise<void>;
  readonly #opts: ReplicaClientOptions;
  readonly #lag: ReplicaLag;
  readonly #stop = new AbortController();
  #resolveSynced!: () => void;
  #isSynced = false;
  #running: Promise<void> | undefined;
  /** The primary URL of the stream open now (null while none is: not connected). */
  #connectedUrl: string | null = null;
  /** performance.now() when the connection attempt under way began; null while none is. */
  #attemptStartedAt: number | null = null;
  #epochSeen: bigint;
  /** The epoch of the stream open now (0 between streams). */
  #streamEpoch = 0n;
  /** The primary's epoch history per database, from its answer (EPOCHS_HEADER); undefined: none sent. */
  #streamEpochLines: Map<string, EpochChange[]> | undefined = undefined;
  #primaryNodeId = 0n;
  /** Aborts the current stream (or the wait before the next) without stopping the client. */
  #current = new AbortController();
  #lastError: string | null = null;
  #connects = 0;
  #quarantines = 0;
  #open: OpenFile | null = null;
  /** The LTX file being received that this replica has already (admission "present"), if any. */
  #present: LtxBeginFrame | null = null;
  #presentSkipped = 0;
  #ending: StreamEnding = { kind: "failure" };
  #readyThisStream = false;
  /** The file the stream open now failed on, refused (refusesFile); null while none was. */
  #refusedNow: { db: string; minTxid: bigint; maxTxid: bigint } | null = null;
  /**
   * Per database, the file refused at the end of the latest streams and how many in a row; from
   * REFUSALS_BEFORE_SNAPSHOT on, a snapshot is asked for instead (until one has applied).
   */
  readonly #refusals = new Map<string, { minTxid: bigint; maxTxid: bigint; count: number }>();

  constructor(opts: ReplicaClientOptions) {
    this.#opts = opts;
    this.#epochSeen = opts.initialEpochSeen ?? 0n;
    this.#lag = new ReplicaLag(opts.now ?? Date.now);
    this.synced = new Promise((resolve) => (this.#resolveSynced = resolve));
  }

  /** Starts connecting (and reconnecting) in the background. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stops: the current stream is dropped (a file being staged is discarded) and no new one opens. */
  async stop(): Promise<void> {
    this.#stop.abort(new ReplicaStreamError("ESTOPPED", "the replica is stopping"));
    await this.#running;
    await this.#opts.applier.close();
  }

  /**
   * Drops the current stream (or cuts the wait before the next attempt short) and connects again at
   * once, to `primaryUrl()` as it is then: the node calls it when the primary changed.
   */
  reconnect(): void {
    this.#current.abort(new ReplicaStreamError("ERECONNECT", "the primary changed; reconnecting"));
  }

  /**
   * Milliseconds since the connection attempt under way began (its request is out, no answer yet);
   * null while none is (connected, or waiting before the next attempt).
   */
  attemptAgeMs(): number | null {
    return this.#attemptStartedAt === null ? null : performance.now() - this.#attemptStartedAt;
  }

  /**
   * The primary URL the stream open now goes to, null while none is. It can differ from the URL the
   * client would connect to next (`primaryUrl`): a stream outlives a "no holder" news until it ends.
   */
  get connectedUrl(): string | null {
    return this.#connectedUrl;
  }

  /** The lease epoch of the stream open now; 0 while none is open. */
  get streamEpoch(): bigint {
    return this.#streamEpoch;
  }

  /**
   * The epoch history of `db` the primary of the stream open now sent (from where this replica stood),
   * undefined when none is open or its primary sent none. A database it has but sent no line for was
   * created under the stream's epoch: [] then.
   */
  streamEpochLines(db: string): readonly EpochChange[] | undefined {
    if (this.#streamEpoch === 0n || this.#streamEpochLines === undefined) return undefined;
    return this.#streamEpochLines.get(db) ?? [];
  }

  /** LTX files the streams brought that this replica had already (its own HALT transactions). */
  get presentSkipped(): number {
    return this.#presentSkipped;
  }

  /** The highest lease epoch this replica has seen. */
  get epochSeen(): bigint {
    return this.#epochSeen;
  }

  /** Milliseconds this replica is behind the primary (lag.ts). */
  lagMs(): number {
    return this.#lag.lagMs(this.#connectedUrl !== null);
  }

  status(): ReplicaClientStatus {
    return {
      primaryUrl: this.#opts.primaryUrl(),
      connected: this.#connectedUrl !== null,
      synced: this.#isSynced,
      lagMs: this.lagMs(),
      epoch: this.#epochSeen.toString(),
      lastError: this.#lastError,
      connects: this.#connects,
      quarantines: this.#quarantines,
      refused: [...this.#refusals].map(([db, r]) => ({
        db,
        minTxid: formatHex64(r.minTxid),
        maxTxid: formatHex64(r.maxTxid),
        refusals: r.count,
        snapshotWanted: r.count >= REFUSALS_BEFORE_SNAPSHOT,
      })),
    };
  }

  async #loop(): Promise<void> {
    const { log } = this.#opts;
    const random = this.#opts.random ?? Math.random;
    let failures = 0;
    /** Since when the attempts have found no primary (ROLE_CHANGE_CODES); null while they have. */
    let waitingSince: number | null = null;
    let waitWarned = false;
    let connectsBefore = this.#connects;
    const stopSignal = this.#stop.signal;
    while (!stopSignal.aborted) {
      if (this.#current.signal.aborted) this.#current = new AbortController();
      const signal = AbortSignal.any([stopSignal, this.#current.signal]);
      this.#ending = { kind: "failure" };
      if (this.#connects !== connectsBefore) {
        connectsBefore = this.#connects;
        waitingSince = null; // a stream was up since: a new wait for a primary starts from here
        waitWarned = false;
      }
      this.#readyThisStream = false;
      this.#attemptStartedAt = performance.now();
      try {
        await this.#stream(signal);
      } catch (err) {
        if (stopSignal.aborted) break;
        if (this.#current.signal.aborted) {
          // reconnect(): not a failure, go again at once (the finally below resets the stream's state).
          failures = 0;
          continue;
        }
        const message = (err as Error).message;
        const code = (err as { code?: string }).code;
        // The same failure again (the primary is down, say) is logged once, not at every attempt.
        const fields = { primary: this.#opts.primaryUrl(), code, error: message };
        if (code !== undefined && ROLE_CHANGE_CODES.has(code)) {
          // Every handoff and failover passes through these: info while it may be one, a warning
          // once it lasts longer than one should (ROLE_CHANGE_WARN_MS).
          waitingSince ??= performance.now();
          const waitedMs = Math.round(performance.now() - waitingSince);
          if (message !== this.#lastError) log.info("no primary to stream from yet; waiting", fields);
          else if (!waitWarned && waitedMs >= (this.#opts.noPrimaryWarnMs ?? ROLE_CHANGE_WARN_MS)) {
            log.warn("still no primary to stream from", { ...fields, waitedMs });
            waitWarned = true;
          } else log.debug("replication stream failed again", fields);
        } else if (message !== this.#lastError) {
          log.error("replication stream ended with an error; reconnecting", fields);
        } else log.debug("replication stream failed again", fields);
        this.#lastError = message;
        this.#countRefusal();
      } finally {
        this.#refusedNow = null;
        this.#attemptStartedAt = null;
        this.#connectedUrl = null;
        this.#streamEpoch = 0n;
        this.#abortOpenFile();
      }
      failures = this.#readyThisStream ? 1 : failures + 1;
      const delay = reconnectDelayMs(this.#ending, failures, random());
      await sleep(delay, signal);
    }
  }

  /** One stream: request, then frames until END/ERROR or a failure (thrown). */
  async #stream(signal: AbortSignal): Promise<void> {
    const { store, log } = this.#opts;
    const url = this.#opts.primaryUrl();
    if (url === null) throw new ReplicaStreamError("ENOPRIMARY", "no primary is known");
    const clusterId = this.#opts.clusterId.get();
    const body = encodeStreamRequest({
      nodeId: store.nodeId,
      clusterId: clusterId ?? "",
      epochSeen: this.#epochSeen,
      databases: store.databases().map((db) => ({
        db: db.name,
        pos: db.pos,
        recent: db.recentHistory(RECENT_LINKS_SENT),
      })),
    });
    const headers: Record<string, string> = {
      "Content-Type": REQUEST_CONTENT_TYPE,
      [NODE_ID_HEADER]: formatNodeId(store.nodeId),
      [CLUSTER_ID_HEADER]: clusterId ?? "",
      [CANDIDATE_HEADER]: this.#opts.candidate === true ? "true" : "false",
    };
    if (this.#opts.advertiseUrl !== undefined) headers[ADVERTISE_URL_HEADER] = this.#opts.advertiseUrl;
    if (this.#opts.authToken !== null) headers.Authorization = `Bearer ${this.#opts.authToken}`;
    const wanted = new Map<string, bigint>();
    for (const [name, r] of this.#refusals)
      if (r.count >= REFUSALS_BEFORE_SNAPSHOT) wanted.set(name, r.minTxid);
    if (wanted.size > 0) headers[SNAPSHOT_WANTED_HEADER] = encodeSnapshotWantedHeader(wanted);
    const res = await post(new URL("/stream", url), body, headers, signal);
    if (res.statusCode !== 200) throw await refusal(res, url);
    this.#streamEpochLines = decodeEpochsHeader(headerValue(res, EPOCHS_HEADER));
    const theirs = headerValue(res, CLUSTER_ID_HEADER);
    if (theirs === undefined || theirs === "") {
      res.destroy();
      throw new ReplicaStreamError("ESTREAMCLUSTER", `primary ${url} sent no ${CLUSTER_ID_HEADER}`);
    }
    if (clusterId !== null && theirs !== clusterId) {
      res.destroy();
      throw new ReplicaStreamError(
        "ESTREAMCLUSTER",
        `primary ${url} belongs to cluster ${theirs}, this node to ${clusterId}: refusing to mix clusters`,
      );
    }
    if (clusterId === null) {
      this.#opts.clusterId.adopt(theirs);
      log.info("adopted the primary's cluster id", { clusterId: theirs });
    }
    res.socket.setNoDelay(true);
    this.#connectedUrl = url;
    this.#attemptStartedAt = null;
    this.#lastError = null;
    this.#connects++;
    log.info("connected to the primary", { primary: url });

    const decoder = new StreamFrameDecoder({}, this.#opts.onFrame);
    const chunks = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const idleMs = this.#opts.idleTimeoutMs ?? STREAM_IDLE_TIMEOUT_MS;
    try {
      for (;;) {
        const next = await nextWithin(chunks, idleMs, url);
        if (next.done === true) break;
        const frames = decoder.push(next.value);
        for (let i = 0; i < frames.length; i++) {
          // Frames other than an LTX file's must see every transaction before them finished.
          if (!LTX_FRAME_TYPES.has(frames[i].type)) await this.#flush(signal);
          await this.#onFrame(frames[i], signal, nextFileComplete(frames, i));
        }
        await this.#flush(signal); // before waiting for the socket
        if (decoder.ended) break;
      }
      decoder.finish();
    } finally {
      res.destroy();
      // Received but not applied (the stream failed in the middle of a read): sent again next time.
      this.#opts.applier.discardQueued();
    }
  }

  /** Applies what the applier queued; the lag hears of the last transaction applied. */
  async #flush(signal: AbortSignal): Promise<void> {
    const applied = await this.#opts.applier.flush(signal);
    if (applied !== null) this.#lag.applied(applied.timestamp);
  }

  /** `more`: the frame ends an LTX file and the next file is whole among the frames read with it. */
  async #onFrame(frame: StreamFrame, signal: AbortSignal, more = false): Promise<void> {
    const { store, log } = this.#opts;
    switch (frame.type) {
      case "epoch":
        admitEpoch(frame, this.#epochSeen);
        await this.#opts.onEpoch?.(frame.epoch, frame.primaryNodeId);
        if (frame.epoch > this.#epochSeen) this.#epochSeen = frame.epoch;
        // A raised epoch mid-stream: the history sent at the start does not know it.
        if (this.#streamEpoch !== 0n && frame.epoch !== this.#streamEpoch) this.#streamEpochLines = undefined;
        this.#streamEpoch = frame.epoch;
        this.#primaryNodeId = frame.primaryNodeId;
        return;
      case "ltx-begin": {
        const existing = store.db(frame.db);
        const pos = existing === undefined ? null : this.#opts.applier.plannedPos(existing);
        const admission = admitLtx(frame, pos, (min, max) =>
          existing === undefined ? null : ownLink(existing, min, max),
        );
        if (admission.kind === "present") {
          // Our own HALT transaction coming back from the primary: nothing to apply.
          this.#present = frame;
          log.debug("the stream brings a transaction this replica has: skipped", {
            db: frame.db,
            minTxid: frame.minTxid.toString(16),
            maxTxid: frame.maxTxid.toString(16),
          });
          return;
        }
        const db = existing ?? store.replicaDatabase(frame.db);
        const stager = new LtxStager(db.dir, db.name, { minTxid: frame.minTxid, maxTxid: frame.maxTxid });
        this.#open = { startedMs: performance.now(), begin: frame, db, admission, stager };
        this.#lag.receiving();
        return;
      }
      case "ltx-chunk":
        if (this.#present !== null) return; // the decoder checked the bytes against LTX_BEGIN
        try {
          this.#open!.stager.push(frame.data);
        } catch (err) {
          throw this.#noteRefused(err, this.#open!.begin);
        }
        return;
      case "ltx-end":
        if (this.#present !== null) {
          this.#present = null;
          this.#presentSkipped++;
          return;
        }
        return this.#applyOpenFile(signal, more);
      case "ready":
        this.#readyThisStream = true;
        // Caught up past a refused file without a snapshot (the primary planned none): nothing to ask.
        for (const [name, refused] of this.#refusals) {
          if ((store.db(name)?.pos.txid ?? 0n) >= refused.maxTxid) this.#refusals.delete(name);
        }
        if (!this.#isSynced) {
          this.#isSynced = true;
          this.#resolveSynced();
        }
        log.info("replica in sync with the primary", {
          primary: this.#opts.primaryUrl(),
          dbs: store.databases().length,
        });
        return;
      case "heartbeat":
        this.#lag.heartbeat(
          frame.timeMs,
          frame.positions.every(({ db, pos }) => {
            const mine = store.db(db);
            return mine !== undefined && posEqual(mine.pos, pos);
          }),
        );
        return;
      case "hwm":
        return;
      case "handoff":
        if (frame.toNodeId === store.nodeId) {
          log.info("the primary hands its lease to this node", { fromEpoch: frame.fromEpoch.toString() });
          this.#opts.onHandoff?.(frame.toNodeId, frame.fromEpoch);
        }
        return;
      case "end":
        this.#ending = { kind: "end", reason: frame.reason };
        log.info("the primary ended the stream", { reason: frame.reason });
        return;
      case "error":
        throw new ReplicaStreamError(
          frame.code,
          `the primary ended the stream with an error: ${frame.message}`,
        );
    }
  }

  async #applyOpenFile(signal: AbortSignal, more: boolean): Promise<void> {
    const open = this.#open!;
    this.#open = null;
    const { db, begin, admission } = open;
    let staged: StagedLtx;
    try {
      // Written behind while the run goes on; the run's last file is written by the persist.
      staged = open.stager.finish({ writeBehind: more });
    } catch (err) {
      throw this.#noteRefused(err, begin);
    }
    try {
      const plan = this.#opts.applier.plan(db, staged);
      if (admission.kind === "snapshot" && admission.quarantine !== null) {
        await this.#flush(signal); // what is queued goes first: the quarantine moves files aside
        this.#quarantine(db, admission.quarantine, begin);
      }
      const applied = await this.#opts.applier.apply(db, plan, signal, { more });
      if (applied === null) return; // queued: applied with the next, or at the flush
      this.#lag.applied(applied.timestamp);
      if (applied.snapshot) {
        this.#refusals.delete(db.name);
        this.#opts.log.info("snapshot applied", {
          db: db.name,
          pos: formatPos(applied.pos),
          pages: applied.pages,
          bytes: applied.pages * staged.header.pageSize,
          ltxBytes: staged.size,
          reason: begin.snapshot?.reason,
          replacedFiles: applied.supersededFiles,
          ms: Math.round(performance.now() - open.startedMs),
        });
      }
    } catch (err) {
      discardStaged(staged);
      throw this.#noteRefused(err, begin);
    }
  }

  /** Remembers that the stream failed on `begin`'s file because of the file itself; returns `err`. */
  #noteRefused(err: unknown, begin: LtxBeginFrame): unknown {
    if (refusesFile((err as { code?: string }).code)) {
      this.#refusedNow = { db: begin.db, minTxid: begin.minTxid, maxTxid: begin.maxTxid };
    }
    return err;
  }

  /**
   * After a failed stream: counts a refusal of the same file in a row, and past
   * REFUSALS_BEFORE_SNAPSHOT asks for that database as a snapshot at the next connection.
   */
  #countRefusal(): void {
    const refused = this.#refusedNow;
    if (refused === null) return;
    const previous = this.#refusals.get(refused.db);
    if (previous !== undefined && previous.count >= REFUSALS_BEFORE_SNAPSHOT) {
      previous.count++; // a snapshot is asked for already (this refusal may be of the snapshot itself)
      return;
    }
    const count = previous?.minTxid === refused.minTxid ? previous.count + 1 : 1;
    this.#refusals.set(refused.db, { ...refused, count });
    if (count < REFUSALS_BEFORE_SNAPSHOT) return;
    this.#opts.log.warn(
      "the primary's LTX file was refused again: asking for a snapshot of the database instead",
      {
        db: refused.db,
        minTxid: formatHex64(refused.minTxid),
        maxTxid: formatHex64(refused.maxTxid),
        refusals: count,
        error: this.#lastError,
      },
    );
  }

  #quarantine(db: Database, range: QuarantineRange, begin: LtxBeginFrame): void {
    const { log } = this.#opts;
    if (range.verdict === "unverifiable" && writtenOnlyBy(db, range, this.#primaryNodeId)) {
      log.info("history not verifiable by the primary, but written by it: nothing to quarantine", {
        db: db.name,
        fromTxid: range.fromTxid.toString(16),
        toTxid: range.toTxid.toString(16),
      });
      return;
    }
    const result = quarantineHistory(db, this.#opts.quarantineDir, {
      fromTxid: range.fromTxid,
      toTxid: range.toTxid,
      verdict: range.verdict,
      reason: `${begin.snapshot?.reason ?? "snapshot"} (${range.verdict})`,
      primary: this.#opts.primaryUrl() ?? "",
      nowMs: (this.#opts.now ?? Date.now)(),
      noSync: this.#opts.noSync,
    });
    this.#quarantines++;
    log.warn("quarantined transactions the primary's history does not have", {
      db: db.name,
      verdict: range.verdict,
      fromTxid: range.fromTxid.toString(16).padStart(16, "0"),
      toTxid: range.toTxid.toString(16).padStart(16, "0"),
      files: result.files.length,
      snapshot: result.snapshotFile,
      dir: result.dir,
    });
    this.#opts.onQuarantine?.(db.name, result);
  }

  #abortOpenFile(): void {
    this.#open?.stager.abort();
    this.#open = null;
    this.#present = null;
  }
}

/** This replica's own LTX file for exactly TXIDs min..max, as an OwnLink; null when it has none. */
function ownLink(db: Database, minTxid: bigint, maxTxid: bigint): OwnLink | null {
  try {
    const { header, trailer } = readLtxHeaderAndTrailer(
      path.join(db.dir.ltxDir, formatFileName(minTxid, maxTxid)),
    );
    return {
      minTxid: header.minTxid,
      maxTxid: header.maxTxid,
      preApplyChecksum: header.preApplyChecksum,
      postApplyChecksum: trailer.postApplyChecksum,
    };
  } catch {
    return null; // no such file (or unreadable): not known to be present
  }
}

/**
 * True when the LTX files of `db` cover TXIDs from..to without a gap and every one was written by the
 * node `nodeId` (a replica's files keep the primary's node id in their header).
 */
function writtenOnlyBy(db: Database, range: QuarantineRange, nodeId: bigint): boolean {
  if (nodeId === 0n) return false;
  let next = range.fromTxid;
  for (const file of listLtxFiles(db.dir.ltxDir)) {
    if (file.maxTxid < range.fromTxid) continue;
    if (file.minTxid > next) return false;
    try {
      if (readLtxHeaderAndTrailer(file.path).header.nodeId !== nodeId) return false;
    } catch {
      return false;
    }
    next = file.maxTxid + 1n;
    if (next > range.toTxid) return true;
  }
  return false;
}

/**
 * How much of a stream the replica reads ahead of its applies (the response's and the socket's buffer).
 * Each read takes everything buffered, and one apply run takes every whole file of a read (up to its
 * own limits), so this bounds how far a run can grow when the replica is behind. With Node's default
 * (16 KiB; a read then held ~80 KiB) the runs of test/replication/batch-apply's few-page files stayed
 * at 14–18 files however far behind the replica was, each run paying its fsyncs and lock round.
 */
const STREAM_READ_AHEAD_BYTES = 4 << 20;

function post(
  url: URL,
  body: Uint8Array,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<http.IncomingMessage> {
  const request = url.protocol === "https:" ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      // `highWaterMark`: Node 20 applies it to both the socket and the response (checked); it is
      // missing from @types/node's RequestOptions.
      {
        method: "POST",
        headers: { ...headers, "Content-Length": String(body.length) },
        signal,
        highWaterMark: STREAM_READ_AHEAD_BYTES,
      } as http.RequestOptions,
      resolve,
    );
    req.once("error", reject);
    req.setNoDelay(true);
    req.end(body);
  });
}

async function refusal(res: http.IncomingMessage, url: string): Promise<ReplicaStreamError> {
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    if (chunks.length > 64) break;
  }
  const text = Buffer.concat(chunks).toString("utf8").slice(0, 2000);
  try {
    const parsed = JSON.parse(text) as { code?: string; error?: string };
    return new ReplicaStreamError(
      parsed.code ?? `EHTTP${res.statusCode}`,
      `${url} refused the stream (HTTP ${res.statusCode}): ${parsed.error ?? text}`,
    );
  } catch {
    return new ReplicaStreamError(
      `EHTTP${res.statusCode}`,
      `${url} refused the stream (HTTP ${res.statusCode}): ${text}`,
    );
  }
}

function headerValue(res: http.IncomingMessage, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The iterator's next chunk, or ESTREAMIDLE when nothing arrives within `ms`. */
async function nextWithin(
  chunks: AsyncIterator<Buffer>,
  ms: number,
  url: string,
): Promise<IteratorResult<Buffer>> {
  let timer: NodeJS.Timeout | undefined;
  // The verdict waits one turn of the event loop past the timer (setImmediate runs after the poll
  // phase): a process that was stopped or stalled longer than `ms` (SIGSTOP, a long pause) finds its
  // timer due before it has read what the socket holds — the primary's heartbeats, waiting there.
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      setImmediate(() =>
        reject(new ReplicaStreamError("ESTREAMIDLE", `nothing from ${url} for ${ms} ms (no heartbeat)`)),
      );
    }, ms);
  });
  try {
    return await Promise.race([chunks.next(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

const LTX_FRAME_TYPES: ReadonlySet<string> = new Set(["ltx-begin", "ltx-chunk", "ltx-end"]);

/** True when `frames[i]` ends an LTX file and the frames right after it hold the next file whole. */
function nextFileComplete(frames: readonly StreamFrame[], i: number): boolean {
  const begin = frames[i + 1];
  if (begin === undefined || begin.type !== "ltx-begin") return false;
  const end = frames[i];
  if (end.type !== "ltx-end") return false;
  for (let j = i + 2; j < frames.length; j++) {
    const frame = frames[j];
    if (frame.type === "ltx-end") return true;
    if (frame.type !== "ltx-chunk") return false;
  }
  return false;
}
