// The node's HTTP API (node:http):
//   GET  /info              {"nodeId", "isPrimary", "dbs": {name: {txid, checksum, pos, pageSize, pageCount, walMode}}}
//   GET  /pos               {name: "%016x/%016x"}
//   GET  /status            the node's role, primary, databases with positions, lag, and on a primary the
//                           connected replicas with their positions (`litefs status` prints it)
//   POST /stream            replication (stream-server.ts, docs/protocol.md); 503 on a replica
//   POST /import?name=DB    body: a SQLite database file; streamed to a temporary file in the data
//                           directory (never held in memory), validated, and committed through the
//                           store as ONE LTX file holding every page. 200 {"name","pos","txid"}.
//   GET  /export?name=DB    a consistent copy of the database at one position (header Litefs-Pos),
//                           streamed page batch by page batch while new write transactions wait.
// Import is refused on a replica (503 ENOTPRIMARY): its databases change only by replication.
// With `authToken` set, every request (any route, known or not) needs `Authorization: Bearer <token>`,
// else 401 before any handler runs (auth.ts). `extraRoutes` adds routes served by other layers
// (`GET /metrics`, `GET /events` from the node), and `info` adds fields to `GET /info` (`proxyURL`).
// Errors are JSON {"error", "code"} with 400 (bad request or file), 404 (no database), 409 (the
// database stayed busy), 500 otherwise.
//
// Import and export need the mount's locks (no SQLite connection may be inside the database while it
// is replaced; no writer may commit while it is copied): the node passes a DatabaseLockGuard.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { AddressInfo } from "node:net";

import { formatPos } from "../ltx/pos.js";
import { importDatabaseFile } from "../store/database-import.js";
import { isStoreError, StoreError, type StoreErrorCode } from "../store/store-error.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { NodeAuthenticator } from "./auth.js";
import type { StreamServer } from "./stream-server.js";

/** Locks of a database held on behalf of the node (released by calling the returned function). */
export interface DatabaseLockGuard {
  /** Every lock a writer and a checkpointer could take: for replacing the database. */
  exclusive(db: string, timeoutMs: number): Promise<() => void>;
  /** Enough to stop new write transactions and checkpoints, letting readers go on: for copying. */
  writeBarrier(db: string, timeoutMs: number): Promise<() => void>;
  /** What a reader holds plus CKPT: committed bytes stay as they are (a snapshot for a replica). */
  snapshotRead(db: string, timeoutMs: number): Promise<() => void>;
}

export interface ApiServerOptions {
  readonly store: Store;
  readonly locks: DatabaseLockGuard;
  readonly log: StoreLogger;
  /** How long import/export wait for the database's locks. */
  readonly lockTimeoutMs?: number;
  /** True while this node is the primary (default: always). */
  readonly isPrimary?: () => boolean;
  /** Replication (`POST /stream`); absent: the route answers 404. */
  readonly stream?: StreamServer;
  /** The body of `GET /status`; absent: built from /info alone. */
  readonly status?: () => unknown;
  /** Required as `Authorization: Bearer <token>` on every route when set (auth.ts). */
  readonly authToken?: string | null;
  /** More routes, keyed "METHOD /path" (e.g. "GET /metrics"); the built-in routes win. */
  readonly extraRoutes?: ReadonlyMap<string, NodeRouteHandler>;
  /** Fields added to the body of `GET /info` (e.g. `proxyURL`). */
  readonly info?: () => Record<string, unknown>;
}

/** A route served by another layer; may answer asynchronously (a rejection answers 500). */
export type NodeRouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

const PAGES_PER_EXPORT_CHUNK = 256;

export class ApiServer {
  readonly #opts: ApiServerOptions;
  readonly #server: http.Server;
  readonly #auth: NodeAuthenticator;

  constructor(opts: ApiServerOptions) {
    this.#opts = opts;
    this.#auth = new NodeAuthenticator(opts.authToken ?? null, opts.log);
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host === "" ? undefined : host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    await this.#opts.stream?.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://node");
    const route = `${req.method} ${url.pathname}`;
    if (!this.#auth.admit(req, res)) return;
    switch (route) {
      case "GET /info":
        return this.#json(res, 200, this.#info());
      case "GET /status":
        return this.#json(res, 200, this.#opts.status?.() ?? this.#info());
      case "POST /stream":
        if (this.#opts.stream === undefined) break;
        return this.#opts.stream.handle(req, res);
      case "GET /pos":
        return this.#json(
          res,
          200,
          Object.fromEntries(this.#opts.store.databases().map((db) => [db.name, formatPos(db.pos)])),
        );
      case "POST /import":
        if (!this.#isPrimary()) {
          req.resume();
          return this.#json(res, 503, {
            error: "this node is a replica: import on the primary",
            code: "ENOTPRIMARY",
          });
        }
        return this.#import(req, res, requiredName(url));
      case "GET /export":
        return this.#export(res, requiredName(url));
    }
    const extra = this.#opts.extraRoutes?.get(route);
    if (extra !== undefined) return extra(req, res);
    req.resume();
    return this.#json(res, 404, { error: `no route ${route}`, code: "ENOROUTE" });
  }

