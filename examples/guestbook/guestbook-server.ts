// The guestbook's HTTP server (node:http, no framework):
//   GET  /          the HTML page (entries and a form)
//   POST /          a new entry from a form (application/x-www-form-urlencoded) or JSON
//                   {"name","message"}; 303 to / (body: the entry as JSON); 400 on bad input;
//                   500 "read-only replica" when this node's database cannot be written
//   GET  /entries   the entries as JSON, newest first
// Anything else: 404 (or 405 for another method on a known path).

import http from "node:http";
import type { AddressInfo } from "node:net";

import { GuestbookDb, GuestbookReadOnlyError, MESSAGE_MAX_CHARS, NAME_MAX_CHARS } from "./guestbook-db.js";
import { renderGuestbookPage } from "./guestbook-page.js";

export interface GuestbookServerOptions {
  readonly db: GuestbookDb;
  /** Shown on the page (e.g. the node's name in a cluster demo). */
  readonly nodeName?: string;
}

const BODY_MAX_BYTES = 64 * 1024;

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createGuestbookServer(opts: GuestbookServerOptions): http.Server {
  return http.createServer((req, res) => {
    handle(opts, req, res).catch((err: unknown) => {
      if (err instanceof BadRequest)
        return send(res, err.status, "text/plain; charset=utf-8", err.message + "\n");
      if (err instanceof GuestbookReadOnlyError) {
        return send(
          res,
          500,
          "text/plain; charset=utf-8",
          "read-only replica: this node cannot accept writes\n",
        );
      }
      const message = err instanceof Error ? err.message : String(err);
      send(res, 500, "text/plain; charset=utf-8", `internal error: ${message}\n`);
    });
  });
}

async function handle(
  opts: GuestbookServerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = new URL(req.url ?? "/", "http://guestbook").pathname;
  const method = req.method ?? "GET";
  const read = method === "GET" || method === "HEAD";
  if (path === "/" && read) {
    const page = renderGuestbookPage({
      entries: opts.db.list(),
      nodeName: opts.nodeName,
      writable: opts.db.writable,
    });
    return send(res, 200, "text/html; charset=utf-8", page);
  }
  if (path === "/" && method === "POST") {
    const { name, message } = parseEntry(req.headers["content-type"], await readBody(req));
    const entry = opts.db.add(name, message);
    res.setHeader("Location", "/");
    return send(res, 303, "application/json", JSON.stringify(entry) + "\n");
  }
  if (path === "/entries" && read)
    return send(res, 200, "application/json", JSON.stringify(opts.db.list()) + "\n");
  if (path === "/" || path === "/entries") {
    res.setHeader("Allow", path === "/" ? "GET, HEAD, POST" : "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", `method ${method} not allowed on ${path}\n`);
  }
  send(res, 404, "text/plain; charset=utf-8", `not found: ${path}\n`);
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_MAX_BYTES) throw new BadRequest(413, `request body larger than ${BODY_MAX_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseEntry(contentType: string | undefined, body: string): { name: string; message: string } {
  let fields: Record<string, unknown>;
  if (contentType?.startsWith("application/json") === true) {
    try {
      const parsed: unknown = JSON.parse(body);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
        throw new Error("not an object");
      fields = parsed as Record<string, unknown>;
    } catch (err) {
      throw new BadRequest(400, `body is not a JSON object: ${(err as Error).message}`);
    }
  } else {
    fields = Object.fromEntries(new URLSearchParams(body));
  }
  const name = typeof fields.name === "string" ? fields.name.trim() : "";
  const message = typeof fields.message === "string" ? fields.message.trim() : "";
  if (name.length === 0 || name.length > NAME_MAX_CHARS) {
    throw new BadRequest(400, `"name" must be 1 to ${NAME_MAX_CHARS} characters`);
  }
  if (message.length === 0 || message.length > MESSAGE_MAX_CHARS) {
    throw new BadRequest(400, `"message" must be 1 to ${MESSAGE_MAX_CHARS} characters`);
  }
  return { name, message };
}

/** Starts listening; resolves with the bound address (port 0 picks a free one). */
export async function listenGuestbook(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
