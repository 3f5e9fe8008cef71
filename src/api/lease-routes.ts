// Node API routes that move the primary lease (docs/node-api.md), guarded by the bearer token like
// every route (the API server checks it before any handler):
//
//   POST /handoff?to=<node id>[&hostname=<h>&url=<advertise URL>]
//                                on the primary: hand the lease to that connected candidate replica
//                                (commits stop, the replica gets everything, HANDOFF, then this node is
//                                a replica). 200 {"to","epoch","ms"}. The target's hostname and URL,
//                                when its request names them, let this node name it in `.primary` at
//                                once instead of after the coordinator's watch reports it.
//   POST /promote                on a candidate replica: ask the current primary to hand off to this
//                                node, wait until it is primary. 200 {"role":"primary","epoch","ms"}.
//
// Refusals are JSON {"error","code"}: 400 EBADREQUEST, 409 ELEASENOTSUPPORTED (static lease) /
// ENOTCANDIDATE / ENOREPLICA, 503 ENOTPRIMARY / ENOPRIMARY, 504 EHANDOFFTIMEOUT, 502 EHANDOFFREFUSED
// (the primary said no; its answer is in the message), 500 otherwise.

import type http from "node:http";

import { endAfterBody } from "./request-guard.js";
import { httpUrlOrNull } from "./stream-request.js";
import { httpRequest, type HttpAnswer } from "../net/http-request.js";

/** A handoff target as its own request names itself (its lease hostname and advertise URL). */
export interface HandoffTargetIdentity {
  readonly hostname: string;
  readonly advertiseURL: string;
}

/** What the routes ask of the node. Errors carry a `code` (see above). */
export interface LeaseRouteController {
  /** Hands the lease to `toNodeId` (16 hex digits); resolves with the epoch handed off. */
  handOff(toNodeId: string, named?: HandoffTargetIdentity): Promise<bigint>;
  /** Makes this replica the primary through the current primary; resolves with the new epoch. */
  promote(): Promise<bigint>;
}

/** A refusal of a lease route, with a stable code. */
export class LeaseRouteError extends Error {
  override readonly name = "LeaseRouteError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF_CODE: Record<string, number> = {
  EBADREQUEST: 400,
  ELEASENOTSUPPORTED: 409,
  ENOTCANDIDATE: 409,
  ENOREPLICA: 409,
  ENOTPRIMARY: 503,
  ENOPRIMARY: 503,
  EHANDOFFTIMEOUT: 504,
  EHANDOFFREFUSED: 502,
};

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

/** The routes, keyed "METHOD /path", for the API server's `extraRoutes`. */
export function leaseRoutes(controller: LeaseRouteController): ReadonlyMap<string, Route> {
  return new Map<string, Route>([
    [
      "POST /handoff",
      async (req, res) => {
        req.resume();
        const params = new URL(req.url ?? "/", "http://node").searchParams;
        const to = params.get("to") ?? "";
        const started = performance.now();
        await answer(res, async () => {
          if (!/^[0-9a-f]{16}$/.test(to)) {
            throw new LeaseRouteError("EBADREQUEST", "?to= must be the target's node id (16 hex digits)");
          }
          const epoch = await controller.handOff(to, targetIdentity(params));
          return { to, epoch: epoch.toString(), ms: Math.round(performance.now() - started) };
        });
      },
    ],
    [
      "POST /promote",
      async (req, res) => {
        req.resume();
        const started = performance.now();
        await answer(res, async () => {
          const epoch = await controller.promote();
          return { role: "primary", epoch: epoch.toString(), ms: Math.round(performance.now() - started) };
        });
      },
    ],
  ]);
}

/** `&hostname=&url=` of POST /handoff: both or neither; EBADREQUEST when malformed. */
function targetIdentity(params: URLSearchParams): HandoffTargetIdentity | undefined {
  const hostname = params.get("hostname");
  const advertiseURL = params.get("url");
  if (hostname === null && advertiseURL === null) return undefined;
  if (hostname === null || !/^[^\s/]{1,253}$/.test(hostname)) {
    throw new LeaseRouteError(
      "EBADREQUEST",
      "&hostname= must be the target's lease hostname (1–253 characters)",
    );
  }
  const url = httpUrlOrNull(advertiseURL);
  if (url === null) {
    throw new LeaseRouteError("EBADREQUEST", "&url= must be the target's advertise URL (http or https)");
  }
  return { hostname, advertiseURL: url };
}

/**
 * Asks the primary at `primaryUrl` to hand its lease to `toNodeId` (`self`: the asking node's own
 * hostname and advertise URL, sent along so that the old primary can name it at once). Throws
 * LeaseRouteError (EHANDOFFREFUSED with the primary's answer, or ENOPRIMARY when it cannot be reached).
 */
export async function requestHandoff(
  primaryUrl: string,
  toNodeId: string,
  authToken: string | null,
  options: { readonly self?: HandoffTargetIdentity; readonly timeoutMs?: number } = {},
): Promise<void> {
  const url = new URL(`/handoff?to=${toNodeId}`, primaryUrl);
  if (options.self !== undefined) {
    url.searchParams.set("hostname", options.self.hostname);
    url.searchParams.set("url", options.self.advertiseURL);
  }
  const timeoutMs = options.timeoutMs ?? 15_000;
  let res: HttpAnswer;
  try {
    res = await httpRequest(url, {
      method: "POST",
      headers: authToken === null ? {} : { Authorization: `Bearer ${authToken}` },
      timeoutMs,
    });
  } catch (err) {
    throw new LeaseRouteError(
      "ENOPRIMARY",
      `cannot reach the primary at ${primaryUrl}: ${(err as Error).message}`,
    );
  }
  if (res.status === 200) return;
  throw new LeaseRouteError(
    "EHANDOFFREFUSED",
    `the primary at ${primaryUrl} refused the handoff (HTTP ${res.status}): ${res.text.trim().slice(0, 500)}`,
  );
}

async function answer(res: http.ServerResponse, work: () => Promise<Record<string, unknown>>): Promise<void> {
  try {
    send(res, 200, await work());
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const known = typeof code === "string" ? code : "EINTERNAL";
    send(res, STATUS_OF_CODE[known] ?? 500, { error: (err as Error).message, code: known });
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + "\n";
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  endAfterBody(res, text); // an unread request body must not reset the answer (request-guard.ts)
}