  #isPrimary(): boolean {
    return this.#opts.isPrimary?.() ?? true;
  }

  #info(): unknown {
    const store = this.#opts.store;
    const dbs: Record<string, unknown> = {};
    for (const db of store.databases()) {
      dbs[db.name] = {
        txid: db.pos.txid.toString(16).padStart(16, "0"),
        checksum: db.pos.checksum.toString(16).padStart(16, "0"),
        pos: formatPos(db.pos),
        pageSize: db.pageSize,
        pageCount: db.pageCount,
        walMode: db.walMode,
      };
    }
    return {
      nodeId: store.nodeId.toString(16).padStart(16, "0"),
      isPrimary: this.#isPrimary(),
      dbs,
      ...this.#opts.info?.(),
    };
  }

  async #import(req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    const store = this.#opts.store;
    const tmpDir = path.join(store.dataDir.root, "tmp");
    fs.mkdirSync(tmpDir, { recursive: true });
    const temp = path.join(
      tmpDir,
      `import-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.tmp`,
    );
    try {
      await pipeline(req, fs.createWriteStream(temp));
      const started = performance.now();
      const db = store.createDatabase(name);
      const release = await this.#opts.locks.exclusive(name, this.#opts.lockTimeoutMs ?? 30_000);
      try {
        await importDatabaseFile(db, temp);
      } finally {
        release();
      }
      this.#opts.log.info("database imported", {
        db: name,
        pos: formatPos(db.pos),
        pages: db.pageCount,
        ms: Math.round(performance.now() - started),
      });
      this.#json(res, 200, {
        name,
        pos: formatPos(db.pos),
        txid: db.pos.txid.toString(16).padStart(16, "0"),
      });
    } finally {
      fs.rmSync(temp, { force: true });
    }
  }

  async #export(res: http.ServerResponse, name: string): Promise<void> {
    const db = this.#opts.store.mustDb(name);
    const release = await this.#opts.locks.writeBarrier(name, this.#opts.lockTimeoutMs ?? 30_000);
    try {
      const pageSize = db.pageSize;
      const pageCount = db.pageCount;
      if (pageCount === 0) throw new StoreError("EDBNOTFOUND", "database has no pages", { db: name });
      res.writeHead(200, {
        "Content-Type": "application/vnd.sqlite3",
        "Content-Length": String(pageCount * pageSize),
        "Litefs-Pos": formatPos(db.pos),
      });
      for (let first = 1; first <= pageCount; first += PAGES_PER_EXPORT_CHUNK) {
        const n = Math.min(PAGES_PER_EXPORT_CHUNK, pageCount - first + 1);
        const chunk = Buffer.alloc(n * pageSize);
        for (let i = 0; i < n; i++) chunk.set(db.readCommittedPage(first + i), i * pageSize);
        if (!res.write(chunk)) {
          await new Promise<void>((resolve, reject) => {
            res.once("drain", resolve);
            res.once("close", () => reject(new Error("client went away during export")));
          });
        }
      }
      res.end();
    } finally {
      release();
    }
  }

  #json(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body) + "\n";
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  }

  #fail(res: http.ServerResponse, err: unknown): void {
    const status = isStoreError(err) ? (STATUS_OF_CODE[err.code] ?? 500) : isLockTimeout(err) ? 409 : 500;
    const code = isStoreError(err) ? err.code : ((err as { code?: string }).code ?? "EINTERNAL");
    if (status === 500) this.#opts.log.error("API request failed", { error: (err as Error).message });
    if (res.headersSent) {
      res.destroy(err as Error);
      return;
    }
    this.#json(res, status, { error: (err as Error).message, code });
  }
}

const STATUS_OF_CODE: Partial<Record<StoreErrorCode, number>> = {
  EDBNOTFOUND: 404,
  EDBNAME: 400,
  EIMPORT: 400,
  EDBFILE: 400,
};

function isLockTimeout(err: unknown): boolean {
  return (err as { code?: string }).code === "ELOCKTIMEOUT";
}

function requiredName(url: URL): string {
  const name = url.searchParams.get("name");
  if (name === null || name === "") {
    throw new StoreError("EDBNAME", "the query needs ?name=DB");
  }
  return name;
}
