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
// Errors are JSON {"error", "code"} with 400 (bad request, query or file; EDBNAME, EQUERY, EBADURL,
// EIMPORT), 404 (no database, no route), 405 (a known path, another method; with Allow), 408 (a body
// that stopped arriving), 409 (the database stayed busy), 413 (an upload larger than the free space),
// 415 (an import body declared as something else than a database file), 500 otherwise — and a 500 is
// never the answer to client garbage (request-guard.ts; test/api/endpoint-fuzz.test.ts). An import is
// checked before the database is touched, so a refused one leaves nothing behind.
//
// Import and export need the mount's locks (no SQLite connection may be inside the database while it
// is replaced; no writer may commit while it is copied): the node passes a DatabaseLockGuard.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";

import { formatPos } from "../ltx/pos.js";
import { importDatabaseFile, validateImportFile } from "../store/database-import.js";
import { databaseNameProblem } from "../store/database-name.js";
import { isStoreError, StoreError, type StoreErrorCode } from "../store/store-error.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { NodeAuthenticator } from "./auth.js";
import { drainedOrGone } from "./drained-or-gone.js";
import {
  ApiRequestError,
  BODY_IDLE_TIMEOUT_MS,
  checkQuery,
  endAfterBody,
  guardBodyProgress,
  installClientErrorAnswers,
  parseRequestUrl,
  SERVER_TIMEOUTS,
} from "./request-guard.js";
import type { StreamServer } from "./stream-server.js";

/**
 * Locks of a database held on behalf of the node, released by calling the returned function: its
 * promise settles (never rejects) once they are gone — awaited before a client is answered, so that
 * its next statement cannot find them (kernel-locks mode releases asynchronously).
 */
export interface DatabaseLockGuard {
  /** Every lock a writer and a checkpointer could take: for replacing the database. */
  exclusive(db: string, timeoutMs: number): Promise<() => Promise<void>>;
  /** Enough to stop new write transactions and checkpoints, letting readers go on: for copying. */
  writeBarrier(db: string, timeoutMs: number): Promise<() => Promise<void>>;
  /** What a reader holds plus CKPT: committed bytes stay as they are (a snapshot for a replica). */
  snapshotRead(db: string, timeoutMs: number): Promise<() => Promise<void>>;
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
  /** How long a request body may stop arriving before the request is refused (408; request-guard.ts). */
  readonly bodyIdleTimeoutMs?: number;
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
    this.#server = http.createServer(SERVER_TIMEOUTS, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(req, res, err));
    });
    installClientErrorAnswers(this.#server);
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
    if (!this.#auth.admit(req, res)) return;
    guardBodyProgress(req, res, this.#opts.bodyIdleTimeoutMs ?? BODY_IDLE_TIMEOUT_MS);
    const url = parseRequestUrl(req.url);
    const route = `${req.method} ${url.pathname}`;
    const query = BUILT_IN_QUERY.get(route);
    if (query !== undefined) checkQuery(url, route, query);
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
    const allowed = this.#methodsOf(url.pathname);
    if (allowed.length > 0) {
      throw new ApiRequestError(
        405,
        "EMETHOD",
        `${String(req.method).slice(0, 32)} is not allowed on ${url.pathname}; use ${allowed.join(" or ")}`,
        { Allow: allowed.join(", ") },
      );
    }
    throw new ApiRequestError(404, "ENOROUTE", `no route ${route.slice(0, 200)}`);
  }

  /** The methods served on `path` (built-in routes and `extraRoutes`). */
  #methodsOf(path: string): string[] {
    const routes = [...BUILT_IN_QUERY.keys(), ...(this.#opts.extraRoutes?.keys() ?? [])];
    return routes.filter((route) => route.endsWith(` ${path}`)).map((route) => route.split(" ")[0]);
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

  /**
   * Everything about an upload that can be refused is refused before the database is touched: the
   * name, the content type and a declared size larger than the free space before a byte is stored; a
   * body that fills the disk (413), and a file that is not a whole SQLite database (400), before the
   * database is created — a refused import leaves no trace.
   */
  async #import(req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    const store = this.#opts.store;
    checkImportRequest(req);
    const tmpDir = path.join(store.dataDir.root, "tmp");
    fs.mkdirSync(tmpDir, { recursive: true });
    const declared = Number(req.headers["content-length"] ?? "0");
    const free = freeBytes(tmpDir);
    if (declared > free) {
      throw new ApiRequestError(
        413,
        "ETOOLARGE",
        `the upload of ${declared} bytes is larger than the ${free} bytes free in the data directory`,
        { Connection: "close" },
      );
    }
    const temp = path.join(
      tmpDir,
      `import-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.tmp`,
    );
    try {
      try {
        await receiveBody(req, temp);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
        throw new ApiRequestError(
          413,
          "ETOOLARGE",
          "the upload is larger than the free space in the data directory",
          {
            Connection: "close",
          },
        );
      }
      validateImportFile(temp, name);
      const started = performance.now();
      const db = store.createDatabase(name);
      const release = await this.#opts.locks.exclusive(name, this.#opts.lockTimeoutMs ?? 30_000);
      try {
        await importDatabaseFile(db, temp);
      } finally {
        await release();
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
    res.once("close", () => {
      if (!res.writableFinished) this.#opts.log.info("export ended: the client went away", { db: name });
    });
    const release = await this.#opts.locks.writeBarrier(name, this.#opts.lockTimeoutMs ?? 30_000);
    // Every exit releases (the release is idempotent). The barrier goes once the last page is read and
    // before its bytes leave: a client that has the whole copy may write at once (kernel-locks mode
    // releases asynchronously). The client may have gone away while the barrier was being taken: its
    // "close" already fired, and "drain" would never come.
    try {
      if (res.destroyed) throw new Error("client went away before the export started");
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
        if (first + n > pageCount) {
          await release();
          res.end(chunk);
        } else if (!res.write(chunk)) {
          await drainedOrGone(res, () => new Error("client went away during export"));
        }
      }
    } finally {
      await release();
    }
  }

  /** Answers `body` as JSON; an unread request body is read and dropped first (endAfterBody). */
  #json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body) + "\n";
    res.writeHead(status, {
      ...headers,
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
    });
    endAfterBody(res, text);
  }

  #fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    if (err instanceof ApiRequestError) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.#json(res, err.status, { error: err.message, code: err.code }, err.headers);
      return;
    }
    if (res.destroyed || req.socket.destroyed) {
      // The client went away (or a guard cut it off): nobody is left to answer, and nothing failed here.
      this.#opts.log.info("API request ended early: the connection closed", {
        method: req.method,
        path: (req.url ?? "").split("?")[0].slice(0, 200),
        error: (err as Error).message,
      });
      res.destroy();
      return;
    }
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

