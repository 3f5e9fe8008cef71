// A replica's HTTP calls to the primary's HALT routes (src/api/halt-routes.ts), with the node's token.
// Every failure is a HaltError: the primary's own code when it answered one, EHALTPRIMARY otherwise.

import { haltErrorFromWire, HaltError } from "../api/halt-error.js";
import type { HaltGrant } from "../api/halt-routes.js";
import { parsePos, type Pos } from "../ltx/pos.js";
import { httpRequest, type HttpAnswer } from "../net/http-request.js";

export interface HaltClientOptions {
  /** The primary's node API URL, null when none is known. */
  readonly primaryUrl: () => string | null;
  readonly authToken: string | null;
}

export class HaltClient {
  readonly #opts: HaltClientOptions;

  constructor(opts: HaltClientOptions) {
    this.#opts = opts;
  }

  async acquire(db: string, waitMs: number, signal: AbortSignal): Promise<HaltGrant> {
    const body = await this.#call("POST", "/halt", { db, wait: String(waitMs) }, undefined, signal);
    return grantOf(body);
  }

  async renew(db: string, id: string, signal: AbortSignal): Promise<HaltGrant> {
    return grantOf(await this.#call("POST", "/halt/renew", { db, halt: id }, undefined, signal));
  }

  async release(db: string, id: string, signal: AbortSignal): Promise<void> {
    await this.#call("DELETE", "/halt", { db, halt: id }, undefined, signal);
  }

  /** Sends one LTX file; resolves with the primary's position after applying it. */
  async sendTx(db: string, id: string, txid: bigint, ltx: Uint8Array, signal: AbortSignal): Promise<Pos> {
    const body = await this.#call("POST", "/tx", { db, halt: id, txid: txid.toString(16) }, ltx, signal);
    return parsePos(String((body as { pos?: unknown }).pos));
  }

  async #call(
    method: string,
    path: string,
    query: Record<string, string>,
    body: Uint8Array | undefined,
    signal: AbortSignal,
  ): Promise<unknown> {
    const base = this.#opts.primaryUrl();
    if (base === null) throw new HaltError("EHALTPRIMARY", "no primary is known");
    const url = new URL(path, base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    if (this.#opts.authToken !== null) headers.Authorization = `Bearer ${this.#opts.authToken}`;
    if (body !== undefined) headers["Content-Type"] = "application/octet-stream";
    let res: HttpAnswer;
    try {
      res = await httpRequest(url, { method, headers, body, signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason ?? err;
      throw new HaltError("EHALTPRIMARY", `${method} ${path} to ${base}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const text = res.text;
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: reported below
    }
    if (res.status !== 200) {
      const answer = (parsed ?? {}) as { error?: unknown; code?: unknown };
      throw haltErrorFromWire(
        answer.code,
        `${method} ${path} to ${base}: ${res.status} ${typeof answer.error === "string" ? answer.error : text.slice(0, 200)}`,
      );
    }
    if (parsed === null)
      throw new HaltError("EHALTPRIMARY", `${method} ${path}: not JSON: ${text.slice(0, 200)}`);
    return parsed;
  }
}

function grantOf(body: unknown): HaltGrant {
  const b = body as { id?: unknown; db?: unknown; pos?: unknown; expiresInMs?: unknown };
  if (typeof b.id !== "string" || typeof b.db !== "string" || typeof b.pos !== "string") {
    throw new HaltError("EHALTPRIMARY", `the primary's HALT answer is malformed: ${JSON.stringify(body)}`);
  }
  return {
    id: b.id,
    db: b.db,
    pos: parsePos(b.pos),
    expiresInMs: typeof b.expiresInMs === "number" ? b.expiresInMs : 0,
  };
}
