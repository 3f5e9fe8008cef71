// The HALT lock routes of the node API (docs/node-api.md "HALT lock"), served by whatever implements
// HaltService (the node: src/node/halt-node.ts). Handed to the ApiServer as extra routes, so they sit
// behind its authentication like every route.
//
//   POST   /halt?db=D[&wait=MS]          primary: take the HALT lock of D for a replica (waiting up to
//                                        MS for the holder or a local writer, default 0: fail at once).
//                                        200 {"id","db","pos","txid","expiresInMs"}; 409 EHALTBUSY
//   POST   /halt/renew?db=D&halt=ID      primary: push the expiry back. 200 as above; 409 EHALTGONE
//   DELETE /halt?db=D&halt=ID            primary: release. 200 {"released": true|false}
//   POST   /tx?db=D&halt=ID&txid=HEX     primary: body = the replica's LTX file for TXID HEX; applied as
//                                        the primary's next transaction. 200 {"pos","txid"};
//                                        409 EHALTGONE / EHALTPOS; 400 EHALTREQUEST (bad file)
//   POST   /halt/hold?db=D               any node: hold D's HALT lock for the client (`litefs run
//                                        --with-halt-lock-on`). Answers 200 with one NDJSON line
//                                        {"held":true,"db","pos"} once held, then keeps the response
//                                        open; the lock goes when the client closes the connection.
// Errors are JSON {"error","code"} with the status of halt-error.ts.

import type http from "node:http";

import { formatPos, type Pos } from "../ltx/pos.js";
import { HaltError, isHaltError } from "./halt-error.js";
import { endAfterBody } from "./request-guard.js";
import type { NodeRouteHandler } from "./server.js";

export interface HaltGrant {
  readonly id: string;
  readonly db: string;
  /** The primary's position when granted (the replica must reach it before writing). */
  readonly pos: Pos;
  readonly expiresInMs: number;
}

export interface HaltService {
  acquire(db: string, waitMs: number, holder: string): Promise<HaltGrant>;
  renew(db: string, id: string): HaltGrant;
  /** Resolves once the halt's locks are gone (false: it was not held). */
  release(db: string, id: string): Promise<boolean>;
  applyTx(db: string, id: string, txid: bigint, body: AsyncIterable<Uint8Array>): Promise<Pos>;
  /** Holds `db`'s HALT lock on this node until `release` is called (or `signal` aborts the wait). */
  hold(db: string, signal: AbortSignal): Promise<{ readonly pos: Pos; readonly release: () => void }>;
}

/** Longest wait a `POST /halt` may ask for. */
export const MAX_HALT_WAIT_MS = 60_000;

export function haltRoutes(service: HaltService): Map<string, NodeRouteHandler> {
  const guarded =
    (handler: (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void>) =>
    async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const url = new URL(req.url ?? "/", "http://node");
      try {
        await handler(req, res, url);
      } catch (err) {
        if (!req.complete) req.resume();
        answerError(res, err);
      }
    };
  return new Map<string, NodeRouteHandler>([
    [
      "POST /halt",
      guarded(async (req, res, url) => {
        req.resume();
        const waitMs = Math.min(MAX_HALT_WAIT_MS, integerParam(url, "wait", 0));
        const holder = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
        const grant = await service.acquire(dbParam(url), waitMs, holder);
        if (res.destroyed || req.socket.destroyed) {
          // The client went away (during a wait, say) and never learns the id: nobody could use or
          // release this halt, and its locks would keep the primary's writers out until it expires.
          await service.release(grant.db, grant.id);
          return;
        }
        json(res, 200, grantBody(grant));
      }),
    ],
    [
      "POST /halt/renew",
      guarded(async (req, res, url) => {
        req.resume();
        json(res, 200, grantBody(service.renew(dbParam(url), param(url, "halt"))));
        return Promise.resolve();
      }),
    ],
    [
      "DELETE /halt",
      guarded(async (req, res, url) => {
        req.resume();
        json(res, 200, { released: await service.release(dbParam(url), param(url, "halt")) });
      }),
    ],
    [
      "POST /tx",
      guarded(async (req, res, url) => {
        const txidText = param(url, "txid");
        if (!/^[0-9a-f]{1,16}$/i.test(txidText)) throw new HaltError("EHALTREQUEST", "txid must be hex");
        const pos = await service.applyTx(dbParam(url), param(url, "halt"), BigInt("0x" + txidText), req);
        json(res, 200, { pos: formatPos(pos), txid: pos.txid.toString(16).padStart(16, "0") });
      }),
    ],
    [
      "POST /halt/hold",
      guarded(async (req, res, url) => {
        req.resume();
        const db = dbParam(url);
        const gone = new AbortController();
        const onClose = (): void => gone.abort(new HaltError("EHALTGONE", "the client went away"));
        res.on("close", onClose);
        let held: { pos: Pos; release: () => void };
        try {
          held = await service.hold(db, gone.signal);
        } catch (err) {
          res.off("close", onClose);
          if (gone.signal.aborted) return;
          throw err;
        }
        res.off("close", onClose);
        if (res.destroyed) {
          held.release();
          return;
        }
        res.on("close", held.release);
        res.writeHead(200, { "Content-Type": "application/x-ndjson", "Cache-Control": "no-store" });
        res.write(JSON.stringify({ held: true, db, pos: formatPos(held.pos) }) + "\n");
      }),
    ],
  ]);
}

function grantBody(grant: HaltGrant): unknown {
  return {
    id: grant.id,
    db: grant.db,
    pos: formatPos(grant.pos),
    txid: grant.pos.txid.toString(16).padStart(16, "0"),
    expiresInMs: grant.expiresInMs,
  };
}

function param(url: URL, name: string): string {
  const value = url.searchParams.get(name);
  if (value === null || value === "") throw new HaltError("EHALTREQUEST", `the query needs ?${name}=`);
  return value;
}

function dbParam(url: URL): string {
  return param(url, "db");
}

function integerParam(url: URL, name: string, fallback: number): number {
  const text = url.searchParams.get(name);
  if (text === null || text === "") return fallback;
  if (!/^\d{1,9}$/.test(text)) throw new HaltError("EHALTREQUEST", `?${name}= must be a whole number`);
  return Number(text);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + "\n";
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  endAfterBody(res, text); // an unread request body must not reset the answer (request-guard.ts)
}

function answerError(res: http.ServerResponse, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  const status = isHaltError(err)
    ? err.status
    : code === "EDBNOTFOUND"
      ? 404
      : code === "EAPPLY" || code === "ELTX" || code === "EDBNAME"
        ? 409
        : 500;
  if (res.headersSent) {
    res.destroy(err as Error);
    return;
  }
  json(res, status, { error: (err as Error).message, code: typeof code === "string" ? code : "EINTERNAL" });
}