/** The query parameters each built-in route takes (any other, or one given twice, is a 400). */
const BUILT_IN_QUERY: ReadonlyMap<string, readonly string[]> = new Map([
  ["GET /info", []],
  ["GET /status", []],
  ["GET /pos", []],
  ["POST /stream", []],
  ["POST /import", ["name"]],
  ["GET /export", ["name"]],
]);

/** Content types an import body may be declared as (or none). */
const IMPORT_CONTENT_TYPES = ["application/vnd.sqlite3", "application/x-sqlite3", "application/octet-stream"];

function requiredName(url: URL): string {
  const name = url.searchParams.get("name");
  if (name === null || name === "") {
    throw new StoreError("EDBNAME", "the query needs ?name=DB");
  }
  const problem = databaseNameProblem(name);
  if (problem !== null) {
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
    throw new StoreError("EDBNAME", `invalid database name ${shown}: ${problem}`);
  }
  return name;
}

/** Throws 415 for a body declared as something other than a database file. */
function checkImportRequest(req: http.IncomingMessage): void {
  const type = req.headers["content-type"];
  if (type === undefined) return;
  const mediaType = type.split(";")[0].trim().toLowerCase();
  if (!IMPORT_CONTENT_TYPES.includes(mediaType)) {
    throw new ApiRequestError(
      415,
      "ECONTENTTYPE",
      `an import body is a SQLite database file (${IMPORT_CONTENT_TYPES.join(", ")}), not ${JSON.stringify(type.slice(0, 100))}`,
      { Connection: "close" },
    );
  }
}

/**
 * Writes `req`'s body to `file`. Unlike pipeline(), a failing file (ENOSPC) leaves the request open,
 * so that the refusal can still be answered. Rejects when the client goes away before the end.
 */
function receiveBody(req: http.IncomingMessage, file: string): Promise<void> {
  const out = fs.createWriteStream(file);
  return new Promise<void>((resolve, reject) => {
    // Rejects only once the file is closed: the stream opens it asynchronously, and an open still
    // pending when the caller removes the file would create it again afterwards (a refused import
    // leaving a file behind).
    const fail = (err: Error): void => {
      req.unpipe(out);
      if (out.closed) {
        reject(err);
        return;
      }
      out.once("close", () => reject(err));
      out.destroy();
    };
    out.once("error", fail);
    out.once("close", () => {
      if (out.writableFinished) resolve();
    });
    req.once("error", fail);
    // The socket too: once an answer went out (a guard's 408), node no longer closes the request.
    const gone = (): void => {
      if (!req.complete) fail(new Error("the connection closed before the end of the body"));
    };
    req.once("close", gone);
    req.socket.once("close", gone);
    req.pipe(out);
  });
}

function freeBytes(dir: string): number {
  const stats = fs.statfsSync(dir);
  return stats.bavail * stats.bsize;
}
